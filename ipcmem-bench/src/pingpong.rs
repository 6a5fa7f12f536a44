//! `--pingpong`: the round trip between two processes. This process pings, a child (this
//! program again, as the hidden command `pong`) pongs, through each mechanism in turn:
//! a busy-wait on shared words (the floor, three ways: the fastest is the floor), `Event`
//! (spinning, and parking at once),
//! anonymous semaphores in shared memory, a robust mutex with a condition variable, a pipe and
//! a Unix socket.
//!
//! Every round trip is timed on its own, less the cost of the timing itself (empty rounds,
//! measured the same way): the 99th percentile is of single round trips, the median of the
//! means of a few consecutive ones (see [`MEAN_OF`]). The whole is repeated (`--reps`, 3 by
//! default), each mechanism with a new second process; the table shows the median over the
//! repetitions and their spread.
//!
//! The floor must be one: a busy-wait slower than `Event` (which came out at 0.38 and 0.40 of
//! it in two runs of three) measures the loop, not the floor. So the busy-wait runs three ways:
//! with a `pause` at every check (as `Event` spins), without one, and without one with the two
//! processes pinned to different CPUs (where two CPUs are there); the fastest of them, in each
//! repetition, is the floor.
#![allow(clippy::similar_names)] // `ping` and `pong` name the two directions

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use ipcmem::sync::{Condvar, Mutex};
use ipcmem::{Event, Semaphore, SharedMemory};

use crate::failure::failure;
use crate::failure::{Failure, Outcome};
use crate::section::{Counts, Section};
use crate::stats::{self, Samples, Table};
use crate::{progress, stop, warm_up, Settings, PATIENCE};

/// The size of the shared memory object the two processes share.
const LEN: usize = 4096;
// Where things are in it.
/// u32: the child is set up.
const READY: usize = 0;
/// The ping: a u32 word, an Event or a Semaphore.
const PING: usize = 64;
/// The pong, the same way back.
const PONG: usize = 128;
/// `Mutex<u32>`: whose turn it is (1: the child's, 0: ours).
const LOCK: usize = 256;
/// The condition variable that goes with it.
const TURN: usize = 512;
/// How many spins between two looks at the clock and at the stop flag.
const SPINS_PER_CHECK: u32 = 1 << 16;
/// How long the round trips of one mechanism may take, per round trip asked for (3 s for
/// 20 000, 20 times what a wake-up through the kernel takes here); fewer are measured past it.
const BUDGET_PER_TRIP: Duration = Duration::from_micros(150);
/// The fewest round trips measured, past the budget too.
const MIN_TRIPS: usize = 10 * MEAN_OF;
/// The medians are of means of this many consecutive round trips: the clock ticks every 10 ns
/// or so on some machines, too coarse for the fastest round trips (about 100 ns) one by one.
const MEAN_OF: usize = 10;

/// A way to pass the turn between the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Spinning on a word of shared memory each, with a `pause` at each check.
    BusyWait,
    /// The same without the `pause`.
    BusyWaitTight,
    /// The same without the `pause`, each process pinned to a CPU of its own.
    BusyWaitPinned,
    /// `Event`s with the default spin budget.
    EventSpin,
    /// `Event`s that park at once.
    EventPark,
    /// Anonymous semaphores in shared memory.
    Semaphore,
    /// A robust mutex and a condition variable: whose turn it is.
    MutexCondvar,
    /// A pipe each way (the child's stdin and stdout).
    Pipe,
    /// A Unix socket (the child's stdin).
    UnixSocket,
}

impl Mode {
    const ALL: [Mode; 9] = [
        Mode::BusyWait,
        Mode::BusyWaitTight,
        Mode::BusyWaitPinned,
        Mode::EventSpin,
        Mode::EventPark,
        Mode::Semaphore,
        Mode::MutexCondvar,
        Mode::Pipe,
        Mode::UnixSocket,
    ];

    /// Its name on the command line of the child.
    fn arg(self) -> String {
        self.to_possible_value().map(|value| value.get_name().to_owned()).unwrap_or_default()
    }

