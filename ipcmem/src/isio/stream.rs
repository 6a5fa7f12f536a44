//! [`Stream`]: one open ImageStreamIO stream; [`Dir`]: the directory of streams; [`Reader`]: a
//! claimed semaphore to wait on.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{fence, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::fs::{self, Mode, OFlags};
use rustix::io::Errno;

use super::layout::{self, kw, md, Layout, Metadata, Timespec, KEYWORD_SIZE, SEM_SIZE};
use super::map::FileMap;
use super::{DataType, DEFAULT_DIR, DEFAULT_SEMAPHORES, SEMAPHORE_MAXVAL, SUFFIX};
use crate::error::{last_errno, Error, Result};
use crate::sync::monotonic_deadline;

// glibc 2.30+: `sem_timedwait` with a deadline on a chosen clock; the `libc` crate lacks it.
// ImageStreamIO's readers call `sem_timedwait` (a `CLOCK_REALTIME` deadline, which a clock
// step moves); the semaphores are glibc's own in the stream file, so glibc's calls wait on them.
unsafe extern "C" {
    fn sem_clockwait(sem: *mut libc::sem_t, clock: libc::clockid_t, abstime: *const libc::timespec) -> libc::c_int;
}

/// How long [`Stream::read_frame`] retries while writers keep the frame changing.
const READ_PATIENCE: Duration = Duration::from_millis(200);
/// The mode of a new stream file, as ImageStreamIO's (`FILEMODE`, umask cleared).
const FILE_MODE: u32 = 0o666;
/// A keyword slot is free when its type letter is this (or 0).
const UNUSED: u8 = b'N';

/// The directory of streams: `$MILK_SHM_DIR`, or `/milk/shm` when it is not set.
///
/// Unlike ImageStreamIO, ipcmem does not fall back to `/tmp` when the directory is missing:
/// it reports the directory instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dir {
    path: PathBuf,
}

impl Default for Dir {
    fn default() -> Dir {
        Dir::from_env()
    }
}

impl Dir {
    /// `$MILK_SHM_DIR` if set and not empty, else [`DEFAULT_DIR`].
    pub fn from_env() -> Dir {
        let path = std::env::var_os("MILK_SHM_DIR").filter(|p| !p.is_empty());
        Dir { path: path.map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from) }
    }

    /// The directory at `path`.
    pub fn new(path: impl AsRef<Path>) -> Dir {
        Dir { path: path.as_ref().to_owned() }
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file of stream `name`: `DIR/NAME.im.shm`. The name must be 1 to 79 bytes, without
    /// `/` or NUL.
    pub fn file(&self, name: &str) -> Result<PathBuf> {
        check_name(name)?;
        Ok(self.path.join(format!("{name}{SUFFIX}")))
    }

    /// Opens stream `name` for reading and writing, as `ImageStreamIO_openIm` does.
    pub fn open(&self, name: &str) -> Result<Stream> {
        Stream::open_file(name, &self.file(name)?, true)
    }

    /// Opens stream `name` as [`open`](Self::open) does, waiting up to `timeout` for it to
    /// appear (a back-off of 10 ms: ImageStreamIO streams are made by rename, once complete).
    /// `NotFound` if it did not appear in time.
    pub fn open_wait(&self, name: &str, timeout: Duration) -> Result<Stream> {
        let started = Instant::now();
        loop {
            match self.open(name) {
                Err(Error::NotFound { .. }) if started.elapsed() < timeout => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    /// Opens stream `name` for reading only: frames, metadata, keywords and semaphore values,
    /// but no waiting (a reader records its pid in the file).
    pub fn open_readonly(&self, name: &str) -> Result<Stream> {
        Stream::open_file(name, &self.file(name)?, false)
    }

    /// Makes a stream as `ImageStreamIO_createIm_gpu` does (on the CPU, shared), so that milk's
    /// tools open it. The file is complete before it gets its name.
    #[doc(alias = "ImageStreamIO_createIm")]
    pub fn create(&self, spec: &StreamSpec) -> Result<Stream> {
        Stream::create_file(self, spec)
    }

    /// The names of the streams in the directory (files `NAME.im.shm`), sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let object = self.path.display().to_string();
        let entries = std::fs::read_dir(&self.path).map_err(|e| io_error(&object, "opendir", &e))?;
        let mut names: Vec<String> = entries
            .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter_map(|file| file.strip_suffix(SUFFIX).map(str::to_owned))
            .filter(|name| check_name(name).is_ok())
            .collect();
        names.sort();
        Ok(names)
    }

    /// Removes stream `name` (its file); processes that have it open keep their mapping.
    #[doc(alias = "ImageStreamIO_destroyIm")]
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.file(name)?;
        fs::unlink(&path).map_err(|errno| stream_errno(name, "unlink", errno))
    }
}

/// What a new stream is: name, datatype, dimensions, semaphores, keywords, circular or not.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct StreamSpec {
    name: String,
    datatype: DataType,
    dims: Vec<u32>,
    semaphores: u16,
    keywords: u16,
    circular: bool,
    replace: bool,
}

impl StreamSpec {
    /// A stream `name` of `datatype` with `dims` (1 to 3 axes, x first); 10 semaphores, no
    /// keywords, not circular, not replacing an existing stream.
    pub fn new(name: &str, datatype: DataType, dims: &[u32]) -> StreamSpec {
        StreamSpec {
            name: name.to_owned(),
            datatype,
            dims: dims.to_vec(),
            semaphores: DEFAULT_SEMAPHORES,
            keywords: 0,
            circular: false,
            replace: false,
        }
    }

    /// The number of semaphores, one per concurrent reader (default 10).
    pub fn semaphores(mut self, count: u16) -> StreamSpec {
        self.semaphores = count;
        self
    }

    /// The number of keyword slots (default 0).
    pub fn keywords(mut self, count: u16) -> StreamSpec {
        self.keywords = count;
        self
    }

    /// A 3-D circular buffer of frames in time (`CIRCULAR_BUFFER | ZAXIS_TEMPORAL`): each write
    /// goes to the next slice (default `false`: `MATH_DATA`, each write replaces the data).
    pub fn circular(mut self, circular: bool) -> StreamSpec {
        self.circular = circular;
        self
    }

    /// Whether an existing stream of the same name is replaced, as ImageStreamIO does (default
    /// `false`: [`Error::AlreadyExists`]). Processes that have the old one open keep it.
    pub fn replace(mut self, replace: bool) -> StreamSpec {
        self.replace = replace;
        self
    }

