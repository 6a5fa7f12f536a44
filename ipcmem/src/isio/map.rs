//! A shared mapping of a stream's file, and the only code of [`crate::isio`] that touches its
//! bytes: copies in and out through [`crate::access`] (fault-safe: a file shrunk under a copy
//! is an error, not a `SIGBUS`), atomic words claimed at their width, and `sem_t` addresses.
//!
//! Other processes write the file at any time, so nothing here hands out `&[u8]` over it.

use std::os::fd::OwnedFd;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicI32, AtomicU64, AtomicU8};

use rustix::mm::{self, MapFlags, ProtFlags};

use crate::access::{self, Copier};
use crate::error::{Error, Result};

/// Where glibc keeps a semaphore's flag word (`private`) in its 32-byte `sem_t` on 64-bit
/// systems: after the 64-bit word of value and waiters.
const SEM_FLAG_OFFSET: usize = 8;
/// The flag word of a process-shared semaphore (`FUTEX_PRIVATE_FLAG`, which glibc XORs away).
const SEM_SHARED_FLAG: i32 = 128;

/// A `MAP_SHARED` mapping of a whole file, unmapped on drop.
pub(crate) struct FileMap {
    ptr: NonNull<u8>,
    len: usize,
    writable: bool,
    /// The stream as errors name it (`isio:NAME`).
    object: String,
    /// The open file, to tell why a copy faulted (its size now).
    file: OwnedFd,
    /// The copy routine, ready (its fault handler installed).
    copier: Copier,
}

// SAFETY: the mapping stays valid for the life of the value, and every access goes through
// atomic operations, byte-wise atomic copies or `sem_*` calls, which other threads (and other
// processes) may make at the same time.
unsafe impl Send for FileMap {}
// SAFETY: as above.
unsafe impl Sync for FileMap {}

/// The atomic types the layout holds: `write` (u8), pids (i32), counters (u64).
pub(crate) trait Word {}
impl Word for AtomicU8 {}
impl Word for AtomicI32 {}
impl Word for AtomicU64 {}

