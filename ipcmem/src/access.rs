//! The one way ipcmem copies bytes in and out of shared memory: [`load`] and [`store`], used by
//! every safe access ([`SharedMemory::read_at`](crate::SharedMemory::read_at) and
//! [`write_at`](crate::SharedMemory::write_at), the [`SharedArray`](crate::SharedArray)
//! copies, array headers, and through them the CLI's `read`, `write` and `array show`); and
//! [`touch`], with which prefault touches pages where the kernel cannot populate them.
//!
//! # Fault-safe
//!
//! Another process can make an access to a mapping fault: it shrinks a POSIX object
//! (`ftruncate`) under it (`SIGBUS`), or `/dev/shm` runs full when a page of a sparse object is
//! first written (`SIGBUS`); a mapping can vanish or lose its permissions (`SIGSEGV`). On
//! `x86_64` and `aarch64` Linux a copy never dies of it: the copy routine is assembly
//! (modules `x86_64`, `aarch64`) whose every instruction that may fault lies between two known
//! labels, and a `SIGBUS`/`SIGSEGV` handler ([`fault`], installed once, with the first handle
//! or copy) resumes such a fault at the routine's fix-up, which returns the signal and address:
//! [`load`] and [`store`] return a [`Fault`], which the caller turns into an error that names
//! the object and the cause. Other threads go on untouched. Faults anywhere else go to the
//! handler that was installed before ours, or take the default action, exactly as without
//! ipcmem ([`fault`] says how).
//!
//! On other architectures and systems, and under Miri, the portable copy (module `portable`) is
//! used: sound, but not fault-safe (a fault kills the process, as `memcpy` would) and slower.
//!
//! # Why it is sound, whatever other threads and processes do
//!
//! A plain `memcpy` (or `ptr::copy`) over bytes another thread or process may write at the same
//! time is a data race, undefined behaviour in Rust. Relaxed *byte-wise* atomics (as the
//! previous loop of this module did, and as RFC 3301 proposes) are not enough either: Rust's
//! memory model also forbids racing atomic accesses of *different sizes* that overlap, unless
//! both are reads (`std::sync::atomic`, "mixed-size accesses"), so a byte-wise copy racing
//! with an `AtomicU32` of [`SharedMemory::atomic_u32s`](crate::SharedMemory::atomic_u32s), or
//! with another copy done a word at a time, is undefined behaviour too.
//!
//! **The assembly routine is not an access of the abstract machine.** The compiler cannot see
//! inside it: to Rust it is a call of a foreign function, which may do whatever the hardware
//! does, like the kernel's `copy_to_user` when a `pread` fills a buffer from the same object.
//! What it promises: it reads each byte of the source range and writes each byte of the
//! destination range (some more than once, always with a value read from the source's byte of
//! the same offset), touches no other memory, uses ordinary loads and stores of 1 to 32 bytes
//! (on `x86_64` also `rep movsb`, and non-temporal stores for copies larger than the caches,
//! followed by `sfence`), takes no lock, and changes no register or flag the calling
//! convention keeps. Its accesses to the shared bytes are the same, to the memory model, as
//! those of another process on the same object: the hardware's, outside the abstract machine.
//! So they cannot race with any access of the abstract machine, of whatever size, in this
//! thread or another; each byte read is some value that byte held during the copy (the
//! hardware is cache-coherent and invents no values), which for plain bytes is always a valid
//! value. An atomic view sees the routine's stores as it sees another process's: a word that a
//! copy writes while the view loads it may come out part old, part new (the routine promises
//! no atomicity beyond the byte), as with the byte-wise writer of another process.
//!
//! This is the argument by which Rust code soundly shares memory with other processes, or with
//! the kernel (the rings of `io_uring`, `perf`): accesses outside the abstract machine are no
//! data race, atomics inside it see their effects. Rust's memory model does not spell out such
//! outside agents yet (the unsafe-code guidelines leave inter-process memory open); ipcmem
//! rests on this common reading, and keeps every access that *is* in the abstract machine free
//! of races of mixed sizes (below), which the model does spell out. What the abstract
//! machine does see is the call's effect on the *private* buffer: [`load`] writes `dst` (the
//! caller holds it as `&mut [u8]`, so nothing else accesses it), [`store`] reads `src` (held as
//! `&[u8]`, so nothing writes it). Neither is shared memory: a safe caller cannot pass a slice
//! of a mapping, since no safe function hands one out. Values copied concurrently with a
//! writer may be torn (a mix of old and new bytes); ordering data is the business of the
//! user's synchronisation, through atomics that Rust does see.
//!
//! **Atomic views.** Atomics over shared memory (`atomic_u32s`, `atomic_u64s`, `load_u32`,
//! `load_u64`, an array's magic, and those of [`Event`](crate::Event),
//! [`Semaphore::init_at`](crate::Semaphore::init_at) and the [`sync`](crate::sync) objects)
//! *are* accesses of the abstract machine, and two of them of different sizes must not
//! overlap. Safe code cannot make them do so: every view first claims its words at its width
//! ([`claims`]), and a view over bytes claimed at another width through the same mapping is
//! refused with an error. Read-only handles take no claims: they allow only loads (relaxed,
//! with a fence for `Acquire`: std allows only relaxed atomic loads on read-only memory), and
//! racing loads of different sizes are allowed. Views through another mapping of the same
//! object (another handle) are other memory to the abstract machine, as another process's are.
//!
//! **The portable copy** is made of abstract-machine accesses only: relaxed atomic loads and
//! stores, at the width each byte is claimed at (a partial word by a compare-exchange of the
//! whole word), byte-wise where nothing is claimed; it holds the claims table's read lock
//! for the whole copy, so no view of another width can appear meanwhile. Two portable copies
//! over the same unclaimed bytes both access them byte by byte: equal sizes.
//!
//! # What Miri checks, and what it cannot
//!
//! Under Miri `cfg(miri)` selects the portable copy, and the Miri test of this module
//! (`miri_copies_race_with_views`, run by `.ci/run`) runs copies of mixed lengths, offsets and
//! alignments from two threads over the same bytes, with 32- and 64-bit views: Miri checks
//! that no data race and no mixed-size race occurs, and that claims refuse a view of the
//! wrong width. Miri cannot run the assembly routine, nor signal handlers, nor shared memory
//! between processes; those are checked by the tests of `tests/fault.rs` with real processes
//! (faults while another process shrinks the object, a full tmpfs, foreign signal handlers).
//! The `aarch64` routine and its fault handling are tested by this module's tests under
//! `qemu-aarch64` (`.ci/run`).