    /// The metadata the new stream gets (counters and times 0), checked.
    pub fn metadata(&self) -> Result<(Metadata, Layout)> {
        check_name(&self.name)?;
        let object = object(&self.name);
        if !(1..=3).contains(&self.dims.len()) {
            return Err(Error::InvalidArgument {
                object,
                reason: format!("{} axes: a stream has 1 to 3", self.dims.len()),
            });
        }
        if self.circular && self.dims.len() != 3 {
            return Err(Error::InvalidArgument { object, reason: "a circular buffer needs 3 axes".into() });
        }
        let imagetype =
            if self.circular { layout::CIRCULAR_BUFFER | layout::ZAXIS_TEMPORAL } else { layout::MATH_DATA };
        let metadata =
            Metadata::new_stream(&self.name, self.datatype, &self.dims, self.semaphores, self.keywords, imagetype);
        let layout = metadata.layout().map_err(|reason| Error::BadImageStream { object, reason })?;
        Ok((metadata, layout))
    }
}

/// What a frame read or written was: its counters and times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FrameInfo {
    /// `cnt0`: the number of frames written, this one included.
    pub cnt0: u64,
    /// `cnt1`: in a circular buffer, the slice written last.
    pub cnt1: u64,
    /// The slice the frame is (0 unless circular).
    pub slice: usize,
    /// The slice's entry in `cntarray` (circular), else `cnt0`.
    pub slice_cnt0: u64,
    /// When the frame's data was acquired.
    pub atime: Timespec,
    /// When the frame was written.
    pub write_time: Timespec,
    /// How many copies a read had to throw away because a writer was busy (0 for a write).
    pub retries: u32,
}

impl FrameInfo {
    /// This frame as [`crate::stream`] reports frames, for programs that read both kinds: serial
    /// `cnt0`, the times converted to nanoseconds since the Unix epoch (`CLOCK_REALTIME`),
    /// `lost` as the caller counted it, `restarted` as given.
    pub fn as_stream_frame(&self, lost: u64, restarted: bool) -> crate::stream::FrameInfo {
        crate::stream::FrameInfo {
            serial: self.cnt0,
            acquired_ns: self.atime.unix_ns(),
            published_ns: self.write_time.unix_ns(),
            lost,
            restarted,
        }
    }
}

/// A keyword: name (at most 15 bytes), value, comment (at most 79 bytes), write counter.
#[derive(Debug, Clone, PartialEq)]
pub struct Keyword {
    /// The slot in the stream's keyword array.
    pub slot: usize,
    /// The name.
    pub name: String,
    /// The value.
    pub value: KeywordValue,
    /// The comment.
    pub comment: String,
    /// Incremented at each write of the keyword.
    pub cnt: u64,
}

/// The value of a keyword, after its type letter.
#[derive(Debug, Clone, PartialEq)]
pub enum KeywordValue {
    /// `L`: a 64-bit integer.
    Long(i64),
    /// `D`: a double.
    Double(f64),
    /// `S`: a string of at most 16 bytes (ipcmem writes at most 15, so C readers find a NUL).
    String(String),
    /// Another type letter, with the 16 value bytes as they are.
    Other {
        /// The type letter.
        kind: u8,
        /// The value bytes.
        raw: [u8; 16],
    },
}

impl fmt::Display for KeywordValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Long(v) => write!(f, "{v}"),
            Self::Double(v) => write!(f, "{v}"),
            Self::String(s) => write!(f, "{s:?}"),
            Self::Other { kind, raw } => write!(f, "type {:?} {raw:02x?}", char::from(*kind)),
        }
    }
}

/// One semaphore of a stream: its value and the pids recorded for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SemaphoreState {
    /// The index.
    pub index: usize,
    /// The value (`sem_getvalue`).
    pub value: u32,
    /// `semReadPID`: the reader that claimed it; 0 or -1 if none.
    pub reader_pid: i32,
    /// `semWritePID`: the last process that posted it; -1 if none.
    pub writer_pid: i32,
    /// `semctrl`.
    pub ctrl: u32,
    /// `semstatus`.
    pub status: u32,
}

/// An open ImageStreamIO stream; cheap to clone (clones share the mapping).
#[derive(Clone)]
pub struct Stream {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    object: String,
    path: PathBuf,
    map: FileMap,
    layout: Layout,
    datatype: DataType,
    dims: Vec<u32>,
}

/// The counters a read checks before and after its copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counters {
    write: bool,
    cnt0: u64,
    cnt1: u64,
}

impl Stream {
    /// Opens stream `name` in [`Dir::from_env`] for reading and writing.
    pub fn open(name: &str) -> Result<Stream> {
        Dir::from_env().open(name)
    }

    /// Makes a stream in [`Dir::from_env`] (see [`Dir::create`]).
    pub fn create(spec: &StreamSpec) -> Result<Stream> {
        Dir::from_env().create(spec)
    }

    fn open_file(name: &str, path: &Path, writable: bool) -> Result<Stream> {
        let object = object(name);
        let access = if writable { OFlags::RDWR } else { OFlags::RDONLY };
        let fd = fs::open(path, access | OFlags::CLOEXEC | OFlags::NOCTTY, Mode::empty())
            .map_err(|errno| stream_errno(name, "open", errno))?;
        let stat = fs::fstat(&fd).map_err(|errno| stream_errno(name, "fstat", errno))?;
        if fs::FileType::from_raw_mode(stat.st_mode) != fs::FileType::RegularFile {
            return Err(Error::InvalidArgument { object, reason: format!("{} is not a regular file", path.display()) });
        }
        let file_len = u64::try_from(stat.st_size).unwrap_or(0);
        if file_len <= layout::METADATA_SIZE as u64 {
            return Err(Error::BadImageStream { object, reason: layout::LayoutError::TooSmall { len: file_len } });
        }
        let len = usize::try_from(file_len).map_err(|_| Error::InvalidSize {
            object: object.clone(),
            size: file_len,
            reason: "larger than the address space",
        })?;
        let map = FileMap::new(&object, fd, len, writable)?;
        let mut head = [0_u8; layout::METADATA_SIZE];
        map.copy_out(0, &mut head)?;
        let (metadata, layout) = layout::parse_metadata(&head, file_len)
            .map_err(|reason| Error::BadImageStream { object: object.clone(), reason })?;
        Ok(Stream::from_parts(name, path, map, layout, &metadata))
    }

