//! Which bytes of shared memory this process uses as atomic words of which width.
//!
//! Rust's memory model makes two racing atomic accesses of *different sizes* that overlap
//! undefined behaviour, unless both are reads. Every atomic view that safe code can get
//! ([`SharedMemory::atomic_u32s`](crate::SharedMemory::atomic_u32s), `atomic_u64s`, `load_u32`
//! and `load_u64` on a writable handle, an [`Event`](crate::Event), the state word of the
//! [`sync`](crate::sync) objects, an array's magic) first *claims* its words at its width, here.
//! A claim that overlaps one of another width fails, and the view is refused with an error:
//! so safe code never holds, say, an `AtomicU64` and an `AtomicU32` over the same bytes of one
//! mapping. Claims are keyed by address (a second mapping of the same object is, to the
//! compiler and the memory model, other memory) and released when the mapping is unmapped.
//!
//! Copies by the assembly routine do not look at claims (they are no access of the abstract
//! machine, see [`super`]). The portable copy does: it accesses claimed bytes with atomics of
//! the claimed width, and holds the table's read lock for the whole copy, so that no claim is
//! made while a copy accesses bytes at another width; the write lock of a new claim then makes
//! the earlier copies *happen before* every access through the new view.

use std::sync::{PoisonError, RwLock, RwLockReadGuard};

/// Bytes `start..end` (addresses) used as atomics of `width` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Claim {
    pub start: usize,
    pub end: usize,
    pub width: usize,
}

/// Every claim of the process, sorted by `start`, disjoint; adjacent claims of one width are
/// merged, so that a range claimed again finds one claim that covers it.
static CLAIMS: RwLock<Vec<Claim>> = RwLock::new(Vec::new());

/// Another claim of another width overlaps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The width the overlapping bytes are used at already.
    pub width: usize,
}

/// Claims `len` bytes at `start` (aligned to `width`, `len` a multiple of it) as atomics of
/// `width` bytes.
pub(crate) fn claim(start: usize, len: usize, width: usize) -> Result<(), Conflict> {
    debug_assert!(start % width == 0 && len % width == 0);
    let end = start + len;
    if len == 0 {
        return Ok(());
    }
    {
        let claims = read();
        if let Some(result) = settled(&claims, start, end, width) {
            return result;
        }
    }
    let mut claims = CLAIMS.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(result) = settled(&claims, start, end, width) {
        return result;
    }
    // Merge with the claims of the same width that overlap or touch the new one.
    let (mut start, mut end) = (start, end);
    claims.retain(|c| {
        let joins = c.width == width && c.start <= end && start <= c.end;
        if joins {
            start = start.min(c.start);
            end = end.max(c.end);
        }
        !joins
    });
    let at = claims.partition_point(|c| c.start < start);
    claims.insert(at, Claim { start, end, width });
    Ok(())
}

/// `Some` if the claims decide the new one alone: a conflict, or a claim that covers it.
fn settled(claims: &[Claim], start: usize, end: usize, width: usize) -> Option<Result<(), Conflict>> {
    let mut overlapping = overlapping(claims, start, end);
    if let Some(other) = overlapping.clone().find(|c| c.width != width) {
        return Some(Err(Conflict { width: other.width }));
    }
    overlapping.any(|c| c.start <= start && end <= c.end).then_some(Ok(()))
}

/// Forgets every claim within `start..start + len` (a mapping being unmapped).
pub(crate) fn release(start: usize, len: usize) {
    let end = start + len;
    let mut claims = CLAIMS.write().unwrap_or_else(PoisonError::into_inner);
    claims.retain(|c| c.end <= start || end <= c.start);
}

/// The table, for reading (the portable copy holds it for the whole copy).
pub(crate) fn read() -> RwLockReadGuard<'static, Vec<Claim>> {
    CLAIMS.read().unwrap_or_else(PoisonError::into_inner)
}

/// The claims that overlap `start..end`, in order.
pub(crate) fn overlapping(claims: &[Claim], start: usize, end: usize) -> impl Iterator<Item = &Claim> + Clone {
    let first = claims.partition_point(|c| c.end <= start);
    claims[first..].iter().take_while(move |c| c.start < end)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Addresses far from any mapping: the table is process-wide, tests run in parallel.
    const BASE: usize = 0x7fff_0000_0000;

    #[test]
    fn claims_of_one_width_merge_and_others_conflict() {
        claim(BASE, 8, 4).unwrap();
        claim(BASE + 8, 8, 4).unwrap();
        claim(BASE + 4, 8, 4).unwrap();
        assert_eq!(claim(BASE + 8, 8, 8), Err(Conflict { width: 4 }));
        assert_eq!(claim(BASE + 12, 4, 4), Ok(()));
        claim(BASE + 64, 8, 8).unwrap();
        assert_eq!(claim(BASE + 64, 4, 4), Err(Conflict { width: 8 }));
        {
            let claims = read();
            let here: Vec<_> = overlapping(&claims, BASE, BASE + 128).copied().collect();
            assert_eq!(
                here,
                [Claim { start: BASE, end: BASE + 16, width: 4 }, Claim { start: BASE + 64, end: BASE + 72, width: 8 }]
            );
        }
        release(BASE, 128);
        assert_eq!(claim(BASE, 8, 8), Ok(()));
        release(BASE, 128);
    }
}
