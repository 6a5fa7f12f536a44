//! The raw system calls through `libc`, as a C program makes them: the floor ipcmem is
//! measured against. Nothing here does more than the calls named.

use std::ffi::CStr;
use std::ptr::NonNull;

use crate::failure::failure;
use crate::failure::Failure;

/// The mode of every object the bench makes.
const MODE: libc::mode_t = 0o600;

/// A failed call, with the OS error it left in `errno`.
fn os_error(call: &str) -> Failure {
    failure(format!("{call}: {}", std::io::Error::last_os_error()))
}

/// How a [`Mapping`] was made, and so how it is undone.
#[derive(Debug, Clone, Copy)]
enum Made {
    Mmap,
    Shmat,
}

/// Read-write shared memory mapped into this process, unmapped (`munmap`) or detached
/// (`shmdt`) when dropped.
#[derive(Debug)]
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    made: Made,
}

impl Mapping {
    /// The first byte.
    pub fn ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    /// Writes one byte in every page, as a program that fills the object would.
    pub fn touch_pages(&self) {
        // SAFETY: the mapping is `len` writable bytes for the life of `self`; the bench's
        // objects have unique names, so no one else writes them.
        unsafe { touch_pages(self.ptr(), self.len) };
    }

    /// Makes every page of the mapping resident, on this thread (`MADV_POPULATE_WRITE`,
    /// Linux 5.14).
    pub fn populate_write(&self) -> Result<(), Failure> {
        // SAFETY: the range is exactly this mapping; populating changes no content.
        let done = unsafe { libc::madvise(self.ptr().cast(), self.len, libc::MADV_POPULATE_WRITE) };
        if done != 0 {
            return Err(os_error("madvise(MADV_POPULATE_WRITE)"));
        }
        Ok(())
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        match self.made {
            // SAFETY: the mapping was made by mmap with this address and length, and nothing
            // refers to it once its owner is dropped.
            Made::Mmap => unsafe { libc::munmap(self.ptr().cast(), self.len) },
            // SAFETY: the address is what shmat returned; nothing refers to it any more.
            Made::Shmat => unsafe { libc::shmdt(self.ptr().cast()) },
        };
    }
}

/// Private anonymous memory (`mmap(MAP_PRIVATE|MAP_ANONYMOUS)`), page-aligned as a shared
/// mapping is: the same memory as far as the hardware is concerned, without the sharing.
#[derive(Debug)]
pub struct PrivateMemory(Mapping);

impl PrivateMemory {
    /// `len` bytes, every page written once (so resident).
    pub fn new(len: usize) -> Result<PrivateMemory, Failure> {
        // SAFETY: a new private mapping at an address the kernel chooses: it overlaps nothing.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(os_error("mmap(MAP_ANONYMOUS)"));
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| failure("mmap gave a null address"))?;
        let memory = Mapping { ptr, len, made: Made::Mmap };
        memory.touch_pages();
        Ok(PrivateMemory(memory))
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: a private mapping of `len` readable bytes, owned by `self`: no other process
        // sees it, and `&self` excludes writers in this one.
        unsafe { std::slice::from_raw_parts(self.0.ptr(), self.0.len) }
    }

    /// The bytes, to write.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in `as_slice`; `&mut self` makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.0.ptr(), self.0.len) }
    }
}

/// Writes one byte in every page of `len` bytes at `ptr`.
///
/// # Safety
/// `ptr..ptr + len` must be mapped and writable, and nothing may access it meanwhile.
pub unsafe fn touch_pages(ptr: *mut u8, len: usize) {
    for offset in (0..len).step_by(ipcmem::page_size()) {
        // SAFETY: `offset < len`: within the range the caller vouches for.
        unsafe { ptr.add(offset).write_volatile(1) };
    }
}

/// `mmap(MAP_SHARED)` of `len` bytes of `fd`, read-write, with `extra` flags.
fn map(fd: libc::c_int, len: usize, extra: libc::c_int) -> Result<Mapping, Failure> {
    // SAFETY: a new mapping at an address the kernel chooses: it overlaps nothing of ours.
    let ptr = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | extra, fd, 0)
    };
    if ptr == libc::MAP_FAILED {
        return Err(os_error("mmap"));
    }
    let ptr = NonNull::new(ptr.cast()).ok_or_else(|| failure("mmap gave a null address"))?;
    Ok(Mapping { ptr, len, made: Made::Mmap })
}

/// Closes a descriptor this module opened.
fn close(fd: libc::c_int) {
    // SAFETY: `fd` was opened here and is used no more.
    unsafe { libc::close(fd) };
}