    fn from_parts(name: &str, path: &Path, map: FileMap, layout: Layout, metadata: &Metadata) -> Stream {
        let inner = Inner {
            name: name.to_owned(),
            object: object(name),
            path: path.to_owned(),
            map,
            layout,
            datatype: metadata.datatype,
            dims: metadata.dims().to_vec(),
        };
        Stream { inner: Arc::new(inner) }
    }

    fn create_file(dir: &Dir, spec: &StreamSpec) -> Result<Stream> {
        let (mut metadata, layout) = spec.metadata()?;
        let name = spec.name.as_str();
        let path = dir.file(name)?;
        remove_stale_temporaries(&dir.path);
        let temp = dir.path.join(format!(".{name}{SUFFIX}{TEMP_MARK}{}-{}", std::process::id(), next_temp()));
        let made = (|| {
            let fd = fs::open(
                &temp,
                OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )
            .map_err(|errno| stream_errno(name, "open", errno))?;
            // The exact mode whatever the umask, as ImageStreamIO's umask(0) gives.
            fs::fchmod(&fd, Mode::from_raw_mode(FILE_MODE)).map_err(|errno| stream_errno(name, "fchmod", errno))?;
            fs::ftruncate(&fd, layout.total as u64).map_err(|errno| stream_errno(name, "ftruncate", errno))?;
            let stat = fs::fstat(&fd).map_err(|errno| stream_errno(name, "fstat", errno))?;
            metadata.inode = stat.st_ino;
            let map = FileMap::new(&object(name), fd, layout.total, true)?;
            initialise(&map, &mut metadata, &layout)?;
            publish(&temp, &path, spec.replace).map_err(|errno| stream_errno(name, "rename", errno))?;
            Ok::<FileMap, Error>(map)
        })();
        match made {
            Ok(map) => Ok(Stream::from_parts(name, &path, map, layout, &metadata)),
            Err(error) => {
                let _ = fs::unlink(&temp);
                Err(error)
            }
        }
    }

    /// The stream's name (as opened).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The stream's file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Where each part of the file lies.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// The element type.
    pub fn datatype(&self) -> DataType {
        self.inner.datatype
    }

    /// The sizes of the axes (x first).
    pub fn dims(&self) -> &[u32] {
        &self.inner.dims
    }

    /// The bytes of one frame: the data, or one slice of a circular buffer.
    pub fn frame_len(&self) -> usize {
        self.inner.layout.frame_len
    }

    /// The sizes of the axes of one frame (x first): all of them, or for a circular buffer all
    /// but the last (the slices).
    pub fn frame_dims(&self) -> Vec<usize> {
        let axes = if self.is_circular() { self.dims().len().saturating_sub(1) } else { self.dims().len() };
        self.dims()[..axes].iter().map(|&d| d as usize).collect()
    }

    /// Whether frames are the slices of a 3-D circular buffer.
    pub fn is_circular(&self) -> bool {
        self.inner.layout.circular
    }

    /// Whether the stream was opened for writing.
    pub fn is_writable(&self) -> bool {
        self.inner.map.is_writable()
    }

    /// The metadata now (a fresh copy of the first 384 bytes; the fields that size the file
    /// are those checked at open, and are not checked again).
    pub fn metadata(&self) -> Result<Metadata> {
        let mut head = [0_u8; layout::METADATA_SIZE];
        self.inner.map.copy_out(0, &mut head)?;
        layout::parse_metadata(&head, self.inner.map.len() as u64)
            .map(|(metadata, _)| metadata)
            .map_err(|reason| Error::BadImageStream { object: self.inner.object.clone(), reason })
    }

    /// `cnt0`: the number of frames written so far.
    pub fn cnt0(&self) -> Result<u64> {
        self.load_acquire(md::CNT0)
    }

    fn counters(&self) -> Result<Counters> {
        let map = &self.inner.map;
        let write = map.word::<AtomicU8>(md::WRITE)?.load(Ordering::Relaxed) != 0;
        fence(Ordering::Acquire);
        let cnt0 = self.load_acquire(md::CNT0)?;
        let cnt1 = self.load_acquire(md::CNT1)?;
        Ok(Counters { write, cnt0, cnt1 })
    }

    /// The counter at `offset`, loaded with acquire ordering as a relaxed load and an acquire
    /// fence: only relaxed atomic loads are allowed on a read-only mapping.
    fn load_acquire(&self, offset: usize) -> Result<u64> {
        let value = self.inner.map.word::<AtomicU64>(offset)?.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        Ok(value)
    }

    /// Copies the latest frame into `buf` (exactly [`frame_len`](Self::frame_len) bytes): the
    /// data, or for a circular buffer the slice `cnt1`.
    ///
    /// The copy counts only if `write` is clear and `cnt0`/`cnt1` are the same before and
    /// after it; in a circular buffer, only if no write reached its slice meanwhile (the
    /// writer fills the slices in turn, so a reader may take as long as `slices - 1` frames).
    /// Else it is made again, for at most 200 ms, then fails with [`Error::Busy`]. See the
    /// module documentation for what the format cannot guarantee.
    pub fn read_frame(&self, buf: &mut [u8]) -> Result<FrameInfo> {
        self.read(None, buf)
    }

    /// Copies slice `slice` of a circular buffer into `buf`, with its counter and times, under
    /// the same checks as [`read_frame`](Self::read_frame).
    pub fn read_slice(&self, slice: usize, buf: &mut [u8]) -> Result<FrameInfo> {
        if slice >= self.inner.layout.slices {
            return Err(self.invalid(format!("slice {slice} is past the {} slices", self.inner.layout.slices)));
        }
        self.read(Some(slice), buf)
    }