    /// Its row in the table.
    fn describe(self) -> String {
        match self {
            Mode::BusyWait => "busy-wait on a shared word, pause at each check".into(),
            Mode::BusyWaitTight => "busy-wait on a shared word, no pause".into(),
            Mode::BusyWaitPinned => "busy-wait on a shared word, no pause, pinned to 2 CPUs".into(),
            Mode::EventSpin => format!("Event, spinning (default budget, {} µs)", Event::DEFAULT_SPIN.as_micros()),
            Mode::EventPark => "Event, parking at once (spin budget 0)".into(),
            Mode::Semaphore => "anonymous semaphores in shared memory".into(),
            Mode::MutexCondvar => "robust mutex + condition variable (turn handoff)".into(),
            Mode::Pipe => "pipe".into(),
            Mode::UnixSocket => "Unix socket (socketpair)".into(),
        }
    }

    /// Whether it is a busy-wait, one candidate for the floor.
    fn is_busy_wait(self) -> bool {
        matches!(self, Mode::BusyWait | Mode::BusyWaitTight | Mode::BusyWaitPinned)
    }

    /// Whether its spin loops pause at each check.
    fn pauses(self) -> bool {
        self != Mode::BusyWaitTight && self != Mode::BusyWaitPinned
    }

    /// The CPU this process (`parent`) or the second runs on, if pinned.
    fn cpu(self, parent: bool) -> Option<usize> {
        (self == Mode::BusyWaitPinned).then_some(usize::from(!parent))
    }

    /// The spin budget of its Events.
    fn spin(self) -> Duration {
        if self == Mode::EventPark {
            Duration::ZERO
        } else {
            Event::DEFAULT_SPIN
        }
    }
}

/// The arguments of the hidden `pong`.
#[derive(Debug, Args)]
pub struct PongArgs {
    /// How to answer.
    #[arg(value_enum)]
    mode: Mode,
    /// The shared memory object (all but pipe and unix-socket).
    name: Option<String>,
}

/// `--pingpong`.
pub const SECTION: Section = Section {
    flag: "pingpong",
    help: "Round trips between two processes (the second is this program again): Event, semaphores, \
           a robust mutex with a condition variable, a pipe, a Unix socket, against a busy-wait",
    in_default_run: false,
    large: false,
    reps: Counts { full: 3, quick: 1 },
    iterations: Counts { full: 20_000, quick: 200 },
    run,
};

/// What one repetition gave for one mechanism.
#[derive(Debug, Clone, Copy)]
struct Trip {
    /// The median of the means of [`MEAN_OF`] consecutive round trips.
    median: Duration,
    /// The 99th percentile of single round trips.
    p99: Duration,
    /// `median` over the floor of the same repetition.
    ratio: f64,
    /// How many round trips were measured (fewer than asked for past the budget, [`budget`]).
    count: usize,
}

/// Measures and prints the table.
pub fn run(settings: &Settings) -> Outcome {
    progress("round trips between two processes");
    let mut overheads = Samples::with_capacity(settings.reps);
    // One row per mechanism, one `Trip` per repetition.
    let mut trips: Vec<Vec<Trip>> = vec![Vec::with_capacity(settings.reps); Mode::ALL.len()];
    for _ in 0..settings.reps {
        let overhead = measure(settings.iterations, || Ok(()))?.median_of_means(MEAN_OF);
        overheads.push(overhead);
        let mut repetition = Vec::with_capacity(Mode::ALL.len());
        for mode in Mode::ALL {
            stop::check()?;
            let samples = round_trips(mode, settings.iterations)?.less(overhead);
            repetition.push((mode, samples.median_of_means(MEAN_OF), samples.percentile(0.99), samples.len()));
        }
        let floor = repetition
            .iter()
            .filter(|(mode, ..)| mode.is_busy_wait())
            .map(|(_, median, ..)| *median)
            .min()
            .unwrap_or_default();
        for ((_, median, p99, count), trips) in repetition.into_iter().zip(&mut trips) {
            trips.push(Trip { median, p99, ratio: stats::ratio(median, floor), count });
        }
    }
    print(settings, overheads.median(), &trips);
    Ok(())
}