/// The name of a symbol of the assembly routines: `__ipcmem_<major>_<minor>_access_<name>`, so
/// that two semver-incompatible versions of ipcmem linked into one program do not clash.
#[allow(unused_macros)]
macro_rules! symbol {
    ($name:literal) => {
        concat!("__ipcmem_", env!("CARGO_PKG_VERSION_MAJOR"), "_", env!("CARGO_PKG_VERSION_MINOR"), "_access_", $name)
    };
}

#[cfg(all(target_arch = "aarch64", target_os = "linux", not(miri)))]
mod aarch64;
mod claims;
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
mod fault;
#[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri))))]
mod portable;
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
mod x86_64;

/// The assembly routine of this architecture.
#[cfg(all(target_arch = "aarch64", target_os = "linux", not(miri)))]
use aarch64 as routine;
#[cfg(all(target_arch = "x86_64", target_os = "linux", not(miri)))]
use x86_64 as routine;

pub(crate) use claims::{claim, release};

/// The signal a fault raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    /// `SIGBUS`: a page past the end of the object, or one that could not be allocated.
    Bus,
    /// `SIGSEGV`: no mapping at the address, or one without the permission.
    Segv,
}

/// A fault of the mapping during a copy or touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Fault {
    /// Which signal the kernel raised.
    pub signal: Signal,
    /// The faulting address.
    pub address: usize,
}

