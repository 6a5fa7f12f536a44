//! How fast a large object is ready for use, and how fast data goes in and out of it.
//!
//! Groups:
//!
//! - `ready_1g`: from nothing to a fresh 1 GiB object with every page allocated and mapped
//!   writable, timed from before the create to the last fault:
//!   - `first_touch`: raw `shm_open` + `ftruncate` + `mmap`, then one byte written per page;
//!   - `map_populate`: the same with `mmap(MAP_POPULATE)` (one thread, in the kernel);
//!   - `madv_populate_write`: `mmap`, then `madvise(MADV_POPULATE_WRITE)` on one thread;
//!   - `madv_populate_read`: the same with `MADV_POPULATE_READ`, what ipcmem uses, on one
//!     thread: ipcmem's gain over it is what its threads bring;
//!   - `ipcmem_prefault`: `SharedMemory::options().prefault(true).create` (volatile);
//!   - `sysv_first_touch`, `sysv_populate_read`, `sysv_ipcmem_prefault`: the same for a
//!     System V segment (ipcmem's `create` without prefault, then the touch or the `madvise`).
//! - `open_1g`: opening an existing, resident 1 GiB object (timed: the open only; the unmap is
//!   not timed): `ipcmem` (`SharedMemory::open`) against `raw` (`shm_open` + `fstat` + `mmap` +
//!   `close`); `ipcmem_prefault` against `raw_map_populate` (every page mapped before the open
//!   returns); `sysv_ipcmem` (`open(ShmId)`) against `sysv_raw` (`IPC_STAT` for the size, and
//!   `shmat`).
//! - `copy_64m` (and `copy_256k`, within the caches): 64 MiB in and out of a resident object through the byte-wise atomic
//!   `read_at` / `write_at`, against `memcpy` (`copy_from_slice`) between private buffers, and
//!   a plain `memcpy` out of the same shared mapping (`memcpy_from_shm`, allowed here because
//!   nothing writes it meanwhile).
//!
//! Every 1 GiB object is removed before the next one is made. Whatever a failed run leaves
//! (names with this process's prefix, segments it created) is removed when `main` ends.
//!
//! Run: `cargo bench -p ipcmem-bench --bench ready`; the medians are in
//! `target/criterion/<group>/<function>/new/estimates.json`.

use std::ffi::CString;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, SamplingMode, Throughput};
use ipcmem::{shmrm, Key, SharedMemory};

/// The size of the large objects.
const BIG: usize = 1 << 30;
/// The same, as `off_t` for `ftruncate`.
const BIG_OFF: libc::off_t = 1 << 30;
/// The size of the copies: well past the caches, so memory bandwidth is the limit.
const COPY: usize = 64 << 20;
/// The size of the copies within the caches, where the instructions are the limit.
const CACHED: usize = 256 << 10;

/// A fresh POSIX name, unique in this run and among processes.
fn unique_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!("{}{}", prefix(), NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The prefix of this process's names.
fn prefix() -> String {
    format!("/ipcmem-ready-{}-", std::process::id())
}

/// Panics with the OS error of a failed raw call.
fn check(ok: bool, call: &str) {
    assert!(ok, "{call}: {}", std::io::Error::last_os_error());
}

fn page() -> usize {
    ipcmem::page_size()
}

/// A raw POSIX object of `BIG` bytes, mapped with `flags` (besides `MAP_SHARED`).
struct RawPosix {
    name: CString,
    ptr: *mut u8,
}

impl RawPosix {
    /// `shm_open(O_CREAT|O_EXCL)` + `ftruncate` + `mmap` + `close`.
    fn create(flags: i32) -> RawPosix {
        let name = CString::new(unique_name()).expect("no NUL");
        // SAFETY: `name` is a valid C string.
        let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, 0o600) };
        check(fd >= 0, "shm_open");
        // SAFETY: `fd` is the descriptor just opened.
        check(unsafe { libc::ftruncate(fd, BIG_OFF) } == 0, "ftruncate");
        let ptr = map(fd, BIG, flags);
        // SAFETY: our descriptor, used no more: the mapping keeps the object.
        check(unsafe { libc::close(fd) } == 0, "close");
        RawPosix { name, ptr }
    }
}

