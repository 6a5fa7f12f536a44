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
    debug_assert!(start.is_multiple_of(width) && len.is_multiple_of(width));
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

/// Forgets the claims of the bytes `start..start + len` (a mapping being unmapped), keeping
/// those of the bytes around them.
pub(crate) fn release(start: usize, len: usize) {
    let end = start + len;
    let mut claims = CLAIMS.write().unwrap_or_else(PoisonError::into_inner);
    let Some(first) = claims.iter().position(|c| c.end > start && c.start < end) else { return };
    let last = claims[first..].iter().take_while(|c| c.start < end).count() + first;
    let (head, tail) = (claims[first], claims[last - 1]);
    let mut kept = Vec::with_capacity(2);
    if head.start < start {
        kept.push(Claim { end: start, ..head });
    }
    if tail.end > end {
        kept.push(Claim { start: end, ..tail });
    }
    claims.splice(first..last, kept);
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

    /// Another region than the test above: the table is process-wide.
    const PROPTEST_BASE: usize = 0x7ffe_0000_0000;
    const SPAN: usize = 256;

    proptest::proptest! {
        /// Any sequence of claims and releases agrees with a model that keeps a width per byte:
        /// a claim fails exactly when one of its bytes has another width, and the table stays
        /// sorted, disjoint, and merged.
        #[test]
        #[cfg_attr(miri, ignore = "a property test: thousands of cases")]
        fn claims_agree_with_a_width_per_byte(
            steps in proptest::collection::vec((0_usize..3, 0_usize..SPAN / 4, 1_usize..8), 1..40)
        ) {
            let mut model = [0_usize; SPAN];
            for (kind, at, words) in steps {
                if kind == 2 {
                    let start = at * 8 % SPAN;
                    let len = (words * 16).min(SPAN - start);
                    release(PROPTEST_BASE + start, len);
                    model[start..start + len].fill(0);
                    continue;
                }
                let width = if kind == 0 { 4 } else { 8 };
                let start = at * 4 / width * width;
                let len = (words * width).min(SPAN - start) / width * width;
                let expected = model[start..start + len].iter().all(|w| *w == 0 || *w == width);
                let got = claim(PROPTEST_BASE + start, len, width);
                proptest::prop_assert_eq!(got.is_ok(), expected);
                if expected {
                    model[start..start + len].fill(width);
                }
                let claims = read();
                let ours: Vec<Claim> = overlapping(&claims, PROPTEST_BASE, PROPTEST_BASE + SPAN).copied().collect();
                drop(claims);
                for pair in ours.windows(2) {
                    proptest::prop_assert!(pair[0].end <= pair[1].start);
                    proptest::prop_assert!(pair[0].end < pair[1].start || pair[0].width != pair[1].width);
                }
                let mut table = [0_usize; SPAN];
                for c in &ours {
                    table[c.start - PROPTEST_BASE..c.end - PROPTEST_BASE].fill(c.width);
                }
                proptest::prop_assert_eq!(table, model);
            }
            release(PROPTEST_BASE, SPAN);
        }
    }
}