/// The median round trip through `Event`s with the default spin budget (as in the table), for
/// other sections that compare with it (`--stream`).
pub fn event_spin_round_trip(iterations: usize) -> Result<Duration, Failure> {
    let overhead = measure(iterations, || Ok(()))?.median_of_means(MEAN_OF);
    Ok(round_trips(Mode::EventSpin, iterations)?.less(overhead).median_of_means(MEAN_OF))
}

/// `iterations` round trips through `mode`, with a new second process.
fn round_trips(mode: Mode, iterations: usize) -> Result<Samples, Failure> {
    let _pinned = mode.cpu(true).map(Pinned::to).transpose()?;
    match mode {
        Mode::Pipe | Mode::UnixSocket => StreamPeer::start(mode)?.round_trips(iterations),
        _ => ShmPeer::start(mode)?.round_trips(iterations),
    }
}

fn print(settings: &Settings, overhead: Duration, trips: &[Vec<Trip>]) {
    let mut table = Table::new(&["mechanism", "median", "spread", "p99", "spread", "ratio to the floor", "spread"]);
    let row_of = |wanted: Mode| Mode::ALL.iter().position(|mode| *mode == wanted).map(|row| &trips[row]);
    for (mode, trips) in Mode::ALL.iter().zip(trips) {
        let medians = Spread::of(trips.iter().map(|trip| trip.median.as_secs_f64()));
        let p99s = Spread::of(trips.iter().map(|trip| trip.p99.as_secs_f64()));
        let ratios = Spread::of(trips.iter().map(|trip| trip.ratio));
        table.row(vec![
            mode.describe(),
            stats::seconds(medians.median),
            medians.range(stats::seconds),
            stats::seconds(p99s.median),
            p99s.range(stats::seconds),
            stats::format_ratio(ratios.median),
            ratios.range(stats::format_ratio),
        ]);
    }
    let about = format!(
        "One process pings, the other pongs: {} round trips through each mechanism (after {} \
         unmeasured), each timed on its own, less the cost of the timing itself ({}, measured \
         on empty rounds), with a new second process for each mechanism; all of it {} times. \
         Median: of the means of {MEAN_OF} consecutive round trips (exact where the clock's \
         tick is not); p99: of single round trips; each the median over the repetitions, with \
         the lowest and highest (spread). The floor of a repetition is its fastest busy-wait; \
         ratio: a median over that floor, the median and spread over the repetitions.",
        settings.iterations,
        warm_up(settings.iterations),
        stats::duration(overhead),
        settings.reps
    );
    // The median over the repetitions of the ratio of two mechanisms' medians.
    let ratio = |a: Mode, b: Mode| {
        let (Some(a), Some(b)) = (row_of(a), row_of(b)) else { return "—".to_owned() };
        let ratios = Spread::of(a.iter().zip(b).map(|(a, b)| stats::ratio(a.median, b.median)));
        format!("{} ({})", stats::format_ratio(ratios.median), ratios.range(stats::format_ratio))
    };
    let event_spinning = row_of(Mode::EventSpin).map(|trips| Spread::of(trips.iter().map(|trip| trip.ratio)));
    let mut notes = vec![format!(
        "Event spinning / the floor: {} (goal ≤ 1.5). Event parked / pipe: {} (goal ≤ 1).",
        event_spinning.map_or_else(
            || "—".to_owned(),
            |ratios| format!("{} ({})", stats::format_ratio(ratios.median), ratios.range(stats::format_ratio))
        ),
        ratio(Mode::EventPark, Mode::Pipe)
    )];
    let cut: Vec<String> = Mode::ALL
        .iter()
        .zip(trips)
        .filter_map(|(mode, trips)| {
            let fewest = trips.iter().map(|trip| trip.count).min()?;
            (fewest < settings.iterations).then(|| format!("{} ({fewest})", mode.describe()))
        })
        .collect();
    if !cut.is_empty() {
        notes.push(format!(
            "Cut short after {} (the machine was busy), with the fewest round trips of a \
             repetition: {}.",
            stats::duration(budget(settings.iterations)),
            cut.join(", ")
        ));
    }
    stats::print_section("Round trip between two processes", &about, &table, &notes);
}

