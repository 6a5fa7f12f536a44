//! Lifecycle of a 4 KiB object: create, touch one byte, drop (and remove), POSIX and System V,
//! ipcmem against the same raw system calls through `libc`, in the same run.
//!
//! Groups (one per kind and persistence), each with the functions `ipcmem` and `raw` (and, for
//! POSIX, the `shared_memory` crate as a peer):
//!
//! - `posix_persistent`: `options().volatile(false).create` + write + drop + `shmrm`, against
//!   `shm_open(O_CREAT|O_EXCL|O_RDWR)` + `ftruncate` + `mmap` + `close` + touch + `munmap` +
//!   `shm_unlink`.
//! - `posix_volatile`: `create` (volatile) + write + drop (which unlinks), against the same raw
//!   sequence.
//! - `sysv_persistent`: `options().volatile(false).create(Key::PRIVATE)` + write + drop +
//!   `shmrm(id)`, against `shmget` + `shmat` + touch + `shmdt` + `shmctl(IPC_RMID)`.
//! - `sysv_volatile`: `create(Key::PRIVATE)` + write + drop, against `shmget` + `shmat` +
//!   `IPC_RMID` + touch + `shmdt`.
//!
//! Every iteration uses a fresh name (`/ipcmem-bench-<pid>-<n>`), made outside the timed part.
//! Whatever a failed run leaves (names with this process's prefix, segments it created) is
//! removed when `main` ends, also on a panic.
//!
//! Run: `cargo bench -p ipcmem-bench --bench lifecycle`; the medians are in
//! `target/criterion/<group>/<function>/new/estimates.json`.

use std::ffi::CString;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{criterion_group, BatchSize, Criterion};
use ipcmem::{shmrm, Key, SharedMemory};

/// The size of the objects: one page.
const LEN: usize = 4096;
/// The same, as `off_t` for `ftruncate`.
const LEN_OFF: libc::off_t = 4096;

/// A fresh POSIX name, unique in this run and among processes.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}{}", prefix(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The prefix of this process's names.
fn prefix() -> String {
    format!("/ipcmem-bench-{}-", std::process::id())
}

/// A name and the same name as a C string: both are made outside the timed part.
fn names() -> (String, CString) {
    let name = unique_name();
    let c_name = CString::new(name.as_str()).expect("names have no NUL");
    (name, c_name)
}

/// Panics with the OS error of a failed raw call.
fn check(ok: bool, call: &str) {
    assert!(ok, "{call}: {}", std::io::Error::last_os_error());
}

/// Creates a POSIX object the classic way and maps it: `shm_open` + `ftruncate` + `mmap` +
/// `close`.
fn raw_posix_create(name: &CString) -> *mut u8 {
    // SAFETY: `name` is a valid NUL-terminated string; shm_open only reads it.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600) };
    check(fd >= 0, "shm_open");
    // SAFETY: `fd` is the descriptor just opened.
    check(unsafe { libc::ftruncate(fd, LEN_OFF) } == 0, "ftruncate");
    // SAFETY: a new shared mapping at an address the kernel chooses, of a file of LEN bytes.
    let ptr =
        unsafe { libc::mmap(std::ptr::null_mut(), LEN, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED, fd, 0) };
    check(ptr != libc::MAP_FAILED, "mmap");
    // SAFETY: `fd` is ours and used no more; the mapping keeps the object.
    check(unsafe { libc::close(fd) } == 0, "close");
    ptr.cast()
}

/// Writes one byte through a raw pointer to a mapping of at least one writable byte.
fn touch(ptr: *mut u8) {
    // SAFETY: callers pass the base of a live, writable mapping of LEN bytes.
    unsafe { ptr.write_volatile(1) };
}

/// Unmaps a mapping of LEN bytes made by `raw_posix_create`.
fn raw_unmap(ptr: *mut u8) {
    // SAFETY: `ptr` is the base of a mapping of LEN bytes that nothing uses any more.
    check(unsafe { libc::munmap(ptr.cast(), LEN) } == 0, "munmap");
}

/// Unlinks a POSIX object, as `shm_unlink`.
fn raw_posix_unlink(name: &CString) {
    // SAFETY: `name` is a valid NUL-terminated string.
    check(unsafe { libc::shm_unlink(name.as_ptr()) } == 0, "shm_unlink");
}

/// The whole raw POSIX lifecycle.
fn raw_posix(name: &CString) {
    let ptr = raw_posix_create(name);
    touch(ptr);
    raw_unmap(ptr);
    raw_posix_unlink(name);
}