/// Makes a POSIX object the classic way and maps it: `shm_open(O_CREAT|O_EXCL)` +
/// `ftruncate` + `mmap` (with `MAP_POPULATE` if `populate`) + `close`.
pub fn posix_create(name: &CStr, len: usize, populate: bool) -> Result<Mapping, Failure> {
    // SAFETY: `name` is a NUL-terminated string; shm_open only reads it.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_CREAT | libc::O_EXCL | libc::O_RDWR, MODE) };
    if fd < 0 {
        return Err(os_error("shm_open"));
    }
    let size = libc::off_t::try_from(len).map_err(|_| failure("the size does not fit off_t"))?;
    // SAFETY: `fd` is the descriptor just opened.
    if unsafe { libc::ftruncate(fd, size) } != 0 {
        let error = os_error("ftruncate");
        close(fd);
        return Err(error);
    }
    let mapping = map(fd, len, if populate { libc::MAP_POPULATE } else { 0 });
    close(fd);
    mapping
}

/// Opens an existing POSIX object and maps all of it: `shm_open` + `fstat` + `mmap` +
/// `close`.
pub fn posix_open(name: &CStr) -> Result<Mapping, Failure> {
    // SAFETY: `name` is a NUL-terminated string; shm_open only reads it.
    let fd = unsafe { libc::shm_open(name.as_ptr(), libc::O_RDWR, 0) };
    if fd < 0 {
        return Err(os_error("shm_open"));
    }
    // SAFETY: all zeros is a valid `stat` (plain integers); fstat fills it.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `fd` is open; `stat` is a valid place for the result.
    if unsafe { libc::fstat(fd, &raw mut stat) } != 0 {
        let error = os_error("fstat");
        close(fd);
        return Err(error);
    }
    let mapping = usize::try_from(stat.st_size).map_err(|_| failure("a negative size")).and_then(|len| map(fd, len, 0));
    close(fd);
    mapping
}

/// Unlinks a POSIX object, as `shm_unlink`.
pub fn posix_unlink(name: &CStr) -> Result<(), Failure> {
    // SAFETY: `name` is a NUL-terminated string.
    if unsafe { libc::shm_unlink(name.as_ptr()) } != 0 {
        return Err(os_error("shm_unlink"));
    }
    Ok(())
}

/// Makes a System V segment of `len` bytes (`shmget(IPC_CREAT|IPC_EXCL)`); gives its id.
pub fn sysv_create(key: libc::key_t, len: usize) -> Result<libc::c_int, Failure> {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key, len, libc::IPC_CREAT | libc::IPC_EXCL | MODE.cast_signed()) };
    if id < 0 {
        return Err(os_error("shmget"));
    }
    Ok(id)
}

/// The id of the existing segment of `key` (`shmget(key, 0, 0)`).
pub fn sysv_get(key: libc::key_t) -> Result<libc::c_int, Failure> {
    // SAFETY: shmget takes plain integers.
    let id = unsafe { libc::shmget(key, 0, 0) };
    if id < 0 {
        return Err(os_error("shmget"));
    }
    Ok(id)
}

/// The size of segment `id` (`shmctl(IPC_STAT)`).
pub fn sysv_size(id: libc::c_int) -> Result<usize, Failure> {
    // SAFETY: all zeros is a valid `shmid_ds` (plain integers); IPC_STAT fills it.
    let mut ds: libc::shmid_ds = unsafe { std::mem::zeroed() };
    // SAFETY: `ds` is a valid, writable shmid_ds.
    if unsafe { libc::shmctl(id, libc::IPC_STAT, &raw mut ds) } != 0 {
        return Err(os_error("shmctl(IPC_STAT)"));
    }
    Ok(ds.shm_segsz)
}

/// Attaches segment `id` of `len` bytes read-write (`shmat`).
pub fn sysv_attach(id: libc::c_int, len: usize) -> Result<Mapping, Failure> {
    // SAFETY: the kernel chooses the address: the attachment overlaps nothing of ours.
    let ptr = unsafe { libc::shmat(id, std::ptr::null(), 0) };
    if ptr as isize == -1 {
        return Err(os_error("shmat"));
    }
    let ptr = NonNull::new(ptr.cast()).ok_or_else(|| failure("shmat gave a null address"))?;
    Ok(Mapping { ptr, len, made: Made::Shmat })
}

/// Marks segment `id` for removal (`shmctl(IPC_RMID)`).
pub fn sysv_remove(id: libc::c_int) -> Result<(), Failure> {
    // SAFETY: IPC_RMID reads no buffer: a null pointer is allowed.
    if unsafe { libc::shmctl(id, libc::IPC_RMID, std::ptr::null_mut()) } != 0 {
        return Err(os_error("shmctl(IPC_RMID)"));
    }
    Ok(())
}
