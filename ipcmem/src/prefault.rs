//! Prefaulting and locking: bringing the pages of a mapping into memory before it is used.
//!
//! What the first use of a large object costs is the kernel's page-fault path, one fault per
//! page (allocating and zeroing it, then mapping it), not memory bandwidth. `madvise` with
//! `MADV_POPULATE_READ` (Linux 5.14) does those faults in one call, and faults on distinct
//! parts of one mapping run in parallel: an object of [`SERIAL_MAX`] bytes or more is split
//! into chunks, one per available core ([`std::thread::available_parallelism`]), populated by
//! scoped threads, the calling thread taking the first. A smaller one is populated by the
//! calling thread alone: no thread is started for it.
//!
//! **Read faults, also for writable handles.** A read fault on a shared mapping of tmpfs,
//! System V or hugetlbfs memory allocates a missing page just as a write fault does (these
//! mappings have no zero page), and maps it writable, since the kernel does not track writes
//! to them (no dirty accounting: `vma_wants_writenotify` is false): the first writes after it
//! take no fault (`perf_options.rs` checks this). And a read fault maps the pages of the object
//! already in memory 16 at a time (fault-around), where `MADV_POPULATE_WRITE` takes a write
//! fault for each: mapping a resident 1 GiB object on one thread took 60–72 ms so, against
//! 150–177 ms (see `BENCHMARKS.md`). Where the kernel does track writes (a
//! process whose soft-dirty bits were cleared), the pages are still allocated and mapped, and
//! the first write to each takes a minor fault.
//!
//! **Content never changes.** Populating allocates the pages an object does not have yet (they
//! read as zeros, before and after) and maps those it has; it writes no byte, so prefaulting an
//! object that other processes are using is safe.
//!
//! **Errors, not `SIGBUS`.** Where a page cannot be allocated (a full `/dev/shm`, a POSIX
//! object shrunk by another process, no huge page left) an access would raise `SIGBUS`;
//! `MADV_POPULATE_READ` returns an error instead (`EFAULT`, `ENOMEM`), which becomes a clear
//! [`Error`].
//!
//! **Older kernels** (before 5.14, which answer `EINVAL`): the pages are touched, one byte per
//! page, by the same threads, with the fault-safe touch of the copy mechanism
//! ([`access::touch`]): an atomic add of 0 on a writable handle (a write fault that leaves the
//! byte as it is, even if another process writes it at that moment), a load on a read-only
//! one. A page the kernel cannot provide is then an error too, not a `SIGBUS` (on `x86_64`
//! and `aarch64`; the portable touch of other architectures is not fault-safe). A writable
//! POSIX object is first given all its space with `fallocate`, which says `ENOSPC` at once
//! rather than after touching the pages that fit.

use std::fmt;
use std::num::NonZero;
use std::os::fd::BorrowedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

use rustix::io::Errno;
use rustix::mm::{self, Advice};

use crate::access;
use crate::error::{Error, Limit, Result};
use crate::huge::{self, Cause};

/// Objects below this size are populated by the calling thread alone: a thread costs tens of
/// microseconds to start, a few MiB of faults a few milliseconds.
pub(crate) const SERIAL_MAX: usize = 4 << 20;

/// Chunks are multiples of this size (a huge page of the default size), so that no two threads
/// fault the same huge page.
const CHUNK_ALIGN: usize = 2 << 20;

/// The most one `madvise` call populates. `MADV_POPULATE_READ` holds the process's memory map
/// lock (for reading) for the whole range, and every `mmap` or `munmap` of another thread
/// waits for it: a thread of the process starting (Rust maps a signal stack for each), an
/// allocator growing. In steps of 8 MiB (a few milliseconds of faults) they wait no longer,
/// and the populating threads do not end up one after the other.
const STEP: usize = 8 << 20;

/// How often a range is tried again when the kernel says `EINTR` or `EAGAIN`.
const RETRIES: usize = 16;

/// What backs a mapping, for the error a failed population gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Store {
    /// A POSIX object in the tmpfs of `/dev/shm`.
    Tmpfs,
    /// A POSIX object in a hugetlbfs, or a System V segment with huge pages.
    HugeTlb,
    /// A System V segment of normal pages.
    SysV,
}