/// The median, lowest and highest of some figures.
struct Spread {
    median: f64,
    low: f64,
    high: f64,
}

impl Spread {
    fn of(values: impl Iterator<Item = f64>) -> Spread {
        let mut sorted: Vec<f64> = values.collect();
        sorted.sort_by(f64::total_cmp);
        let median = match sorted.len() {
            0 => f64::NAN,
            n if n % 2 == 1 => sorted[n / 2],
            n => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
        };
        Spread {
            median,
            low: sorted.first().copied().unwrap_or(f64::NAN),
            high: sorted.last().copied().unwrap_or(f64::NAN),
        }
    }

    /// `low–high`, each formatted by `format`.
    fn range(&self, format: impl Fn(f64) -> String) -> String {
        format!("{}–{}", format(self.low), format(self.high))
    }
}

/// This thread pinned to one CPU, until dropped (then allowed its CPUs of before again).
struct Pinned(libc::cpu_set_t);

impl Pinned {
    /// Pins this thread to `cpu`, if it may run there; without a second CPU, nothing changes.
    fn to(cpu: usize) -> Result<Pinned, Failure> {
        let before = affinity()?;
        let mut only = before;
        // SAFETY: `before` is a valid cpu_set_t; CPU_ISSET checks `cpu` against its size.
        let allowed = unsafe { libc::CPU_ISSET(cpu, &before) };
        if allowed {
            // SAFETY: `only` is a valid cpu_set_t; CPU_ZERO and CPU_SET write only inside it,
            // and CPU_SET checks `cpu` against its size.
            unsafe {
                libc::CPU_ZERO(&mut only);
                libc::CPU_SET(cpu, &mut only);
            }
            set_affinity(&only)?;
        }
        Ok(Pinned(before))
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        let _ = set_affinity(&self.0);
    }
}

/// The CPUs this thread may run on (`sched_getaffinity`).
fn affinity() -> Result<libc::cpu_set_t, Failure> {
    // SAFETY: all zeros is a valid, empty cpu_set_t (a bit set).
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid place of the size given; pid 0 is this thread.
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw mut set) } != 0 {
        return Err(failure(format!("sched_getaffinity: {}", std::io::Error::last_os_error())));
    }
    Ok(set)
}

/// Lets this thread run on the CPUs of `set` only (`sched_setaffinity`).
fn set_affinity(set: &libc::cpu_set_t) -> Result<(), Failure> {
    // SAFETY: `set` is a valid cpu_set_t of the size given; pid 0 is this thread.
    if unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) } != 0 {
        return Err(failure(format!("sched_setaffinity: {}", std::io::Error::last_os_error())));
    }
    Ok(())
}

/// Runs `trip` `iterations` times (after a warm-up) and times each run.
///
/// Stops early, after [`budget`]: on a machine whose CPUs other programs keep busy, a busy-wait
/// round trip can take a scheduler's time slice, and 20 000 of them minutes.
/// At least [`MIN_TRIPS`] are measured all the same (or all, if fewer are asked for), so that
/// the median stands on something; the warm-up ends early too, after a tenth of the budget.
fn measure(iterations: usize, mut trip: impl FnMut() -> Result<(), Failure>) -> Result<Samples, Failure> {
    let budget = budget(iterations);
    let start = Instant::now();
    for _ in 0..warm_up(iterations) {
        trip()?;
        stop::check()?;
        if start.elapsed() > budget / 10 {
            break;
        }
    }
    let mut samples = Samples::with_capacity(iterations);
    let start = Instant::now();
    let mut last = start;
    for n in 1..=iterations {
        trip()?;
        let now = Instant::now();
        samples.push(now - last);
        last = now;
        stop::check()?;
        if n >= MIN_TRIPS && now - start > budget {
            break;
        }
    }
    Ok(samples)
}