    fn read(&self, slice: Option<usize>, buf: &mut [u8]) -> Result<FrameInfo> {
        self.check_frame_len(buf.len())?;
        let started = Instant::now();
        let mut retries = 0_u32;
        let slices = self.inner.layout.slices;
        loop {
            let before = self.counters()?;
            // A circular buffer's writer writes the other slices meanwhile: only a write of
            // this one spoils the copy. Other streams have one frame, written in place; so has
            // a circular buffer before its first frame, which may go to slice `cnt1` itself.
            let by_slice = self.inner.layout.circular && before.cnt0 > 0;
            if by_slice || !before.write {
                let index = match slice {
                    Some(index) => index,
                    None => self.latest_slice(before.cnt1)?,
                };
                self.inner.map.copy_out(self.slice_offset(index), buf)?;
                let (slice_cnt0, atime, write_time) = self.slice_record(index, before.cnt0, slice.is_none())?;
                fence(Ordering::Acquire);
                let after = self.counters()?;
                let kept = if by_slice { slice_untouched(before, after, index, slices) } else { after == before };
                if kept {
                    return Ok(FrameInfo {
                        cnt0: before.cnt0,
                        cnt1: before.cnt1,
                        slice: index,
                        slice_cnt0,
                        atime,
                        write_time,
                        retries,
                    });
                }
            }
            if started.elapsed() > READ_PATIENCE {
                return Err(Error::Busy {
                    object: self.inner.object.clone(),
                    reason: format!(
                        "the frame kept changing during {} ms ({retries} copies thrown away; a writer that died while writing leaves the write flag set)",
                        READ_PATIENCE.as_millis()
                    ),
                });
            }
            retries = retries.saturating_add(1);
            backoff(retries);
        }
    }

    /// The slice a circular buffer wrote last (`cnt1`), checked; 0 for other streams.
    fn latest_slice(&self, cnt1: u64) -> Result<usize> {
        let slices = self.inner.layout.slices;
        if !self.inner.layout.circular {
            return Ok(0);
        }
        usize::try_from(cnt1)
            .ok()
            .filter(|&index| index < slices)
            .ok_or_else(|| self.invalid(format!("cnt1 {cnt1} is not a slice (the buffer has {slices})")))
    }

    fn slice_offset(&self, index: usize) -> usize {
        // No overflow: index < slices and slices * frame_len is the data's size.
        self.inner.layout.data + index * self.inner.layout.frame_len
    }

    /// The counter, acquisition and write times of slice `index` (circular), else `cnt0` and
    /// the times of the metadata.
    ///
    /// `ImageStreamIO_UpdateIm` itself fills no per-slice entry (milk's writers do, some not):
    /// for the latest slice of such a writer (entries still zero), the metadata's.
    fn slice_record(&self, index: usize, cnt0: u64, latest: bool) -> Result<(u64, Timespec, Timespec)> {
        let l = &self.inner.layout;
        let from_metadata = || Ok::<_, Error>((cnt0, self.time_at(md::ATIME)?, self.time_at(md::WRITETIME)?));
        if !l.circular {
            return from_metadata();
        }
        let cnt = self.inner.map.word::<AtomicU64>(l.counters + 8 * index)?.load(Ordering::Relaxed);
        let (atime, write_time) = (self.time_at(l.atimes + 16 * index)?, self.time_at(l.write_times + 16 * index)?);
        if latest && cnt == 0 && write_time == Timespec::default() {
            return from_metadata();
        }
        Ok((cnt, atime, write_time))
    }

    fn time_at(&self, offset: usize) -> Result<Timespec> {
        let mut bytes = [0_u8; 16];
        self.inner.map.copy_out(offset, &mut bytes)?;
        Ok(Timespec::from_bytes(bytes))
    }

    fn check_frame_len(&self, len: usize) -> Result<()> {
        if len == self.frame_len() {
            return Ok(());
        }
        Err(self.invalid(format!("a frame has {} bytes, not {len}", self.frame_len())))
    }

    fn check_writable(&self) -> Result<()> {
        if self.is_writable() {
            Ok(())
        } else {
            Err(Error::ReadOnly { object: self.inner.object.clone() })
        }
    }

    fn invalid(&self, reason: String) -> Error {
        Error::InvalidArgument { object: self.inner.object.clone(), reason }
    }

    /// Writes a frame as an ImageStreamIO writer does, its acquisition time now; see
    /// [`write_frame_at`](Self::write_frame_at).
    pub fn write_frame(&self, data: &[u8]) -> Result<FrameInfo> {
        self.write_frame_at(data, None)
    }

    /// Writes a frame (exactly [`frame_len`](Self::frame_len) bytes) as `ImageStreamIO_UpdateIm`
    /// does: sets `write`, copies the data (a circular buffer: into the slice after `cnt1`, or 0
    /// for the first frame, and sets `cnt1` to it with the slice's `cntarray`, `atimearray`,
    /// `writetimearray` entries), sets `atime` (`atime`, or now) and `writetime` (now, on
    /// `CLOCK_TAI`), increments `cnt0`, clears `write`, then posts every semaphore whose value
    /// is below [`SEMAPHORE_MAXVAL`] and records our pid as its writer, and posts the log
    /// semaphore. One writer at a time: concurrent writers would lose counts, as in C.
    #[doc(alias = "ImageStreamIO_UpdateIm")]
    pub fn write_frame_at(&self, data: &[u8], atime: Option<Timespec>) -> Result<FrameInfo> {
        self.check_writable()?;
        self.check_frame_len(data.len())?;
        let map = &self.inner.map;
        let l = &self.inner.layout;
        let write = map.word::<AtomicU8>(md::WRITE)?;
        let cnt0_word = map.word::<AtomicU64>(md::CNT0)?;
        let cnt1_word = map.word::<AtomicU64>(md::CNT1)?;
        let cnt0 = cnt0_word.load(Ordering::Relaxed).wrapping_add(1);
        let mut cnt1 = cnt1_word.load(Ordering::Relaxed);
        let slice = if l.circular && cnt0 > 1 {
            // In range whatever `cnt1` holds: the remainder of a division by `slices`.
            usize::try_from(cnt1.wrapping_add(1) % l.slices as u64).unwrap_or(0)
        } else {
            0
        };
        write.store(1, Ordering::Relaxed);
        // Readers that see any byte of the new data see `write` set (their acquire fence).
        fence(Ordering::Release);
        map.copy_in(self.slice_offset(slice), data)?;
        let write_time = Timespec::now();
        let atime = atime.unwrap_or(write_time);
        if l.circular {
            map.copy_in(l.atimes + 16 * slice, &atime.to_bytes())?;
            map.copy_in(l.write_times + 16 * slice, &write_time.to_bytes())?;
        }
        map.copy_in(md::ATIME, &atime.to_bytes())?;
        map.copy_in(md::WRITETIME, &write_time.to_bytes())?;
        // Readers that see any of the counters below see the data and times above.
        fence(Ordering::Release);
        if l.circular {
            map.word::<AtomicU64>(l.counters + 8 * slice)?.store(cnt0, Ordering::Relaxed);
            cnt1 = slice as u64;
            cnt1_word.store(cnt1, Ordering::Relaxed);
        }
        cnt0_word.store(cnt0, Ordering::Relaxed);
        write.store(0, Ordering::Release);
        self.post_all()?;
        Ok(FrameInfo { cnt0, cnt1, slice, slice_cnt0: cnt0, atime, write_time, retries: 0 })
    }