/// The mapping to populate: `len` bytes from `base`, page aligned.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Region {
    /// The start of the mapping.
    pub base: NonNull<u8>,
    /// Its length in bytes (the object's length; rounded up to whole pages here).
    pub len: usize,
    /// Whether the mapping may be written: how pages are touched on kernels without
    /// `MADV_POPULATE_READ`.
    pub writable: bool,
}

/// Populates `region` of `object`: on return every page is allocated and mapped, or the error
/// says why not. `reserve` is the object's descriptor, used only on kernels without
/// `MADV_POPULATE_READ` to allocate the space of a writable POSIX object before touching it.
pub(crate) fn populate(
    object: &dyn fmt::Display,
    region: Region,
    store: Store,
    reserve: Option<BorrowedFd<'_>>,
) -> Result<()> {
    let len = region.len.next_multiple_of(crate::page_size());
    let operation = "madvise(MADV_POPULATE_READ)";
    let populated = in_chunks(region.base, len, |start, length| {
        (start..start + length)
            .step_by(STEP)
            .try_for_each(|step| advise(step, STEP.min(start + length - step), Advice::LinuxPopulateRead))
    });
    let outcome = match populated {
        // A kernel before 5.14: touch the pages instead.
        Err(Errno::INVAL) => {
            if let (Some(fd), true) = (reserve, region.writable) {
                rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, len as u64)
                    .map_err(|errno| failure(object, region.len, store, "fallocate", errno))?;
            }
            in_chunks(region.base, len, |start, length| touch(start, length, region.writable))
        }
        other => other,
    };
    outcome.map_err(|errno| failure(object, region.len, store, operation, errno))
}

/// Runs `work` on `len` bytes from `base` split in chunks, one per available core, in scoped
/// threads (the calling thread doing the first); below [`SERIAL_MAX`], on the calling thread
/// alone. Returns the first error.
fn in_chunks(
    base: NonNull<u8>,
    len: usize,
    work: impl Fn(usize, usize) -> Result<(), Errno> + Sync,
) -> Result<(), Errno> {
    let start = base.as_ptr() as usize;
    let chunks = if len < SERIAL_MAX {
        1
    } else {
        std::thread::available_parallelism().map_or(1, NonZero::get).min(len / CHUNK_ALIGN).max(1)
    };
    if chunks == 1 {
        return work(start, len);
    }
    let chunk = len.div_ceil(chunks).next_multiple_of(CHUNK_ALIGN);
    let work = &work;
    let started = &AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let mut results = Vec::with_capacity(chunks);
        let mut inline = Vec::new();
        for offset in (chunk..len).step_by(chunk) {
            let length = chunk.min(len - offset);
            let spawned = std::thread::Builder::new().spawn_scoped(scope, move || {
                started.fetch_add(1, Ordering::Release);
                work(start + offset, length)
            });
            match spawned {
                Ok(thread) => results.push(thread),
                // No thread to be had: this chunk is done here, after the first.
                Err(_) => inline.push((offset, length)),
            }
        }
        // A starting thread maps its signal stack, which waits for the memory map lock that
        // populating holds: let the threads start before populating here.
        while started.load(Ordering::Acquire) < results.len() {
            std::thread::yield_now();
        }
        let mut outcome = work(start, chunk.min(len));
        for (offset, length) in inline {
            outcome = outcome.and(work(start + offset, length));
        }
        for thread in results {
            // A populating thread does not panic; if it did, report it as a fault.
            outcome = outcome.and(thread.join().unwrap_or(Err(Errno::FAULT)));
        }
        outcome
    })
}

/// One `madvise` over `len` bytes at address `start`, tried again on `EINTR` and `EAGAIN`.
fn advise(start: usize, len: usize, advice: Advice) -> Result<(), Errno> {
    let mut tries = 0;
    loop {
        // SAFETY: `start..start + len` lies within a mapping that the caller keeps for the
        // whole call. MADV_POPULATE_READ only faults pages in: it changes no byte, and unmaps,
        // moves or frees nothing.
        match unsafe { mm::madvise(start as *mut std::ffi::c_void, len, advice) } {
            Err(Errno::INTR | Errno::AGAIN) if tries < RETRIES => tries += 1,
            other => return other,
        }
    }
}