impl Drop for RawPosix {
    fn drop(&mut self) {
        unmap(self.ptr, BIG);
        // SAFETY: a valid C string.
        unsafe { libc::shm_unlink(self.name.as_ptr()) };
    }
}

/// A shared read-write mapping of `len` bytes of `fd`, with `flags` besides `MAP_SHARED`.
fn map(fd: i32, len: usize, flags: i32) -> *mut u8 {
    // SAFETY: a new mapping at an address the kernel chooses.
    let ptr = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | flags, fd, 0)
    };
    check(ptr != libc::MAP_FAILED, "mmap");
    ptr.cast()
}

fn unmap(ptr: *mut u8, len: usize) {
    // SAFETY: a mapping of ours of `len` bytes that nothing uses any more.
    check(unsafe { libc::munmap(ptr.cast(), len) } == 0, "munmap");
}

/// Writes one byte in every page of `len` bytes at `ptr`.
fn first_touch(ptr: *mut u8, len: usize) {
    for offset in (0..len).step_by(page()) {
        // SAFETY: within a writable mapping of `len` bytes that only this thread uses.
        unsafe { ptr.add(offset).write_volatile(1) };
    }
}

/// `madvise(advice)` (`MADV_POPULATE_WRITE` or `MADV_POPULATE_READ`) on one thread.
fn populate(ptr: *mut u8, len: usize, advice: i32) {
    // SAFETY: a mapping of ours; populating changes no byte.
    check(unsafe { libc::madvise(ptr.cast(), len, advice) } == 0, "madvise");
}

/// Times `make` (which returns what keeps the object) `iters` times; the drop is not timed.
fn timed<T>(iters: u64, mut make: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let start = Instant::now();
        let kept = make();
        total += start.elapsed();
        drop(black_box(kept));
    }
    total
}

fn ready(c: &mut Criterion) {
    let mut group = c.benchmark_group("ready_1g");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(5));
    group.bench_function("first_touch", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let object = RawPosix::create(0);
                first_touch(object.ptr, BIG);
                object
            })
        });
    });
    group.bench_function("map_populate", |b| {
        b.iter_custom(|iters| timed(iters, || RawPosix::create(libc::MAP_POPULATE)));
    });
    group.bench_function("madv_populate_write", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let object = RawPosix::create(0);
                populate(object.ptr, BIG, libc::MADV_POPULATE_WRITE);
                object
            })
        });
    });
    group.bench_function("madv_populate_read", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let object = RawPosix::create(0);
                populate(object.ptr, BIG, libc::MADV_POPULATE_READ);
                object
            })
        });
    });
    group.bench_function("ipcmem_prefault", |b| {
        b.iter_custom(|iters| {
            timed(iters, || SharedMemory::options().prefault(true).create(unique_name().as_str(), BIG).unwrap())
        });
    });
    group.bench_function("sysv_first_touch", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let shm = SharedMemory::create(Key::PRIVATE, BIG).unwrap();
                first_touch(shm.as_mut_ptr(), BIG);
                shm
            })
        });
    });
    group.bench_function("sysv_populate_read", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let shm = SharedMemory::create(Key::PRIVATE, BIG).unwrap();
                populate(shm.as_mut_ptr(), BIG, libc::MADV_POPULATE_READ);
                shm
            })
        });
    });
    group.bench_function("sysv_ipcmem_prefault", |b| {
        b.iter_custom(|iters| {
            timed(iters, || SharedMemory::options().prefault(true).create(Key::PRIVATE, BIG).unwrap())
        });
    });
    group.finish();
}

/// A raw open of the POSIX object `name`: `shm_open` + `fstat` + `mmap` + `close`; returns the
/// mapping and its length.
fn raw_open(name: &CString, flags: i32) -> (*mut u8, usize) {
    // SAFETY: a valid C string.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDWR, 0) };
    check(fd >= 0, "shm_open");
    // SAFETY: all zeros is a valid `stat`, which fstat fills.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `stat` is ours.
    check(unsafe { libc::fstat(fd, &raw mut stat) } == 0, "fstat");
    let len = usize::try_from(stat.st_size).expect("a size");
    let ptr = map(fd, len, flags);
    // SAFETY: our descriptor, used no more.
    check(unsafe { libc::close(fd) } == 0, "close");
    (ptr, len)
}

