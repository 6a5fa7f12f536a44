//! `--huge`: the time until a fresh large object is usable, in huge pages (2 MiB) against
//! pages of 4 KiB, first touch and `prefault`, both kinds.
//!
//! The huge pages come from the machine's pool (`/proc/sys/vm/nr_hugepages`): as root, the run
//! grows it by what it needs and gives it its previous size back when done (also on an error
//! or an interruption: [`Reserved`] restores it on drop). It takes the lock file the tests of
//! ipcmem take before they change the pool (`/tmp/ipcmem-huge-pages.lock`, exclusively), so
//! that it never changes the pool under a test that counts on it.
//!
//! A POSIX object in huge pages lives in a hugetlbfs. Where none is mounted, the POSIX rows are
//! measured by a second process (this program again, as the hidden command `huge-posix`) in a
//! mount namespace of its own (`unshare --mount --propagation private`), where it mounts one on
//! a fresh directory: no other process sees that mount, and it vanishes with the process.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use ipcmem::{Id, Key, SharedMemory};

use crate::failure::{failure, Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{progress, raw, stop, Settings};

/// `--huge`.
pub const SECTION: Section = Section {
    flag: "huge",
    help: "Time until a fresh object of --size is usable, 2 MiB huge pages against 4 KiB pages \
           (root: grows vm.nr_hugepages for the run, then restores it)",
    in_default_run: false,
    large: true,
    reps: Counts { full: 5, quick: 2 },
    iterations: Counts::NONE,
    run,
};

/// The lock file that orders every process that changes or counts on the pool.
const LOCK_FILE: &str = "/tmp/ipcmem-huge-pages.lock";
/// The size of the pool, in pages of the default huge page size.
const NR_HUGEPAGES: &str = "/proc/sys/vm/nr_hugepages";
/// The size of a huge page this section counts with (the default on `x86_64` and `aarch64` with
/// 4 KiB pages); the pool's own is checked against it.
const HUGE_PAGE: usize = 2 << 20;

/// One way to make an object ready.
#[derive(Debug, Clone, Copy)]
struct Variant {
    huge: bool,
    prefault: bool,
}

const VARIANTS: [Variant; 4] = [
    Variant { huge: false, prefault: false },
    Variant { huge: false, prefault: true },
    Variant { huge: true, prefault: false },
    Variant { huge: true, prefault: true },
];

impl Variant {
    fn describe(self) -> &'static str {
        match (self.huge, self.prefault) {
            (false, false) => "4 KiB pages, first touch",
            (false, true) => "4 KiB pages, prefault(true)",
            (true, false) => "2 MiB pages, first touch",
            (true, true) => "2 MiB pages, prefault(true)",
        }
    }
}

/// The arguments of the hidden `huge-posix`.
#[derive(Debug, Args)]
pub struct HugePosixArgs {
    /// A new, empty directory to mount a hugetlbfs on (in this process's own mount namespace).
    dir: String,
    /// The size of the objects, in bytes.
    size: usize,
    /// Runs of each variant.
    reps: usize,
}

/// Measures and prints the table.
fn run(settings: &Settings) -> Outcome {
    progress(&format!("time until a fresh {} object is usable, huge pages", stats::bytes(settings.size)));
    let pages = settings.size.div_ceil(HUGE_PAGE);
    let pool = reserve(pages as u64);
    let mut notes = Vec::new();
    if let Err(reason) = &pool {
        notes.push(format!("No huge pages: {reason}. Only the rows of 4 KiB pages are measured."));
    }
    let huge = pool.is_ok();
    let sysv = measure(settings.size, settings.reps, huge, Kind::SysV)?;
    let posix = if huge && !hugetlbfs_mounted() {
        match in_own_namespace(settings) {
            Ok(samples) => samples,
            Err(Failure(reason)) => {
                notes.push(format!("POSIX rows of 2 MiB pages not measured: {reason}."));
                measure(settings.size, settings.reps, false, Kind::Posix)?
            }
        }
    } else {
        measure(settings.size, settings.reps, huge, Kind::Posix)?
    };
    drop(pool);
    print(settings, &[("POSIX", &posix), ("System V", &sysv)], &notes);
    Ok(())
}

/// The kind of the objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Posix,
    SysV,
}

impl Kind {
    /// A new object's id: a name of this run, or a segment without a key.
    fn new_id(self) -> Id {
        match self {
            Kind::Posix => Id::from(stop::unique_name().as_str()),
            Kind::SysV => Key::PRIVATE.into(),
        }
    }
}