/// Touches one byte of every page of `len` bytes at address `start`, without changing any:
/// with the fault-safe touch of [`access::touch`], so that a page the kernel cannot provide
/// (a full tmpfs, a shrunk object) is `EFAULT`, as `MADV_POPULATE_READ` says it, not a `SIGBUS`.
fn touch(start: usize, len: usize, writable: bool) -> Result<(), Errno> {
    for offset in (0..len).step_by(crate::page_size()) {
        // SAFETY: the byte lies within the mapping (offset < len), which the caller keeps for
        // the whole call, writable if `writable`. The touch changes no byte: a read, or an
        // atomic add of 0 (a write fault, the byte unchanged even if another process writes it
        // meanwhile).
        unsafe { access::touch((start + offset) as *mut u8, writable) }.map_err(|_| Errno::FAULT)?;
    }
    Ok(())
}

/// The error for a population of `len` bytes that failed with `errno`.
fn failure(object: &dyn fmt::Display, len: usize, store: Store, operation: &'static str, errno: Errno) -> Error {
    match (errno, store) {
        (Errno::FAULT | Errno::NOMEM | Errno::NOSPC, Store::HugeTlb) => huge::unavailable(object, len, Cause::TooFew),
        // A page the kernel could not allocate, where an access would have raised SIGBUS.
        (Errno::FAULT | Errno::NOSPC, Store::Tmpfs) => Error::LimitExceeded {
            object: object.to_string(),
            limit: Limit::NoSpace,
            detail: format!(
                "the pages of {len} bytes could not all be allocated while prefaulting: /dev/shm is full, or \
                 another process shrank the object"
            ),
        },
        (Errno::NOMEM | Errno::FAULT, _) => Error::LimitExceeded {
            object: object.to_string(),
            limit: Limit::Memory,
            detail: format!("prefaulting {len} bytes"),
        },
        (errno, _) => Error::Os { object: object.to_string(), operation, errno },
    }
}

/// Locks `len` bytes at `base` in memory with `mlock`: the lock belongs to this mapping and
/// ends when it is unmapped. Fails with [`Limit::LockedMemory`] when `RLIMIT_MEMLOCK` stands
/// in the way.
pub(crate) fn lock(object: &dyn fmt::Display, base: NonNull<u8>, len: usize) -> Result<()> {
    // SAFETY: `base..base + len` is a mapping that the caller keeps; mlock changes no byte.
    match unsafe { mm::mlock(base.as_ptr().cast(), len) } {
        Ok(()) => Ok(()),
        Err(errno @ (Errno::NOMEM | Errno::PERM | Errno::AGAIN)) => Err(lock_failure(object, len, errno)),
        Err(errno) => Err(Error::Os { object: object.to_string(), operation: "mlock", errno }),
    }
}