impl FileMap {
    /// Maps the `len` bytes of the file open at `fd` (`len` > 0), and keeps the file.
    #[doc(alias = "mmap")]
    pub(crate) fn new(object: &str, fd: OwnedFd, len: usize, writable: bool) -> Result<FileMap> {
        let prot = if writable { ProtFlags::READ | ProtFlags::WRITE } else { ProtFlags::READ };
        // SAFETY: a new shared mapping at an address the kernel chooses: it overlaps no memory
        // Rust knows of. The callers check that `len` is above 0.
        let ptr = unsafe { mm::mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, &fd, 0) }
            .map_err(|errno| Error::from_errno(&object, "mmap", errno))?;
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(|| Error::Os {
            object: object.to_owned(),
            operation: "mmap",
            errno: rustix::io::Errno::FAULT,
        })?;
        Ok(FileMap { ptr, len, writable, object: object.to_owned(), file: fd, copier: Copier::new() })
    }

    /// The bytes mapped.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Whether the mapping may be written.
    pub(crate) fn is_writable(&self) -> bool {
        self.writable
    }

    /// The address of `length` bytes at `offset`, checked to lie in the mapping.
    fn range(&self, offset: usize, length: usize) -> Result<*mut u8> {
        if offset.checked_add(length).is_none_or(|end| end > self.len) {
            return Err(Error::OutOfBounds { object: self.object.clone(), offset, length, len: self.len });
        }
        // SAFETY: `offset <= len` (checked above): within the mapping or one past its end.
        Ok(unsafe { self.ptr.as_ptr().add(offset) })
    }

    fn check_writable(&self) -> Result<()> {
        if self.writable {
            Ok(())
        } else {
            Err(Error::ReadOnly { object: self.object.clone() })
        }
    }

    /// Copies `buf.len()` bytes at `offset` into `buf`, byte-wise atomically.
    pub(crate) fn copy_out(&self, offset: usize, buf: &mut [u8]) -> Result<()> {
        let src = self.range(offset, buf.len())?;
        // SAFETY: the range lies in the mapping (checked), which lives as long as `self`; `buf`
        // is private memory; the copy is sound against concurrent writers (see `access`).
        let copied = unsafe { self.copier.load(src, buf) };
        copied.map_err(|fault| self.fault_error(fault, offset, buf.len()))
    }

    /// Copies `data` to `offset`, byte-wise atomically; fails on a read-only mapping.
    pub(crate) fn copy_in(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.check_writable()?;
        let dst = self.range(offset, data.len())?;
        // SAFETY: the range lies in the mapping, which is writable (both checked); `data` is
        // private memory; the copy is sound against concurrent accesses (see `access`).
        let copied = unsafe { self.copier.store(dst, data) };
        copied.map_err(|fault| self.fault_error(fault, offset, data.len()))
    }

    /// Checks, by a fault-safe copy of its last byte, that the file was not shrunk under the
    /// mapping; done before atomic accesses and `sem_*` calls near its end, which would die of
    /// the `SIGBUS` (a shrink in the moment between is not caught).
    pub(crate) fn check_whole(&self) -> Result<()> {
        self.copy_out(self.len - 1, &mut [0])
    }

    /// The error for `fault` during a copy of `length` bytes at `offset`: the file shrunk under
    /// it, or another cause, as far as the file tells.
    #[cold]
    fn fault_error(&self, fault: access::Fault, offset: usize, length: usize) -> Error {
        let object = self.object.clone();
        let at = fault.address.wrapping_sub(self.ptr.as_ptr() as usize);
        let signal = if fault.signal == access::Signal::Bus { "SIGBUS" } else { "SIGSEGV" };
        if at >= self.len {
            return Error::Fault {
                object,
                signal,
                offset,
                cause: format!("the caller's buffer faulted at address {:#x}, not the stream", fault.address),
            };
        }
        match rustix::fs::fstat(&self.file).ok().and_then(|stat| u64::try_from(stat.st_size).ok()) {
            Some(size) if size <= at as u64 => Error::Shrunk { object, size, offset, length },
            _ => Error::Fault {
                object,
                signal,
                offset: at,
                cause: "a page of the stream's file could not be provided (its file system is full, or the \
                        mapping lost its permissions)"
                    .into(),
            },
        }
    }

    /// The atomic word at `offset` (aligned to its size). Loads work on a read-only mapping;
    /// the callers check [`is_writable`](Self::is_writable) before storing. On a writable
    /// mapping the word is claimed at its width (see `access::claims`): the stream's words are
    /// always used at the same width, so a claim never conflicts unless the layout is broken.
    pub(crate) fn word<A: Word>(&self, offset: usize) -> Result<&A> {
        let ptr = self.range(offset, size_of::<A>())?;
        if !ptr.cast::<A>().is_aligned() {
            return Err(Error::Misaligned { object: self.object.clone(), offset, align: align_of::<A>() });
        }
        if self.writable {
            access::claim(ptr as usize, size_of::<A>(), size_of::<A>()).map_err(|conflict| Error::InvalidArgument {
                object: self.object.clone(),
                reason: format!(
                    "bytes at offset {offset} are used as {}-bit atomics already: {}-bit ones would race (undefined behaviour)",
                    conflict.width * 8,
                    size_of::<A>() * 8
                ),
            })?;
        }
        // SAFETY: aligned and within the mapping, which outlives the borrow of `self`; atomics
        // may be shared with other threads and processes, and every bit pattern is a value.
        Ok(unsafe { &*ptr.cast::<A>() })
    }

    /// The address of the `sem_t` at `offset` for `sem_post` and the waits, checked to hold
    /// what glibc's `sem_init` leaves in its flag word (`private`: 128 process-shared, 0
    /// process-private or zeroed). glibc passes that word into the futex operation it asks the
    /// kernel for, and aborts the process when the kernel refuses an unknown operation: a
    /// garbage word in a hostile file would otherwise kill us. (A process that rewrites the word
    /// between the check and the call is beyond this check.)
    pub(crate) fn live_sem(&self, offset: usize) -> Result<*mut libc::sem_t> {
        let sem = self.sem(offset)?;
        let mut word = [0_u8; 4];
        self.copy_out(offset + SEM_FLAG_OFFSET, &mut word)?;
        match i32::from_ne_bytes(word) {
            0 | SEM_SHARED_FLAG => Ok(sem),
            found => Err(Error::InvalidArgument {
                object: self.object.clone(),
                reason: format!(
                    "the sem_t at offset {offset} is no glibc semaphore (flag word {found:#x}, not 0 or 0x80)"
                ),
            }),
        }
    }

    /// The address of the `sem_t` at `offset` (aligned to 8), for `sem_getvalue` (which only
    /// reads it, also through a read-only mapping) and `sem_init`.
    pub(crate) fn sem(&self, offset: usize) -> Result<*mut libc::sem_t> {
        #[allow(clippy::cast_ptr_alignment)] // checked just below
        let ptr = self.range(offset, size_of::<libc::sem_t>())?.cast::<libc::sem_t>();
        if !ptr.is_aligned() {
            return Err(Error::Misaligned { object: self.object.clone(), offset, align: align_of::<libc::sem_t>() });
        }
        Ok(ptr)
    }
}

impl Drop for FileMap {
    fn drop(&mut self) {
        if self.writable {
            access::release(self.ptr.as_ptr() as usize, self.len);
        }
        // SAFETY: our own mapping; no reference into it outlives `self` (`word` borrows it).
        let _ = unsafe { mm::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}