/// `reps` runs of each variant (huge ones only if `huge`), taking turns; the samples of each
/// variant, in the order of [`VARIANTS`] (empty for those not measured).
fn measure(size: usize, reps: usize, huge: bool, kind: Kind) -> Result<Vec<Samples>, Failure> {
    let mut samples = vec![Samples::with_capacity(reps); VARIANTS.len()];
    for _ in 0..reps {
        for (variant, samples) in VARIANTS.iter().zip(&mut samples) {
            if variant.huge && !huge {
                continue;
            }
            stop::check()?;
            samples.push(ready(kind, size, *variant)?);
        }
    }
    Ok(samples)
}

/// Times the making of one object of `size` bytes and one write every 4 KiB (so in every page
/// of either size); the object is volatile and goes, untimed, when dropped.
fn ready(kind: Kind, size: usize, variant: Variant) -> Result<Duration, Failure> {
    let options = SharedMemory::options().huge_pages(variant.huge).prefault(variant.prefault);
    let id = kind.new_id();
    let start = Instant::now();
    let shm = options.create(id, size)?;
    // SAFETY: the mapping is `len` writable bytes for the life of `shm`; the object is new,
    // under a unique name or none, so no one else writes it.
    unsafe { raw::touch_pages(shm.as_mut_ptr(), shm.len()) };
    let time = start.elapsed();
    if variant.huge && kind == Kind::Posix {
        // A POSIX object in a hugetlbfs is removed by its handle (shmrm looks in /dev/shm).
        shm.remove()?;
    }
    drop(shm);
    Ok(time)
}

fn print(settings: &Settings, kinds: &[(&str, &Vec<Samples>)], notes: &[String]) {
    let mut table = Table::new(&["kind", "how", "median", "spread", "ratio to 4 KiB first touch"]);
    let mut notes = notes.to_vec();
    for (kind, samples) in kinds {
        let baseline = samples[0].median();
        for (variant, samples) in VARIANTS.iter().zip(samples.iter()) {
            if samples.is_empty() {
                continue;
            }
            table.row(vec![
                (*kind).into(),
                variant.describe().into(),
                stats::duration(samples.median()),
                format!("{}–{}", stats::duration(samples.min()), stats::duration(samples.max())),
                stats::format_ratio(stats::ratio(samples.median(), baseline)),
            ]);
        }
        let (first_touch, prefault) = (samples[2].median(), samples[3].median());
        if !samples[2].is_empty() && !samples[3].is_empty() {
            notes.push(format!(
                "{kind}: with 2 MiB pages, first touch is {}× and prefault {}× as fast as with 4 KiB pages.",
                stats::format_ratio(stats::ratio(baseline, first_touch)),
                stats::format_ratio(stats::ratio(samples[1].median(), prefault)),
            ));
        }
    }
    let about = format!(
        "From the call that makes a {} object (volatile) to the end of one write every 4 KiB, in \
         pages of 4 KiB or in huge pages of 2 MiB, without and with prefault: the median of {} \
         runs, the variants taking turns, and the lowest and highest (spread); removing the \
         object is not timed. Ratio: the median over that of first touch in 4 KiB pages, same \
         kind.",
        stats::bytes(settings.size),
        settings.reps
    );
    stats::print_section("Huge pages: time until a fresh object is fully usable", &about, &table, &notes);
}

/// Whether a hugetlbfs is mounted where this process sees it.
fn hugetlbfs_mounted() -> bool {
    std::fs::read_to_string("/proc/self/mounts")
        .is_ok_and(|mounts| mounts.lines().any(|line| line.split_whitespace().nth(2) == Some("hugetlbfs")))
}