/// How long `iterations` round trips may take.
fn budget(iterations: usize) -> Duration {
    BUDGET_PER_TRIP.saturating_mul(u32::try_from(iterations).unwrap_or(u32::MAX))
}

/// The failure of a peer that did not answer in time.
fn no_answer() -> Failure {
    failure(format!("the second process did not answer within {PATIENCE:?}"))
}

/// This program, to run as the child of `mode`.
fn child(mode: Mode, name: Option<&str>) -> Result<Command, Failure> {
    let exe = std::env::current_exe().map_err(|error| failure(format!("cannot find this program: {error}")))?;
    let mut command = Command::new(exe);
    command.arg("pong").arg(mode.arg()).args(name).stdin(Stdio::null()).stdout(Stdio::null());
    Ok(command)
}

/// Starts `command`.
fn spawn(command: &mut Command) -> Result<Child, Failure> {
    command.spawn().map_err(|error| failure(format!("cannot start the second process: {error}")))
}

/// Kills and reaps a child.
fn end(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// What the two processes pass the turn with, in their shared memory.
// One per measurement, made before the timed loop: its size costs nothing there.
#[allow(clippy::large_enum_variant)]
enum Channel {
    /// A busy-wait, with a `pause` at each check or not.
    Words {
        pause: bool,
    },
    Events(Event, Event),
    Semaphores(Semaphore, Semaphore),
    Turn(Mutex<u32>, Condvar),
}

/// A child that answers through shared memory.
struct ShmPeer {
    shm: Arc<SharedMemory>,
    channel: Channel,
    child: Child,
}

impl ShmPeer {
    /// Makes the shared memory and what `mode` passes the turn with, starts the child, and
    /// waits until it is ready.
    fn start(mode: Mode) -> Result<ShmPeer, Failure> {
        let name = stop::unique_name();
        let shm = Arc::new(SharedMemory::create(name.as_str(), LEN)?);
        let channel = match mode {
            Mode::BusyWait | Mode::BusyWaitTight | Mode::BusyWaitPinned => Channel::Words { pause: mode.pauses() },
            Mode::Semaphore => {
                Channel::Semaphores(Semaphore::init_at(&shm, PING, 0)?, Semaphore::init_at(&shm, PONG, 0)?)
            }
            Mode::MutexCondvar => {
                // SAFETY: the bench writes the mutex's bytes only through its handles.
                let mutex = unsafe { Mutex::init_at(&shm, LOCK, 0)? };
                Channel::Turn(mutex, Condvar::init_at(&shm, TURN)?)
            }
            _ => Channel::Events(
                Event::attach_at(&shm, PING)?.with_spin(mode.spin()),
                Event::attach_at(&shm, PONG)?.with_spin(mode.spin()),
            ),
        };
        let child = spawn(&mut child(mode, Some(&name))?)?;
        let mut peer = ShmPeer { shm, channel, child };
        peer.wait_ready()?;
        Ok(peer)
    }

    fn wait_ready(&mut self) -> Outcome {
        let ready = &self.shm.atomic_u32s(READY, 1)?[0];
        let deadline = Instant::now() + PATIENCE;
        while ready.load(Ordering::Acquire) == 0 {
            stop::check()?;
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(failure(format!("the second process ended before it was ready ({status})")));
            }
            if Instant::now() > deadline {
                return Err(failure(format!("the second process was not ready within {PATIENCE:?}")));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(())
    }

    fn round_trips(&self, iterations: usize) -> Result<Samples, Failure> {
        match &self.channel {
            Channel::Words { pause } => {
                let ping = &self.shm.atomic_u32s(PING, 1)?[0];
                let pong = &self.shm.atomic_u32s(PONG, 1)?[0];
                // This process alone writes `ping`: a plain store, no read-modify-write.
                let mut sent = ping.load(Ordering::Relaxed);
                measure(iterations, || {
                    sent = sent.wrapping_add(1);
                    ping.store(sent, Ordering::Release);
                    if spin_until(*pause, || pong.load(Ordering::Acquire) == sent) {
                        Ok(())
                    } else {
                        Err(no_answer())
                    }
                })
            }
            Channel::Events(ping, pong) => measure(iterations, || {
                let seen = pong.value();
                ping.notify_one();
                pong.wait_timeout(seen, PATIENCE)?.map(drop).ok_or_else(no_answer)
            }),
            Channel::Semaphores(ping, pong) => measure(iterations, || {
                ping.post()?;
                if pong.wait_timeout(PATIENCE)? {
                    Ok(())
                } else {
                    Err(no_answer())
                }
            }),
            Channel::Turn(mutex, condvar) => measure(iterations, || turn_round_trip(mutex, condvar)),
        }
    }
}

impl Drop for ShmPeer {
    fn drop(&mut self) {
        end(&mut self.child);
    }
}

/// Gives the turn to the child (1) and waits until it gives it back (0).
fn turn_round_trip(mutex: &Mutex<u32>, condvar: &Condvar) -> Outcome {
    let mut guard = mutex.lock()?.into_guard();
    guard.set(1)?;
    condvar.notify_all()?;
    while guard.get()? != 0 {
        let (again, result) = condvar.wait_timeout(guard, PATIENCE)?;
        guard = again.into_guard();
        if result.timed_out() {
            return Err(no_answer());
        }
    }
    Ok(())
}

/// Spins until `done`, with a `pause` (`spin_loop`) at each check if `pause`; false if that took
/// longer than [`PATIENCE`] or a stop signal came.
fn spin_until(pause: bool, mut done: impl FnMut() -> bool) -> bool {
    let mut start = None;
    let mut spins = 0_u32;
    while !done() {
        if pause {
            std::hint::spin_loop();
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(SPINS_PER_CHECK) {
            let start = *start.get_or_insert_with(Instant::now);
            if start.elapsed() > PATIENCE || stop::requested() {
                return false;
            }
        }
    }
    true
}

/// A child that answers through a pipe or a socket.
struct StreamPeer {
    send: File,
    receive: File,
    child: Child,
}

impl StreamPeer {
    fn start(mode: Mode) -> Result<StreamPeer, Failure> {
        let mut command = child(mode, None)?;
        if mode == Mode::Pipe {
            let mut child = spawn(command.stdin(Stdio::piped()).stdout(Stdio::piped()))?;
            let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
                end(&mut child);
                return Err(failure("no pipes to the second process"));
            };
            let send = File::from(OwnedFd::from(stdin));
            return StreamPeer { send, receive: File::from(OwnedFd::from(stdout)), child }.answering();
        }
        let (ours, theirs) = UnixStream::pair().map_err(|error| failure(format!("socketpair: {error}")))?;
        // A child that stops answering makes the read fail instead of hanging.
        ours.set_read_timeout(Some(PATIENCE)).map_err(|error| failure(format!("SO_RCVTIMEO: {error}")))?;
        let child = spawn(command.stdin(Stdio::from(OwnedFd::from(theirs))))?;
        let ours = File::from(OwnedFd::from(ours));
        let send = ours.try_clone().map_err(|error| failure(format!("dup: {error}")))?;
        StreamPeer { send, receive: ours, child }.answering()
    }

    /// The peer, once a first round trip says that the child is up.
    fn answering(mut self) -> Result<StreamPeer, Failure> {
        self.round_trip()
            .map_err(|Failure(cause)| failure(format!("the second process did not start answering ({cause})")))?;
        Ok(self)
    }

    fn round_trip(&mut self) -> Outcome {
        let mut byte = [0_u8];
        self.send.write_all(&byte).map_err(|error| failure(format!("write to the second process: {error}")))?;
        self.receive.read_exact(&mut byte).map_err(|error| failure(format!("read from the second process: {error}")))
    }

    fn round_trips(&mut self, iterations: usize) -> Result<Samples, Failure> {
        measure(iterations, || self.round_trip())
    }
}

impl Drop for StreamPeer {
    fn drop(&mut self) {
        end(&mut self.child);
    }
}

/// `ipcmem-bench pong MODE [NAME]`: answers every ping with a pong until killed, until the
/// parent is gone, or until no ping came for [`PATIENCE`].
pub fn pong(args: &PongArgs) -> Outcome {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and changes only this process: it
    // dies with its parent instead of spinning on alone.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    match args.mode {
        Mode::Pipe => {
            echo(File::from(dup(std::io::stdin().as_fd())?), File::from(dup(std::io::stdout().as_fd())?));
            Ok(())
        }
        Mode::UnixSocket => {
            let socket = File::from(dup(std::io::stdin().as_fd())?);
            echo(socket.try_clone().map_err(|error| failure(format!("dup: {error}")))?, socket);
            Ok(())
        }
        mode => {
            let name = args.name.as_deref().ok_or_else(|| failure(format!("{} needs a name", mode.arg())))?;
            pong_shm(mode, &Arc::new(SharedMemory::open(name)?))
        }
    }
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> Result<OwnedFd, Failure> {
    fd.try_clone_to_owned().map_err(|error| failure(format!("dup: {error}")))
}

/// Writes back every byte read, unbuffered, until the input ends.
fn echo(mut input: File, mut output: File) {
    let mut byte = [0_u8];
    while input.read_exact(&mut byte).is_ok() {
        if output.write_all(&byte).is_err() {
            break;
        }
    }
}

fn pong_shm(mode: Mode, shm: &Arc<SharedMemory>) -> Outcome {
    let ready: &AtomicU32 = &shm.atomic_u32s(READY, 1)?[0];
    match mode {
        Mode::BusyWait | Mode::BusyWaitTight | Mode::BusyWaitPinned => {
            let _pinned = mode.cpu(false).map(Pinned::to).transpose()?;
            let ping = &shm.atomic_u32s(PING, 1)?[0];
            let pong = &shm.atomic_u32s(PONG, 1)?[0];
            let mut seen = ping.load(Ordering::Acquire);
            ready.store(1, Ordering::Release);
            while spin_until(mode.pauses(), || ping.load(Ordering::Acquire) != seen) {
                seen = ping.load(Ordering::Acquire);
                pong.store(seen, Ordering::Release);
            }
        }
        Mode::Semaphore => {
            let ping = Semaphore::attach_at(shm, PING)?;
            let pong = Semaphore::attach_at(shm, PONG)?;
            ready.store(1, Ordering::Release);
            while ping.wait_timeout(PATIENCE)? {
                pong.post()?;
            }
        }
        Mode::MutexCondvar => {
            // SAFETY: as in the parent: the mutex's bytes are written only through its handles.
            let mutex = unsafe { Mutex::<u32>::attach_at(shm, LOCK)? };
            let condvar = Condvar::attach_at(shm, TURN)?;
            ready.store(1, Ordering::Release);
            let mut guard = mutex.lock()?.into_guard();
            loop {
                while guard.get()? != 1 {
                    let (again, result) = condvar.wait_timeout(guard, PATIENCE)?;
                    guard = again.into_guard();
                    if result.timed_out() {
                        return Ok(());
                    }
                }
                guard.set(0)?;
                condvar.notify_all()?;
            }
        }
        _ => {
            let ping = Event::attach_at(shm, PING)?.with_spin(mode.spin());
            let pong = Event::attach_at(shm, PONG)?.with_spin(mode.spin());
            let mut seen = ping.value();
            ready.store(1, Ordering::Release);
            while let Some(now) = ping.wait_timeout(seen, PATIENCE)? {
                seen = now;
                pong.notify_one();
            }
        }
    }
    Ok(())
}
