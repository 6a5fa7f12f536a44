//! Inter-process shared memory for Linux: POSIX named objects (`/name`, as `shm_open`) and
//! System V segments (`shmget`, keys and ids), with the calls of the Julia package
//! InterProcessCommunication.jl and what its peers lack: open-or-create that says which,
//! volatile objects that really vanish when the last user (or a crashed one) is gone, and a
//! sound safe API. On top of them: typed arrays in the Julia package's layout ([`array`](mod@array)) and
//! frame streams between processes, with serials, timestamps, no torn frame and every loss
//! counted ([`stream`]).
//!
//! ```
//! use ipcmem::{Key, Outcome, SharedMemory};
//!
//! // A POSIX object, volatile (destroyed when the last handle anywhere is dropped), mode 0o600.
//! let name = format!("/ipcmem-doc-lib-{}", std::process::id());
//! let shm = SharedMemory::create(name.as_str(), 4096)?;
//! shm.write_at(0, b"frame 1")?;
//!
//! // Another process opens it by name; here, a second handle does the same.
//! let reader = SharedMemory::open_readonly(name.as_str())?;
//! let mut buf = [0; 7];
//! reader.read_at(0, &mut buf)?;
//! assert_eq!(&buf, b"frame 1");
//!
//! // A System V segment without a key, shared by its id; open_or_create tells what it did.
//! let segment = SharedMemory::create(Key::PRIVATE, 1000)?;
//! let (same, outcome) = SharedMemory::options().open_or_create(name.as_str(), 4096)?;
//! assert_eq!(outcome, Outcome::Opened);
//! assert_eq!(segment.len(), 1000);
//! # drop(same);
//! # Ok::<(), ipcmem::Error>(())
//! ```
//!
//! | Julia (`IPC`) | ipcmem |
//! |---|---|
//! | `SharedMemory(id, len; perms, volatile)` | [`SharedMemory::create`], [`SharedMemory::options`] |
//! | `SharedMemory(id; readonly)` | [`SharedMemory::open`], [`SharedMemory::open_readonly`] |
//! | `pointer`, `sizeof`, `shmid`, `rm` | [`SharedMemory::as_ptr`], [`len`](SharedMemory::len), [`id`](SharedMemory::id), [`remove`](SharedMemory::remove) |
//! | `ShmId`, `IPC.Key`, `IPC.PRIVATE`, `IPC.PAGE_SIZE` | [`ShmId`], [`Key::from_path`], [`Key::PRIVATE`], [`page_size`] |
//! | `shmget`, `shmat`, `shmdt`, `shmcfg`, `shmctl`, `shminfo`, `shminfo!`, `ShmInfo` | [`sysv`] |
//! | `shmrm`, `rm(SharedMemory, …)` | [`shmrm`] |
//! | `Semaphore(name, value; perms, volatile)`, `Semaphore(name)`, `rm(Semaphore, name)` | [`Semaphore::create`], [`Semaphore::options`], [`Semaphore::open`], [`Semaphore::unlink`] |
//! | `Semaphore(mem, value; offset)`, `Semaphore(mem; offset)` | [`Semaphore::init_at`], [`Semaphore::attach_at`] (never re-initialises) |
//! | `post`, `wait`, `trywait`, `timedwait`, `sem[]` | [`post`](Semaphore::post), [`wait`](Semaphore::wait), [`try_wait`](Semaphore::try_wait), [`wait_timeout`](Semaphore::wait_timeout), [`value`](Semaphore::value) |
//! | process-shared locks (not robust, re-initialised on attach) | [`sync::Mutex`] (robust), [`sync::RwLock`], [`sync::Condvar`], and [`Event`] (spin, then futex) |

#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access;
pub mod array;
pub mod error;
pub mod event;
pub mod gc;
mod holders;
mod huge;
pub mod inventory;
pub mod key;
pub mod posix;
mod prefault;
pub mod semaphore;
pub mod shm;
pub mod stream;
pub mod sync;
pub mod sysv;

pub use array::SharedArray;
pub use error::{Error, Limit, NameRule, Result};
pub use event::Event;
pub use key::{Id, Key, ShmId};
pub use semaphore::{Semaphore, SemaphoreOptions};
pub use shm::{shmrm, Access, AsSharedMemory, Holding, Outcome, Persistence, SharedMemory, ShmOptions};
pub use sysv::ShmInfo;

/// The size of a memory page, read from the system at run time, as `IPC.PAGE_SIZE` in Julia.
pub fn page_size() -> usize {
    rustix::param::page_size()
}

/// The Rust snippets of README.md, run as doc tests so that the README stays true.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;