/// A raw attach of segment `id`: `IPC_STAT` (for the size, as any user needs it) + `shmat`.
fn raw_attach(id: i32) -> (*mut u8, usize) {
    // SAFETY: all zeros is a valid `shmid_ds`, which IPC_STAT fills.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is ours.
    check(unsafe { libc::shmctl(id, libc::IPC_STAT, &raw mut ds) } == 0, "shmctl(IPC_STAT)");
    // SAFETY: the kernel chooses the address.
    let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    check(ptr as isize != -1, "shmat");
    (ptr.cast(), ds.shm_segsz)
}

/// A raw mapping, unmapped (or detached) on drop.
struct Raw(*mut u8, usize, bool);

impl Drop for Raw {
    fn drop(&mut self) {
        if self.2 {
            // SAFETY: an attachment of ours that nothing uses any more.
            check(unsafe { libc::shmdt(self.0.cast()) } == 0, "shmdt");
        } else {
            unmap(self.0, self.1);
        }
    }
}

fn open(c: &mut Criterion) {
    let name = unique_name();
    let c_name = CString::new(name.as_str()).expect("no NUL");
    let object = SharedMemory::options().volatile(false).prefault(true).create(name.as_str(), BIG).unwrap();
    let segment = SharedMemory::options().prefault(true).create(Key::PRIVATE, BIG).unwrap();
    let id = match segment.id() {
        ipcmem::Id::Shm(id) => id,
        other => panic!("a segment id, not {other}"),
    };
    let mut group = c.benchmark_group("open_1g");
    group.sample_size(10).measurement_time(Duration::from_secs(3));
    group.bench_function("ipcmem", |b| {
        b.iter_custom(|iters| timed(iters, || SharedMemory::open(name.as_str()).unwrap()));
    });
    group.bench_function("raw", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (ptr, len) = raw_open(&c_name, 0);
                Raw(ptr, len, false)
            })
        });
    });
    group.bench_function("sysv_ipcmem", |b| b.iter_custom(|iters| timed(iters, || SharedMemory::open(id).unwrap())));
    group.bench_function("sysv_raw", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (ptr, len) = raw_attach(id.as_raw());
                Raw(ptr, len, true)
            })
        });
    });
    group.sampling_mode(SamplingMode::Flat);
    group.bench_function("ipcmem_prefault", |b| {
        b.iter_custom(|iters| timed(iters, || SharedMemory::options().prefault(true).open(name.as_str()).unwrap()));
    });
    group.bench_function("raw_map_populate", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let (ptr, len) = raw_open(&c_name, libc::MAP_POPULATE);
                Raw(ptr, len, false)
            })
        });
    });
    group.finish();
    drop((object, segment));
    shmrm(name.as_str()).unwrap();
}

fn copy(c: &mut Criterion) {
    copy_group(c, "copy_64m", COPY);
    copy_group(c, "copy_256k", CACHED);
}

/// `read_at` / `write_at` of `len` bytes against `memcpy`, in group `group`.
fn copy_group(c: &mut Criterion, group: &str, len: usize) {
    let shm = SharedMemory::options().prefault(true).create(unique_name().as_str(), len).unwrap();
    let mut private = vec![1_u8; len];
    let mut other = vec![2_u8; len];
    let mut group = c.benchmark_group(group);
    group.sample_size(10).measurement_time(Duration::from_secs(3)).throughput(Throughput::Bytes(len as u64));
    group.bench_function("write_at", |b| b.iter(|| shm.write_at(0, black_box(&private)).unwrap()));
    group.bench_function("read_at", |b| b.iter(|| shm.read_at(0, black_box(&mut private)).unwrap()));
    group.bench_function("memcpy", |b| b.iter(|| black_box(&mut other).copy_from_slice(black_box(&private))));
    group.bench_function("memcpy_from_shm", |b| {
        b.iter(|| {
            // SAFETY: no process writes the object while the slice lives: this one only reads it,
            // and no other process knows its name.
            let bytes = unsafe { shm.as_slice() };
            black_box(&mut private).copy_from_slice(black_box(bytes));
        });
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(Duration::from_secs(1));
    targets = ready, open, copy
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