    /// Posts every semaphore whose value is below [`SEMAPHORE_MAXVAL`], recording our pid in
    /// `semWritePID`, then the log semaphore likewise, as `ImageStreamIO_sempost(image, -1)`.
    #[doc(alias = "ImageStreamIO_sempost")]
    pub fn post_all(&self) -> Result<()> {
        self.check_writable()?;
        self.inner.map.check_whole()?;
        let l = &self.inner.layout;
        let pid = std::process::id().cast_signed();
        for index in 0..l.semaphore_count {
            if self.post_below_max(l.semaphores + SEM_SIZE * index)? {
                self.inner.map.word::<AtomicI32>(l.write_pids + 4 * index)?.store(pid, Ordering::Relaxed);
            }
        }
        self.post_below_max(l.semlog)?;
        Ok(())
    }

    /// Posts the semaphore at `offset` if its value is below the maximum; says whether it did.
    fn post_below_max(&self, offset: usize) -> Result<bool> {
        let sem = self.inner.map.live_sem(offset)?;
        if sem_value(sem) >= SEMAPHORE_MAXVAL {
            return Ok(false);
        }
        // SAFETY: `sem` is an aligned `sem_t` within our writable mapping, which outlives the
        // call; glibc's semaphores hold no pointers, so any bytes there are only a wrong count.
        if unsafe { libc::sem_post(sem) } != 0 {
            return Err(Error::Os { object: self.inner.object.clone(), operation: "sem_post", errno: last_errno() });
        }
        Ok(true)
    }

    /// Every semaphore with its value, reader and writer pids, control and status words.
    pub fn semaphores(&self) -> Result<Vec<SemaphoreState>> {
        let l = &self.inner.layout;
        let map = &self.inner.map;
        map.check_whole()?;
        (0..l.semaphore_count)
            .map(|index| {
                Ok(SemaphoreState {
                    index,
                    value: sem_value(map.sem(l.semaphores + SEM_SIZE * index)?),
                    reader_pid: map.word::<AtomicI32>(l.read_pids + 4 * index)?.load(Ordering::Relaxed),
                    writer_pid: map.word::<AtomicI32>(l.write_pids + 4 * index)?.load(Ordering::Relaxed),
                    ctrl: self.u32_at(l.sem_ctrl + 4 * index)?,
                    status: self.u32_at(l.sem_status + 4 * index)?,
                })
            })
            .collect()
    }

    fn u32_at(&self, offset: usize) -> Result<u32> {
        let mut bytes = [0_u8; 4];
        self.inner.map.copy_out(offset, &mut bytes)?;
        Ok(u32::from_ne_bytes(bytes))
    }

    /// Claims a free semaphore to wait on, as `ImageStreamIO_getsemwaitindex` does: the first
    /// whose `semReadPID` is 0, -1 or a process that is gone gets our pid (atomically, so two
    /// readers never claim the same one). Its count is emptied, so that a wait waits for the
    /// next frame. Unlike ImageStreamIO, a semaphore already recorded with our pid is not
    /// shared: each [`Reader`] of this process gets its own.
    #[doc(alias = "ImageStreamIO_getsemwaitindex")]
    pub fn reader(&self) -> Result<Reader> {
        self.check_writable()?;
        self.inner.map.check_whole()?;
        let l = &self.inner.layout;
        let pid = std::process::id().cast_signed();
        for index in 0..l.semaphore_count {
            let word = self.inner.map.word::<AtomicI32>(l.read_pids + 4 * index)?;
            let holder = word.load(Ordering::Relaxed);
            if holder > 0 && process_exists(holder) {
                continue;
            }
            // Checked before the claim: a garbage semaphore is an error, and no claim is left.
            let sem = self.inner.map.live_sem(l.semaphores + SEM_SIZE * index)?;
            if word.compare_exchange(holder, pid, Ordering::AcqRel, Ordering::Relaxed).is_ok() {
                // Dropped (and so released) if emptying it fails.
                let reader = Reader { stream: self.clone(), index, pid, sem };
                reader.flush()?;
                return Ok(reader);
            }
        }
        Err(Error::Busy {
            object: self.inner.object.clone(),
            reason: format!("all {} semaphores are claimed by live readers", l.semaphore_count),
        })
    }

    /// The keywords in use (type letter other than `N`), in slot order.
    pub fn keywords(&self) -> Result<Vec<Keyword>> {
        let mut keywords = Vec::new();
        for slot in 0..self.inner.layout.keyword_count {
            let record = self.keyword_record(slot)?;
            if let Some(keyword) = decode_keyword(slot, &record) {
                keywords.push(keyword);
            }
        }
        Ok(keywords)
    }

    /// The keyword `name`, if set.
    pub fn keyword(&self, name: &str) -> Result<Option<Keyword>> {
        Ok(self.keywords()?.into_iter().find(|k| k.name == name))
    }

    fn keyword_record(&self, slot: usize) -> Result<[u8; KEYWORD_SIZE]> {
        let mut record = [0_u8; KEYWORD_SIZE];
        self.inner.map.copy_out(self.inner.layout.keywords + KEYWORD_SIZE * slot, &mut record)?;
        Ok(record)
    }