/// Copies `dst.len()` bytes from `src` into `dst`; on `x86_64` and `aarch64`, a fault of the
/// source becomes `Err` (see the module's documentation).
///
/// # Safety
/// `src..src + dst.len()` lies within one mapping that stays mapped for the whole call (its
/// pages may vanish under it: that is the fault). Other threads and processes may write it
/// concurrently; nothing in this process may hold a reference to it.
#[inline]
pub(crate) unsafe fn load(src: *const u8, dst: &mut [u8]) -> Result<(), Fault> {
    // SAFETY: the caller's promises.
    unsafe { Copier::new().load(src, dst) }
}

/// Copies `src` to `dst..dst + src.len()`; on `x86_64` and `aarch64`, a fault of the
/// destination becomes `Err`.
///
/// # Safety
/// `dst..dst + src.len()` lies within one writable mapping that stays mapped for the whole
/// call. Other threads and processes may access it concurrently; nothing in this process may
/// hold a reference to it.
#[inline]
pub(crate) unsafe fn store(dst: *mut u8, src: &[u8]) -> Result<(), Fault> {
    // SAFETY: the caller's promises.
    unsafe { Copier::new().store(dst, src) }
}

/// The copy, ready to run: the fault handler installed, the strategy of this processor at
/// hand. A handle keeps one (made with the handle), so that its copies do not check every time
/// that the handler is installed; [`load`] and [`store`] make one per call.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Copier {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    strategy: &'static routine::Strategy,
}

impl Copier {
    /// Installs the fault handler if it is not yet, and gives the copier.
    #[inline]
    pub(crate) fn new() -> Copier {
        Copier {
            #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
            strategy: ready(),
        }
    }

    /// As [`load`].
    ///
    /// # Safety
    /// As for [`load`].
    #[inline]
    pub(crate) unsafe fn load(self, src: *const u8, dst: &mut [u8]) -> Result<(), Fault> {
        #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
        {
            // SAFETY: the caller's promises; `dst` is a private buffer we borrow mutably, so
            // the two ranges do not overlap; the strategy is this processor's, and the handler
            // is installed (by `new`).
            outcome(unsafe { routine::copy(dst.as_mut_ptr(), src, dst.len(), self.strategy) })
        }
        #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri))))]
        {
            // SAFETY: the caller's promises.
            unsafe { portable::load(src, dst) };
            Ok(())
        }
    }

    /// As [`store`].
    ///
    /// # Safety
    /// As for [`store`].
    #[inline]
    pub(crate) unsafe fn store(self, dst: *mut u8, src: &[u8]) -> Result<(), Fault> {
        #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
        {
            // SAFETY: the caller's promises; `src` is a private buffer, not the mapping; the
            // strategy is this processor's, and the handler is installed (by `new`).
            outcome(unsafe { routine::copy(dst, src.as_ptr(), src.len(), self.strategy) })
        }
        #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri))))]
        {
            // SAFETY: the caller's promises.
            unsafe { portable::store(dst, src) };
            Ok(())
        }
    }
}

/// Faults in the page of `at` and changes nothing: reads its byte, or (if `write`) adds 0 to it
/// atomically (a write fault, the byte unchanged even if another process writes it meanwhile).
/// On `x86_64` and `aarch64` a fault becomes `Err`.
///
/// # Safety
/// `at` lies within a mapping that stays mapped for the call, writable if `write`.
pub(crate) unsafe fn touch(at: *mut u8, write: bool) -> Result<(), Fault> {
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    {
        ready();
        // SAFETY: the caller's promises.
        outcome(unsafe { routine::touch(at, write) })
    }
    #[cfg(not(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri))))]
    {
        use std::sync::atomic::{AtomicU8, Ordering::Relaxed};
        // SAFETY: the caller's promises; an `AtomicU8` needs no alignment. A byte is a
        // claimed word of another width only inside a view, which prefault never meets: it runs
        // before the handle is handed out.
        let byte = unsafe { AtomicU8::from_ptr(at) };
        if write {
            byte.fetch_add(0, Relaxed);
        } else {
            byte.load(Relaxed);
        }
        Ok(())
    }
}