/// The POSIX rows, measured by `huge-posix` in a mount namespace of its own.
fn in_own_namespace(settings: &Settings) -> Result<Vec<Samples>, Failure> {
    let dir = std::env::temp_dir().join(stop::unique_name().trim_start_matches('/'));
    std::fs::create_dir(&dir).map_err(|error| failure(format!("mkdir {}: {error}", dir.display())))?;
    let _remove = RemoveDir(dir.clone());
    let exe = std::env::current_exe().map_err(|error| failure(format!("cannot find this program: {error}")))?;
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .arg("huge-posix")
        .arg(&dir)
        .args([settings.size.to_string(), settings.reps.to_string()])
        .stdin(Stdio::null())
        .output()
        .map_err(|error| failure(format!("cannot run unshare: {error}")))?;
    if !output.status.success() {
        return Err(failure(format!(
            "the process in its own mount namespace failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )));
    }
    // One line per variant: its samples in nanoseconds.
    let text = String::from_utf8_lossy(&output.stdout);
    let rows: Vec<Samples> = text
        .lines()
        .map(|line| {
            let mut samples = Samples::default();
            for nanos in line.split_whitespace().filter_map(|n| n.parse().ok()) {
                samples.push(Duration::from_nanos(nanos));
            }
            samples
        })
        .collect();
    if rows.len() != VARIANTS.len() {
        return Err(failure(format!("the process in its own mount namespace said {text:?}")));
    }
    Ok(rows)
}

/// Removes a directory when dropped.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// `ipcmem-bench huge-posix DIR SIZE REPS`: in its own mount namespace, mounts a hugetlbfs on
/// `DIR`, measures the POSIX variants, and prints one line per variant: its times in ns.
pub fn huge_posix(args: &HugePosixArgs) -> Outcome {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let c = |text: &str| std::ffi::CString::new(text).map_err(|_| failure("a NUL in the directory"));
    let (source, target, fstype) = (c("none")?, c(&args.dir)?, c("hugetlbfs")?);
    // SAFETY: C strings that live through the call; this process has a mount namespace of its
    // own with private propagation (unshare), so the mount is seen by no other process.
    if unsafe { libc::mount(source.as_ptr(), target.as_ptr(), fstype.as_ptr(), 0, std::ptr::null()) } != 0 {
        return Err(failure(format!("mount hugetlbfs on {}: {}", args.dir, std::io::Error::last_os_error())));
    }
    let samples = measure(args.size, args.reps, true, Kind::Posix)?;
    for samples in samples {
        let line: Vec<String> = samples.iter().map(|time| time.as_nanos().to_string()).collect();
        println!("{}", line.join(" "));
    }
    Ok(())
}

/// Huge pages reserved for the run: the pool's previous size comes back on drop.
struct Reserved {
    _lock: File,
}

impl Drop for Reserved {
    fn drop(&mut self) {
        restore_pool();
    }
}

/// The size of the pool to restore, while a run holds pages; `u64::MAX` when none.
static PREVIOUS: AtomicU64 = AtomicU64::new(u64::MAX);

/// Gives the pool the size it had before [`reserve`] grew it, if it did and has not had it back
/// yet. Called when the reservation drops, and by the last-resort sweep of a run that a
/// second signal ends at once (which drops nothing).
pub fn restore_pool() {
    let previous = PREVIOUS.swap(u64::MAX, Ordering::SeqCst);
    if previous == u64::MAX {
        return;
    }
    if let Err(error) = std::fs::write(NR_HUGEPAGES, previous.to_string()) {
        eprintln!("ipcmem-bench: could not restore {NR_HUGEPAGES} to {previous}: {error}");
    }
}

/// Makes sure `pages` huge pages of 2 MiB are free until the result is dropped, growing the
/// pool if needed; `Err` with the reason where that cannot be done.
fn reserve(pages: u64) -> Result<Reserved, String> {
    if meminfo("Hugepagesize:") != (HUGE_PAGE / 1024) as u64 {
        return Err("the default huge page size is not 2 MiB here".into());
    }
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(LOCK_FILE)
        .map_err(|error| format!("cannot open {LOCK_FILE}: {error}"))?;
    // SAFETY: flock on a descriptor this function owns; no memory is involved.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(format!("flock {LOCK_FILE}: {}", std::io::Error::last_os_error()));
    }
    let previous: u64 = std::fs::read_to_string(NR_HUGEPAGES)
        .map_err(|error| format!("cannot read {NR_HUGEPAGES}: {error}"))?
        .trim()
        .parse()
        .map_err(|error| format!("{NR_HUGEPAGES}: {error}"))?;
    let free = meminfo("HugePages_Free:");
    if free >= pages {
        return Ok(Reserved { _lock: lock });
    }
    let wanted = previous + (pages - free);
    std::fs::write(NR_HUGEPAGES, wanted.to_string())
        .map_err(|error| format!("cannot write {wanted} to {NR_HUGEPAGES} (root only): {error}"))?;
    PREVIOUS.store(previous, Ordering::SeqCst);
    // From here on, dropping `reserved` (also on the error below) restores the pool.
    let reserved = Reserved { _lock: lock };
    let free = meminfo("HugePages_Free:");
    if free < pages {
        return Err(format!("asked the kernel for {pages} free huge pages, it found {free}"));
    }
    Ok(reserved)
}

/// A field of `/proc/meminfo` (its first number).
fn meminfo(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    text.lines().find_map(|line| line.strip_prefix(field)?.split_whitespace().next()?.parse().ok()).unwrap_or(0)
}