    /// Sets keyword `name` (1 to 15 bytes) to `value` with `comment` (at most 79 bytes): in its
    /// slot if it is there, else in the first unused one; increments its `cnt`. Returns the
    /// slot. Readers may see a keyword half written: the format has no lock for keywords.
    pub fn set_keyword(&self, name: &str, value: &KeywordValue, comment: &str) -> Result<usize> {
        self.check_writable()?;
        check_text(&self.inner.object, "keyword name", name, 1, layout::KEYWORD_NAME_LEN - 1)?;
        check_text(&self.inner.object, "keyword comment", comment, 0, layout::KEYWORD_COMMENT_LEN - 1)?;
        let (kind, raw) = encode_value(&self.inner.object, value)?;
        let mut free = None;
        let mut found = None;
        for slot in 0..self.inner.layout.keyword_count {
            let record = self.keyword_record(slot)?;
            match decode_keyword(slot, &record) {
                Some(keyword) if keyword.name == name => {
                    found = Some((slot, keyword.cnt));
                    break;
                }
                None if free.is_none() => free = Some(slot),
                _ => {}
            }
        }
        let (slot, cnt) = found
            .or(free.map(|slot| (slot, 0)))
            .ok_or_else(|| self.invalid(format!("all {} keyword slots are in use", self.inner.layout.keyword_count)))?;
        let mut record = [0_u8; KEYWORD_SIZE];
        record[kw::NAME..kw::NAME + name.len()].copy_from_slice(name.as_bytes());
        record[kw::TYPE] = kind;
        record[kw::VALUE..kw::VALUE + 16].copy_from_slice(&raw);
        record[kw::CNT..kw::CNT + 8].copy_from_slice(&cnt.wrapping_add(1).to_ne_bytes());
        record[kw::COMMENT..kw::COMMENT + comment.len()].copy_from_slice(comment.as_bytes());
        self.inner.map.copy_in(self.inner.layout.keywords + KEYWORD_SIZE * slot, &record)?;
        Ok(slot)
    }
}

impl fmt::Debug for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("datatype", &self.inner.datatype)
            .field("dims", &self.inner.dims)
            .field("circular", &self.inner.layout.circular)
            .finish_non_exhaustive()
    }
}

/// A reader that follows a stream frame by frame, as [`crate::stream`] readers do: it waits on
/// its claimed semaphore, reads the latest frame, skips a frame already returned (a writer's
/// posts pile up while we read), and counts as lost the frames written between two it returned
/// (steps of `cnt0`). A `cnt0` that goes back means the stream was made anew (`restarted`).
///
/// ImageStreamIO records no writer liveness that a reader could trust, so a follower never
/// reports the writer gone: a dead writer looks like a quiet one.
pub struct Follower {
    reader: Reader,
    last_cnt0: Option<u64>,
}

impl Follower {
    /// Follows the stream of `reader` (its claimed semaphore), from the next frame written.
    pub fn new(reader: Reader) -> Follower {
        Follower { reader, last_cnt0: None }
    }

    /// The claimed semaphore and the stream.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Waits at most `timeout` for a frame newer than the last one returned and copies it into
    /// `buf` ([`Stream::frame_len`] bytes): its counters as [`crate::stream`] reports frames
    /// (serial `cnt0`), or `None` if the time ran out.
    pub fn next_into(&mut self, buf: &mut [u8], timeout: Duration) -> Result<Option<crate::stream::FrameInfo>> {
        let started = std::time::Instant::now();
        loop {
            let left = timeout.saturating_sub(started.elapsed());
            let Some(info) = self.reader.wait_frame(left, buf)? else { return Ok(None) };
            if self.last_cnt0 == Some(info.cnt0) {
                continue;
            }
            let restarted = self.last_cnt0.is_some_and(|last| info.cnt0 < last);
            let lost = match self.last_cnt0 {
                Some(last) if !restarted => info.cnt0 - last - 1,
                _ => 0,
            };
            self.last_cnt0 = Some(info.cnt0);
            return Ok(Some(info.as_stream_frame(lost, restarted)));
        }
    }
}

/// A semaphore of a stream claimed by this process (its pid in `semReadPID`), to wait for new
/// frames on; released (`semReadPID` back to 0) on drop.
pub struct Reader {
    stream: Stream,
    index: usize,
    pid: i32,
    sem: *mut libc::sem_t,
}

// SAFETY: `sem` points into the mapping that `stream` keeps alive; `sem_*` calls are
// thread-safe, and the semaphore is shared with other processes anyway.
unsafe impl Send for Reader {}
// SAFETY: as above.
unsafe impl Sync for Reader {}

impl Reader {
    /// The index of the claimed semaphore.
    pub fn index(&self) -> usize {
        self.index
    }

    /// The stream.
    pub fn stream(&self) -> &Stream {
        &self.stream
    }

    /// Waits at most `timeout` for a post (a new frame): `Ok(true)` if one came, `Ok(false)`
    /// if the time ran out. Measured on `CLOCK_MONOTONIC` (`sem_clockwait`; ImageStreamIO's
    /// `sem_timedwait` takes a `CLOCK_REALTIME` deadline, which a clock step would move).
    #[doc(alias = "ImageStreamIO_semtimedwait")]
    #[doc(alias = "sem_timedwait")]
    pub fn wait_timeout(&self, timeout: Duration) -> Result<bool> {
        self.check_sem()?;
        let deadline = monotonic_deadline(timeout);
        loop {
            // SAFETY: `sem` is an aligned `sem_t` in the writable mapping kept alive by
            // `stream`; `deadline` is a valid timespec.
            if unsafe { sem_clockwait(self.sem, libc::CLOCK_MONOTONIC, &raw const deadline) } == 0 {
                return Ok(true);
            }
            match last_errno() {
                Errno::TIMEDOUT => return Ok(false),
                Errno::INTR => {}
                errno => return Err(self.error("sem_clockwait", errno)),
            }
        }
    }

    /// Waits at most `timeout` for a post, then reads the latest frame into `buf`; `None` if
    /// the time ran out.
    pub fn wait_frame(&self, timeout: Duration, buf: &mut [u8]) -> Result<Option<FrameInfo>> {
        if !self.wait_timeout(timeout)? {
            return Ok(None);
        }
        self.stream.read_frame(buf).map(Some)
    }

    /// Takes one post if there is one, without waiting.
    #[doc(alias = "sem_trywait")]
    pub fn try_wait(&self) -> Result<bool> {
        self.check_sem()?;
        loop {
            // SAFETY: as in `wait_timeout`.
            if unsafe { libc::sem_trywait(self.sem) } == 0 {
                return Ok(true);
            }
            match last_errno() {
                Errno::AGAIN => return Ok(false),
                Errno::INTR => {}
                errno => return Err(self.error("sem_trywait", errno)),
            }
        }
    }