/// Installs the fault handler (once), and gives the copy strategy of this processor.
#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
#[inline]
fn ready() -> &'static routine::Strategy {
    use std::sync::OnceLock;
    static STRATEGY: OnceLock<routine::Strategy> = OnceLock::new();
    STRATEGY.get_or_init(|| {
        let strategy = routine::strategy();
        fault::install(strategy.avx);
        strategy
    })
}

#[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
#[inline]
#[allow(clippy::cast_possible_truncation, reason = "an address is 64 bits here, as usize is")]
fn outcome(outcome: routine::Outcome) -> Result<(), Fault> {
    match outcome.signal {
        0 => Ok(()),
        signal => Err(Fault {
            signal: if signal == libc::SIGSEGV as u64 { Signal::Segv } else { Signal::Bus },
            address: outcome.address as usize,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Copies of mixed lengths, offsets and alignments from two threads over the same 64
    /// bytes, with 32- and 64-bit views of some of them (claimed as `SharedMemory` claims
    /// them), and claims of the wrong width refused. Under Miri (`cargo +nightly miri test -p
    /// ipcmem --lib miri_`, in `.ci/run`) the portable copy runs and Miri checks that no data
    /// race and no mixed-size race occurs; natively the assembly routine runs.
    #[test]
    fn miri_copies_race_with_views() {
        use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
        #[derive(Clone, Copy)]
        struct Shared(*mut u8);
        // SAFETY: the pointer is only used for atomic accesses and `load`/`store`.
        unsafe impl Send for Shared {}
        // SAFETY: as above.
        unsafe impl Sync for Shared {}
        impl Shared {
            fn at(self, offset: usize) -> *mut u8 {
                self.0.wrapping_add(offset)
            }
        }

        let memory = Box::into_raw(Box::new([0_u64; 10]));
        let shared = Shared(memory.cast());
        let base = shared.0 as usize;
        // Bytes 8..24 are 32-bit views, 40..56 64-bit ones; the rest is unclaimed.
        claim(base + 8, 16, 4).unwrap();
        claim(base + 40, 16, 8).unwrap();
        assert!(claim(base + 16, 8, 8).is_err(), "a 64-bit view over 32-bit words");
        assert!(claim(base + 48, 4, 4).is_err(), "a 32-bit view inside a 64-bit word");
        // SAFETY: claimed, aligned (`memory` is of u64, the offsets multiples of 8), within
        // `memory`, which lives until the end of the test.
        #[allow(clippy::cast_ptr_alignment)]
        let words32 = unsafe { std::slice::from_raw_parts(shared.at(8).cast::<AtomicU32>(), 4) };
        // SAFETY: as above.
        #[allow(clippy::cast_ptr_alignment)]
        let words64 = unsafe { std::slice::from_raw_parts(shared.at(40).cast::<AtomicU64>(), 2) };

        let copies = |seed: usize| {
            for round in 0..6 {
                let offset = (seed * 7 + round * 13) % 61;
                let len = 1 + (seed * 5 + round * 11) % (64 - offset);
                let data: Vec<u8> = (0..len).map(|i| (i + round).to_le_bytes()[0]).collect();
                // SAFETY: `offset + len <= 64`, within `memory`; other threads access it only
                // with atomics and these calls.
                unsafe { store(shared.at(offset), &data) }.unwrap();
                let mut back = vec![0; len];
                // SAFETY: as above.
                unsafe { load(shared.at(offset), &mut back) }.unwrap();
            }
        };
        std::thread::scope(|scope| {
            scope.spawn(|| copies(1));
            scope.spawn(|| {
                for round in 0..6_u32 {
                    words32[round as usize % 4].fetch_add(round, Relaxed);
                    words64[round as usize % 2].store(u64::from(round), Relaxed);
                    let _ = words64[1].load(Relaxed) + u64::from(words32[0].load(Relaxed));
                }
                copies(2);
            });
        });
        // Quiet now: a copy reads what a copy wrote, across claimed and unclaimed bytes.
        let data: Vec<u8> = (0..60).collect();
        // SAFETY: within `memory`, no other thread left.
        unsafe { store(shared.at(3), &data) }.unwrap();
        let mut back = vec![0; 60];
        // SAFETY: as above.
        unsafe { load(shared.at(3), &mut back) }.unwrap();
        assert_eq!(back, data);
        release(base, 80);
        // SAFETY: made by `Box::into_raw` above; no view or thread uses it any more.
        drop(unsafe { Box::from_raw(memory) });
    }

    #[test]
    #[cfg_attr(miri, ignore = "slow under Miri; the race test covers the portable copy")]
    fn copies_every_length_and_alignment() {
        let source: Vec<u8> = (0..=255).cycle().take(3000).collect();
        let lengths = (0..=200).chain([255, 256, 257, 1000, 2047, 2048, 2049, 2900]);
        for start in 0..17 {
            for len in lengths.clone().filter(|len| start + len <= 2990) {
                let mut out = vec![0; len];
                // SAFETY: the range lies within `source`, which nothing else touches.
                unsafe { load(source.as_ptr().add(start), &mut out) }.unwrap();
                assert_eq!(out, source[start..start + len]);
                let mut target = vec![0_u8; 3010];
                // SAFETY: as above, within `target`.
                unsafe { store(target.as_mut_ptr().add(start), &source[..len]) }.unwrap();
                assert_eq!(&target[start..start + len], &source[..len]);
                assert!(target[..start].iter().chain(&target[start + len..]).all(|b| *b == 0));
            }
        }
    }

    /// Every path of the routine (SSE or AVX loop, `rep movsb`, non-temporal stores, forced at
    /// small lengths by the strategy), at every relative alignment of source and destination.
    #[test]
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    fn every_strategy_copies_every_length_and_alignment() {
        let source: Vec<u8> = (0..=255).cycle().take(9000).collect();
        for strategy in strategies() {
            for (start, len) in (0..70)
                .step_by(3)
                .flat_map(|start| (60..300).step_by(7).chain([1000, 4095, 4096, 8000]).map(move |len| (start, len)))
            {
                let mut target = vec![0_u8; 8200];
                let at = (start * 5) % 64;
                // SAFETY: both ranges lie within the vectors, which nothing else touches.
                let outcome =
                    unsafe { routine::copy(target.as_mut_ptr().add(at), source.as_ptr().add(start), len, &strategy) };
                assert_eq!(outcome.signal, 0);
                assert_eq!(target[at..at + len], source[start..start + len], "{strategy:?} {start} {len}");
                assert!(target[..at].iter().chain(&target[at + len..]).all(|b| *b == 0), "{strategy:?} {start} {len}");
            }
        }
    }

    /// The strategies to test: every path forced from 65 bytes on, with and without AVX.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    #[cfg(target_arch = "x86_64")]
    fn strategies() -> Vec<x86_64::Strategy> {
        let avx = [false, std::arch::is_x86_feature_detected!("avx2")];
        let thresholds = [(usize::MAX, usize::MAX), (usize::MAX, 65), (65, usize::MAX), (4096, 2048)];
        avx.iter()
            .flat_map(|avx| {
                thresholds.iter().map(|&(non_temporal_from, rep_movsb_from)| x86_64::Strategy {
                    non_temporal_from,
                    rep_movsb_from,
                    avx: *avx,
                })
            })
            .collect()
    }

    /// The one strategy of `aarch64`.
    #[cfg(all(target_arch = "aarch64", target_os = "linux", not(miri)))]
    fn strategies() -> Vec<routine::Strategy> {
        vec![routine::strategy()]
    }

    /// A shared mapping of a memfd of `pages` pages, its descriptor kept for `ftruncate`.
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    fn memfd_mapping(pages: usize) -> (rustix::fd::OwnedFd, *mut u8, usize) {
        use rustix::mm::{mmap, MapFlags, ProtFlags};
        let len = pages * crate::page_size();
        let fd = rustix::fs::memfd_create("ipcmem-access-test", rustix::fs::MemfdFlags::CLOEXEC).unwrap();
        rustix::fs::ftruncate(&fd, len as u64).unwrap();
        // SAFETY: a new mapping of our own memfd at an address the kernel chooses.
        let ptr =
            unsafe { mmap(std::ptr::null_mut(), len, ProtFlags::READ | ProtFlags::WRITE, MapFlags::SHARED, &fd, 0) }
                .unwrap();
        (fd, ptr.cast(), len)
    }

    #[test]
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    fn a_fault_past_the_end_of_a_shrunk_file_is_an_error_of_every_copy_size() {
        let (fd, base, len) = memfd_mapping(4);
        let page = crate::page_size();
        // SAFETY: within our mapping; nothing else uses it.
        unsafe { store(base, &vec![7; len]) }.unwrap();
        rustix::fs::ftruncate(&fd, page as u64).unwrap();
        ready();
        for (size, strategy) in [1, 3, 7, 15, 31, 63, 100, 4000, 2 * page, 3 * page]
            .into_iter()
            .flat_map(|size| strategies().into_iter().map(move |strategy| (size, strategy)))
        {
            let at = len - size;
            let mut buf = vec![0; size];
            // SAFETY: within the mapping, which stays mapped (its pages past the end are gone).
            let fault = outcome(unsafe { routine::copy(buf.as_mut_ptr(), base.add(at), size, &strategy) }).unwrap_err();
            assert_eq!(fault.signal, Signal::Bus, "{size}");
            assert!((base as usize + page..base as usize + len).contains(&fault.address), "{size}: {fault:?}");
            // SAFETY: as above.
            let fault = outcome(unsafe { routine::copy(base.add(at), buf.as_ptr(), size, &strategy) }).unwrap_err();
            assert_eq!(fault.signal, Signal::Bus, "{size}");
            // SAFETY: as above.
            assert!(unsafe { touch(base.add(at), true) }.is_err());
        }
        // The first page is still there.
        let mut first = vec![0; page];
        // SAFETY: as above.
        unsafe { load(base, &mut first) }.unwrap();
        assert!(first.iter().all(|b| *b == 7));
        // SAFETY: our mapping, unused from now on.
        unsafe { rustix::mm::munmap(base.cast(), len) }.unwrap();
    }

    #[test]
    #[cfg(all(any(target_arch = "x86_64", target_arch = "aarch64"), target_os = "linux", not(miri)))]
    fn a_store_to_a_read_only_page_is_a_segv_error() {
        let (_fd, base, len) = memfd_mapping(2);
        // SAFETY: our own mapping.
        unsafe { rustix::mm::mprotect(base.cast(), len, rustix::mm::MprotectFlags::READ) }.unwrap();
        // SAFETY: within the mapping, which stays mapped.
        let fault = unsafe { store(base.add(10), &[1; 100]) }.unwrap_err();
        assert_eq!((fault.signal, fault.address), (Signal::Segv, base as usize + 10));
        let mut buf = [1; 100];
        // SAFETY: as above; reading is allowed.
        unsafe { load(base.add(10), &mut buf) }.unwrap();
        assert_eq!(buf, [0; 100]);
        // SAFETY: our mapping, unused from now on.
        unsafe { rustix::mm::munmap(base.cast(), len) }.unwrap();
    }
}