/// The error of an `mlock` of `len` bytes that failed with `errno`: the lock limit if it is
/// what stood in the way, else memory.
fn lock_failure(object: &dyn fmt::Display, len: usize, errno: Errno) -> Error {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim);
    let locked_kb: u64 = field("VmLck:").and_then(|value| value.split_whitespace().next()?.parse().ok()).unwrap_or(0);
    // CAP_IPC_LOCK (bit 14 of the effective capabilities) lifts the limit.
    let privileged =
        field("CapEff:").and_then(|caps| u64::from_str_radix(caps, 16).ok()).is_some_and(|caps| caps & (1 << 14) != 0);
    let limit = rustix::process::getrlimit(rustix::process::Resource::Memlock).current;
    match limit {
        Some(limit) if !privileged && (errno == Errno::PERM || locked_kb * 1024 + len as u64 > limit) => {
            Error::LimitExceeded {
                object: object.to_string(),
                limit: Limit::LockedMemory,
                detail: format!(
                    "{len} bytes to lock, {} bytes locked already, RLIMIT_MEMLOCK is {limit} bytes: raise it \
                     (ulimit -l, LimitMEMLOCK= of systemd, /etc/security/limits.conf) or give the process \
                     CAP_IPC_LOCK",
                    locked_kb * 1024
                ),
            }
        }
        _ => Error::LimitExceeded {
            object: object.to_string(),
            limit: Limit::Memory,
            detail: format!("locking {len} bytes: the pages could not all be brought into memory ({errno})"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A shared anonymous mapping of `len` bytes, unmapped on drop.
    struct Anon(NonNull<u8>, usize);

    impl Anon {
        fn new(len: usize) -> Anon {
            // SAFETY: a new mapping at an address the kernel chooses.
            let ptr = unsafe {
                mm::mmap_anonymous(
                    std::ptr::null_mut(),
                    len,
                    mm::ProtFlags::READ | mm::ProtFlags::WRITE,
                    mm::MapFlags::SHARED,
                )
            }
            .expect("mmap");
            Anon(NonNull::new(ptr.cast()).expect("mmap gives no null"), len)
        }
    }

    impl Drop for Anon {
        fn drop(&mut self) {
            // SAFETY: our own mapping, used no more.
            let _ = unsafe { mm::munmap(self.0.as_ptr().cast(), self.1) };
        }
    }

    /// How many of the `len` bytes at `base` are resident, by `mincore`.
    fn resident_pages(base: NonNull<u8>, len: usize) -> usize {
        let mut vec = vec![0_u8; len.div_ceil(crate::page_size())];
        // SAFETY: `vec` has one byte per page of the range, which is mapped.
        assert_eq!(unsafe { libc::mincore(base.as_ptr().cast(), len, vec.as_mut_ptr()) }, 0);
        vec.iter().filter(|page| *page & 1 != 0).count()
    }

    #[test]
    fn touching_keeps_the_content() {
        let page = crate::page_size();
        let len = 8 * page;
        let anon = Anon::new(len);
        for (i, value) in (1..=8_u8).enumerate() {
            // SAFETY: within the mapping, which nothing else uses.
            unsafe { anon.0.as_ptr().add(i * page * 2 % len).write(value) };
        }
        // SAFETY: within the mapping, which nothing else writes.
        let first_bytes = || (0..len).step_by(page).map(|offset| unsafe { *anon.0.as_ptr().add(offset) }).collect();
        let before: Vec<u8> = first_bytes();
        touch(anon.0.as_ptr() as usize, len, true).unwrap();
        touch(anon.0.as_ptr() as usize, len, false).unwrap();
        let after: Vec<u8> = first_bytes();
        assert_eq!(before, after);
        assert_eq!(resident_pages(anon.0, len), 8);
    }

    /// The touch of kernels without `MADV_POPULATE_READ`: pages past the end of a shrunk file
    /// are `EFAULT`, which is the no-space error for tmpfs, never a `SIGBUS`.
    #[test]
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux"))]
    fn touching_a_missing_page_is_an_error() {
        let page = crate::page_size();
        let fd = rustix::fs::memfd_create("ipcmem-touch-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, 4 * page as u64).unwrap();
        // SAFETY: a new shared mapping of our own memfd.
        let base = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                4 * page,
                mm::ProtFlags::READ | mm::ProtFlags::WRITE,
                mm::MapFlags::SHARED,
                &fd,
                0,
            )
        }
        .unwrap();
        rustix::fs::ftruncate(&fd, page as u64).unwrap();
        for writable in [true, false] {
            assert_eq!(touch(base as usize, 4 * page, writable), Err(Errno::FAULT));
            assert_eq!(touch(base as usize, page, writable), Ok(()));
        }
        let error = failure(&"/touched", 4 * page, Store::Tmpfs, "touch", Errno::FAULT);
        assert!(matches!(error, Error::LimitExceeded { limit: Limit::NoSpace, .. }), "{error:?}");
        // SAFETY: our mapping, unused from now on.
        unsafe { mm::munmap(base, 4 * page) }.unwrap();
    }

    #[test]
    fn chunks_cover_the_range_once() {
        let len = SERIAL_MAX * 3 + 4096 * 5;
        let covered = std::sync::Mutex::new(Vec::new());
        in_chunks(NonNull::<u8>::dangling(), len, |start, length| {
            covered.lock().unwrap().push((start - 1, length));
            Ok(())
        })
        .unwrap();
        let mut covered = covered.into_inner().unwrap();
        covered.sort_unstable();
        let mut next = 0;
        for (start, length) in covered {
            assert_eq!(start, next);
            assert!(length > 0);
            next = start + length;
        }
        assert_eq!(next, len);
    }

    #[test]
    fn populates_in_parallel_and_serially() {
        for len in [3 * 4096, SERIAL_MAX * 2 + 4096] {
            let anon = Anon::new(len);
            let region = Region { base: anon.0, len, writable: true };
            populate(&"anon", region, Store::SysV, None).unwrap();
            assert_eq!(resident_pages(anon.0, len), len / crate::page_size());
        }
    }
}