    /// Empties the count (posts of frames already there), as `ImageStreamIO_semflush`.
    #[doc(alias = "ImageStreamIO_semflush")]
    pub fn flush(&self) -> Result<()> {
        // A writer posts only up to SEMAPHORE_MAXVAL; the bound keeps a hostile count (or a
        // writer posting as fast as we take) from holding us here.
        for _ in 0..=SEMAPHORE_MAXVAL * 100 {
            if !self.try_wait()? {
                break;
            }
        }
        Ok(())
    }

    /// The semaphore's value now.
    pub fn value(&self) -> u32 {
        sem_value(self.sem)
    }

    /// Checks again that the semaphore is one (another process may have written over it).
    fn check_sem(&self) -> Result<()> {
        self.stream.inner.map.check_whole()?;
        let l = &self.stream.inner.layout;
        self.stream.inner.map.live_sem(l.semaphores + SEM_SIZE * self.index).map(|_| ())
    }

    fn error(&self, operation: &'static str, errno: Errno) -> Error {
        Error::Os { object: format!("{} semaphore {}", self.stream.inner.object, self.index), operation, errno }
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let l = &self.stream.inner.layout;
        if self.stream.inner.map.check_whole().is_err() {
            return; // shrunk: nothing left to release
        }
        if let Ok(word) = self.stream.inner.map.word::<AtomicI32>(l.read_pids + 4 * self.index) {
            // Only if it is still ours: another reader may have taken it over meanwhile.
            let _ = word.compare_exchange(self.pid, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader")
            .field("stream", &self.stream.inner.name)
            .field("index", &self.index)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

/// Fills a new stream's file (still under its temporary name): metadata, unused keywords,
/// semaphores at 0, pids -1, process traces, and last the version, as ImageStreamIO does.
fn initialise(map: &FileMap, metadata: &mut Metadata, l: &Layout) -> Result<()> {
    let now = Timespec::now();
    metadata.creation_time = now;
    metadata.last_access_time = now;
    metadata.creator_pid = std::process::id().cast_signed();
    let mut head = metadata.encode();
    // The version goes in last, so that no reader takes the stream for ready before it is.
    head[md::VERSION..md::VERSION + 32].fill(0);
    map.copy_in(0, &head)?;
    for slot in 0..l.keyword_count {
        map.copy_in(l.keywords + KEYWORD_SIZE * slot + kw::TYPE, &[UNUSED])?;
    }
    for offset in (0..l.semaphore_count).map(|i| l.semaphores + SEM_SIZE * i).chain([l.semlog]) {
        let sem = map.sem(offset)?;
        // SAFETY: an aligned `sem_t` in the new file's writable mapping, which no other process
        // can see yet; process-shared, value 0 (far below SEM_VALUE_MAX: cannot fail).
        unsafe { libc::sem_init(sem, 1, 0) };
    }
    for index in 0..l.semaphore_count {
        map.word::<AtomicI32>(l.read_pids + 4 * index)?.store(-1, Ordering::Relaxed);
        map.word::<AtomicI32>(l.write_pids + 4 * index)?.store(-1, Ordering::Relaxed);
    }
    for index in 0..l.proc_trace_count {
        let offset = l.proc_traces + layout::PROC_TRACE_SIZE * index + layout::trace::TRIGSEMINDEX;
        map.copy_in(offset, &(-1_i32).to_ne_bytes())?;
    }
    fence(Ordering::Release);
    map.copy_in(md::VERSION, layout::VERSION.as_bytes())
}

/// Gives the finished file its name: atomically replacing a stream there, or only if there is
/// none (`RENAME_NOREPLACE`).
#[doc(alias = "renameat2")]
fn publish(temp: &Path, path: &Path, replace: bool) -> rustix::io::Result<()> {
    let flags = if replace { fs::RenameFlags::empty() } else { fs::RenameFlags::NOREPLACE };
    fs::renameat_with(fs::CWD, temp, fs::CWD, path, flags)
}

/// Marks the name of a stream file still being made: `.NAME.im.shm.ipcmem-PID-N`.
const TEMP_MARK: &str = ".ipcmem-";

/// Removes the files that creators which died half-way left under their temporary names (the
/// process in the name is gone); a creator at work keeps its own.
fn remove_stale_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let file = entry.file_name();
        let Some(pid) = file.to_str().and_then(temporary_creator) else { continue };
        if !process_exists(pid) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The pid in a temporary name `.NAME.im.shm.ipcmem-PID-N`, if `file` is one.
fn temporary_creator(file: &str) -> Option<i32> {
    let rest = file.strip_prefix('.')?;
    let (_, tail) = rest.rsplit_once(TEMP_MARK)?;
    let (pid, counter) = tail.split_once('-')?;
    counter.parse::<u32>().ok()?;
    pid.parse::<i32>().ok().filter(|&pid| pid > 0)
}

fn next_temp() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

/// Whether no write of a circular buffer of `slices` slices reached slice `index` between the
/// counters `before` and `after` a copy.
///
/// The writer fills the slice after `cnt1`, wrapping. Between the two readings it finished
/// `after.cnt0 - before.cnt0` frames, and may be writing one more (`after.write`): those went to
/// the slices `before.cnt1 + 1`, `+ 2`, …; slice `index` is the `distance`-th of them (the
/// slice `cnt1` itself the `slices`-th). A count that is over by one (`cnt1` of a frame whose
/// `cnt0` is not yet stored) only makes a copy be made again. A counter that went backwards, or
/// a `cnt1` past the slices, counts as touched.
fn slice_untouched(before: Counters, after: Counters, index: usize, slices: usize) -> bool {
    let Some(last) = usize::try_from(before.cnt1).ok().filter(|&last| last < slices) else { return false };
    let Some(finished) = after.cnt0.checked_sub(before.cnt0) else { return false };
    let written = finished.saturating_add(u64::from(after.write));
    let distance = match (index + slices - last) % slices {
        0 => slices,
        d => d,
    };
    written < distance as u64
}

/// Waits a little before a read tries again: spins first, then yields, then sleeps.
fn backoff(retries: u32) {
    if retries < 64 {
        std::hint::spin_loop();
    } else if retries < 1024 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The value of a semaphore (`sem_getvalue`; works through a read-only mapping).
fn sem_value(sem: *mut libc::sem_t) -> u32 {
    let mut value: libc::c_int = 0;
    // SAFETY: `sem` is an aligned `sem_t` in a live mapping (the callers get it from
    // `FileMap::sem`); glibc's `sem_getvalue` only reads it and cannot fail.
    unsafe { libc::sem_getvalue(sem, &raw mut value) };
    value.max(0).cast_unsigned()
}

/// Whether process `pid` exists (`getpgid` succeeds), as ImageStreamIO tells a live reader.
#[doc(alias = "getpgid")]
fn process_exists(pid: i32) -> bool {
    // SAFETY: getpgid only reads its argument.
    unsafe { libc::getpgid(pid) >= 0 }
}

/// Reads a keyword record; `None` for an unused slot.
fn decode_keyword(slot: usize, record: &[u8; KEYWORD_SIZE]) -> Option<Keyword> {
    let kind = record[kw::TYPE];
    if kind == UNUSED || kind == 0 {
        return None;
    }
    let mut raw = [0_u8; 16];
    raw.copy_from_slice(&record[kw::VALUE..kw::VALUE + 16]);
    let mut first = [0_u8; 8];
    first.copy_from_slice(&raw[..8]);
    let value = match kind {
        b'L' => KeywordValue::Long(i64::from_ne_bytes(first)),
        b'D' => KeywordValue::Double(f64::from_ne_bytes(first)),
        b'S' => KeywordValue::String(layout::c_string(&raw)),
        kind => KeywordValue::Other { kind, raw },
    };
    let mut cnt = [0_u8; 8];
    cnt.copy_from_slice(&record[kw::CNT..kw::CNT + 8]);
    Some(Keyword {
        slot,
        name: layout::c_string(&record[kw::NAME..kw::NAME + layout::KEYWORD_NAME_LEN]),
        value,
        comment: layout::c_string(&record[kw::COMMENT..kw::COMMENT + layout::KEYWORD_COMMENT_LEN]),
        cnt: u64::from_ne_bytes(cnt),
    })
}

/// The type letter and 16 value bytes of a keyword value.
fn encode_value(object: &str, value: &KeywordValue) -> Result<(u8, [u8; 16])> {
    let mut raw = [0_u8; 16];
    let kind = match value {
        KeywordValue::Long(v) => {
            raw[..8].copy_from_slice(&v.to_ne_bytes());
            b'L'
        }
        KeywordValue::Double(v) => {
            raw[..8].copy_from_slice(&v.to_ne_bytes());
            b'D'
        }
        KeywordValue::String(s) => {
            check_text(object, "keyword string value", s, 0, layout::KEYWORD_NAME_LEN - 1)?;
            raw[..s.len()].copy_from_slice(s.as_bytes());
            b'S'
        }
        KeywordValue::Other { kind, raw: bytes } => {
            raw = *bytes;
            *kind
        }
    };
    Ok((kind, raw))
}

/// Checks that `text` has `min..=max` bytes and no NUL.
fn check_text(object: &str, what: &str, text: &str, min: usize, max: usize) -> Result<()> {
    if (min..=max).contains(&text.len()) && !text.contains('\0') {
        return Ok(());
    }
    Err(Error::InvalidArgument {
        object: object.to_owned(),
        reason: format!("{what} {text:?}: {min} to {max} bytes without NUL"),
    })
}

/// Checks a stream name: 1 to 79 bytes, no `/`, no NUL, not `.` or `..`.
pub fn check_name(name: &str) -> Result<()> {
    let bad =
        name.is_empty() || name.len() > layout::NAME_MAX || name.contains(['/', '\0']) || name == "." || name == "..";
    if bad {
        return Err(Error::InvalidArgument {
            object: object(name),
            reason: format!("a stream name has 1 to {} bytes, without '/' or NUL", layout::NAME_MAX),
        });
    }
    Ok(())
}

/// A stream as errors name it: `isio:NAME`.
fn object(name: &str) -> String {
    format!("isio:{name}")
}

fn stream_errno(name: &str, operation: &'static str, errno: Errno) -> Error {
    match Error::from_errno(&object(name), operation, errno) {
        Error::NotFound { object, .. } => Error::NotFound {
            object,
            hint: Some("no file NAME.im.shm in the stream directory ($MILK_SHM_DIR, default /milk/shm)"),
        },
        error => error,
    }
}

fn io_error(object: &str, operation: &'static str, error: &std::io::Error) -> Error {
    let errno = Errno::from_io_error(error).unwrap_or(Errno::IO);
    Error::from_errno(&object, operation, errno)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters(cnt0: u64, cnt1: u64, write: bool) -> Counters {
        Counters { write, cnt0, cnt1 }
    }

    #[test]
    fn temporary_names_tell_their_creator() {
        assert_eq!(temporary_creator(".cam.im.shm.ipcmem-1234-0"), Some(1234));
        assert_eq!(temporary_creator(".a.b.im.shm.ipcmem-7-12"), Some(7));
        for other in
            ["cam.im.shm", ".cam.im.shm", ".cam.im.shm.ipcmem-x-1", ".cam.im.shm.ipcmem-0-1", "cam.im.shm.ipcmem-5-1"]
        {
            assert_eq!(temporary_creator(other), None, "{other}");
        }
    }

    #[test]
    fn a_slice_is_spoiled_only_by_a_write_that_reaches_it() {
        let before = counters(10, 3, false);
        // The latest slice (3 of 8) survives 7 more frames, not 8, nor 7 and one under way.
        assert!(slice_untouched(before, counters(17, 2, false), 3, 8));
        assert!(!slice_untouched(before, counters(18, 3, false), 3, 8));
        assert!(!slice_untouched(before, counters(17, 2, true), 3, 8));
        // The next slice (4) goes first: a write under way spoils it.
        assert!(slice_untouched(before, counters(10, 3, false), 4, 8));
        assert!(!slice_untouched(before, counters(10, 3, true), 4, 8));
        // The slice before the latest (2) goes last but one.
        assert!(slice_untouched(before, counters(16, 1, false), 2, 8));
        assert!(!slice_untouched(before, counters(16, 1, true), 2, 8));
        // Counters that make no sense count as a write.
        assert!(!slice_untouched(counters(10, 9, false), counters(10, 9, false), 3, 8));
        assert!(!slice_untouched(before, counters(9, 3, false), 3, 8));
        assert!(!slice_untouched(counters(u64::MAX, 3, false), counters(0, 3, false), 3, 8));
        // One slice: any write spoils it.
        assert!(slice_untouched(counters(5, 0, false), counters(5, 0, false), 0, 1));
        assert!(!slice_untouched(counters(5, 0, false), counters(6, 0, false), 0, 1));
    }
}