/// Makes a private System V segment of LEN bytes and attaches it.
fn raw_sysv_create() -> (i32, *mut u8) {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(libc::IPC_PRIVATE, LEN, libc::IPC_CREAT | libc::IPC_EXCL | 0o600) };
    check(id >= 0, "shmget");
    // SAFETY: the kernel chooses the address; the new attachment overlaps nothing of ours.
    let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    check(ptr as isize != -1, "shmat");
    (id, ptr.cast())
}

/// Marks segment `id` for removal.
fn raw_sysv_remove(id: i32) {
    // SAFETY: IPC_RMID reads no buffer; a null pointer is allowed.
    check(unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } == 0, "shmctl(IPC_RMID)");
}

/// Detaches the attachment at `ptr`.
fn raw_sysv_detach(ptr: *mut u8) {
    // SAFETY: `ptr` is an address shmat returned, not used any more.
    check(unsafe { libc::shmdt(ptr.cast()) } == 0, "shmdt");
}

fn posix_persistent(c: &mut Criterion) {
    let mut group = c.benchmark_group("posix_persistent");
    group.bench_function("ipcmem", |b| {
        b.iter_batched(
            unique_name,
            |name| {
                let shm = SharedMemory::options().volatile(false).create(name.as_str(), LEN).unwrap();
                shm.write_at(0, &[1]).unwrap();
                drop(black_box(shm));
                shmrm(name.as_str()).unwrap();
                name
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("raw", |b| {
        b.iter_batched(
            names,
            |names| {
                raw_posix(&names.1);
                names
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("shared_memory", |b| {
        b.iter_batched(
            names,
            |names| {
                let mut shm = shared_memory::ShmemConf::new().size(LEN).os_id(&names.0).create().unwrap();
                // Not the owner: the object outlives the handle, removed afterwards as the others are.
                shm.set_owner(false);
                touch(shm.as_ptr());
                drop(black_box(shm));
                raw_posix_unlink(&names.1);
                names
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn posix_volatile(c: &mut Criterion) {
    let mut group = c.benchmark_group("posix_volatile");
    group.bench_function("ipcmem", |b| {
        b.iter_batched(
            unique_name,
            |name| {
                let shm = SharedMemory::create(name.as_str(), LEN).unwrap();
                shm.write_at(0, &[1]).unwrap();
                drop(black_box(shm));
                name
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("raw", |b| {
        b.iter_batched(
            names,
            |names| {
                raw_posix(&names.1);
                names
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("shared_memory", |b| {
        b.iter_batched(
            unique_name,
            |name| {
                // The owner (the creator) unlinks the object on drop.
                let shm = shared_memory::ShmemConf::new().size(LEN).os_id(&name).create().unwrap();
                touch(shm.as_ptr());
                drop(black_box(shm));
                name
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

fn sysv_persistent(c: &mut Criterion) {
    let mut group = c.benchmark_group("sysv_persistent");
    group.bench_function("ipcmem", |b| {
        b.iter(|| {
            let shm = SharedMemory::options().volatile(false).create(Key::PRIVATE, LEN).unwrap();
            shm.write_at(0, &[1]).unwrap();
            let id = shm.id();
            drop(black_box(shm));
            shmrm(id).unwrap();
        });
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            let (id, ptr) = raw_sysv_create();
            touch(ptr);
            raw_sysv_detach(black_box(ptr));
            raw_sysv_remove(id);
        });
    });
    group.finish();
}

fn sysv_volatile(c: &mut Criterion) {
    let mut group = c.benchmark_group("sysv_volatile");
    group.bench_function("ipcmem", |b| {
        b.iter(|| {
            let shm = SharedMemory::create(Key::PRIVATE, LEN).unwrap();
            shm.write_at(0, &[1]).unwrap();
            drop(black_box(shm));
        });
    });
    group.bench_function("raw", |b| {
        b.iter(|| {
            let (id, ptr) = raw_sysv_create();
            raw_sysv_remove(id);
            touch(ptr);
            raw_sysv_detach(black_box(ptr));
        });
    });
    group.finish();
}

/// Short measurements: each iteration takes microseconds, so a few seconds give thousands.
fn config() -> Criterion {
    Criterion::default().warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = posix_persistent, posix_volatile, sysv_persistent, sysv_volatile
}

/// Removes, on drop, whatever a failed run left: POSIX names with this process's prefix and
/// System V segments this process created.
struct Leftovers;

impl Drop for Leftovers {
    fn drop(&mut self) {
        ipcmem::gc::sweep(&prefix());
    }
}

fn main() {
    let _leftovers = Leftovers;
    benches();
    Criterion::default().configure_from_args().final_summary();
}
