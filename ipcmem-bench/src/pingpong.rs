//! `--pingpong`: the round trip between two processes. This process pings, a child (this
//! program again, as the hidden command `pong`) pongs, through each mechanism in turn:
//! a busy-wait on shared words (the floor), `Event` (spinning, and parking at once),
//! anonymous semaphores in shared memory, a robust mutex with a condition variable, a pipe and
//! a Unix socket.
//!
//! Every round trip is timed on its own, less the cost of the timing itself (empty rounds,
//! measured the same way): the 99th percentile is of single round trips, the median of the
//! means of a few consecutive ones (see [`MEAN_OF`]).
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
/// The medians are of means of this many consecutive round trips: the clock ticks every 10 ns
/// or so on some machines, too coarse for the fastest round trips (about 100 ns) one by one.
const MEAN_OF: usize = 10;

/// A way to pass the turn between the two processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Spinning on a word of shared memory each.
    BusyWait,
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
    const ALL: [Mode; 7] = [
        Mode::BusyWait,
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
            Mode::BusyWait => "busy-wait on a shared word (the floor)".into(),
            Mode::EventSpin => format!("Event, spinning (default budget, {} µs)", Event::DEFAULT_SPIN.as_micros()),
            Mode::EventPark => "Event, parking at once (spin budget 0)".into(),
            Mode::Semaphore => "anonymous semaphores in shared memory".into(),
            Mode::MutexCondvar => "robust mutex + condition variable (turn handoff)".into(),
            Mode::Pipe => "pipe".into(),
            Mode::UnixSocket => "Unix socket (socketpair)".into(),
        }
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
    reps: Counts::NONE,
    iterations: Counts { full: 20_000, quick: 200 },
    run,
};

/// Measures and prints the table.
pub fn run(settings: &Settings) -> Outcome {
    progress("round trips between two processes");
    let overhead = measure(settings.iterations, || Ok(()))?.median_of_means(MEAN_OF);
    let mut results = Vec::new();
    for mode in Mode::ALL {
        stop::check()?;
        let samples = match mode {
            Mode::Pipe | Mode::UnixSocket => StreamPeer::start(mode)?.round_trips(settings.iterations)?,
            _ => ShmPeer::start(mode)?.round_trips(settings.iterations)?,
        };
        results.push((mode, samples.less(overhead)));
    }
    print(settings, overhead, &results);
    Ok(())
}

/// The median round trip through `Event`s with the default spin budget (as in the table), for
/// other sections that compare with it (`--stream`).
pub fn event_spin_round_trip(iterations: usize) -> Result<Duration, Failure> {
    let overhead = measure(iterations, || Ok(()))?.median_of_means(MEAN_OF);
    Ok(ShmPeer::start(Mode::EventSpin)?.round_trips(iterations)?.less(overhead).median_of_means(MEAN_OF))
}

fn print(settings: &Settings, overhead: Duration, results: &[(Mode, Samples)]) {
    let median_of =
        |wanted: Mode| results.iter().find(|(mode, _)| *mode == wanted).map(|(_, s)| s.median_of_means(MEAN_OF));
    let floor = median_of(Mode::BusyWait).unwrap_or_default();
    let mut table = Table::new(&["mechanism", "median", "p99", "ratio to busy-wait"]);
    for (mode, samples) in results {
        let median = samples.median_of_means(MEAN_OF);
        table.row(vec![
            mode.describe(),
            stats::duration(median),
            stats::duration(samples.percentile(0.99)),
            stats::format_ratio(stats::ratio(median, floor)),
        ]);
    }
    let about = format!(
        "One process pings, the other pongs: {} round trips through each mechanism (after {} \
         unmeasured), each timed on its own, less the cost of the timing itself ({}, measured \
         on empty rounds). Median: of the means of {MEAN_OF} consecutive round trips (exact \
         where the clock's tick is not); p99: of single round trips. Ratio: the median over \
         that of the busy-wait.",
        settings.iterations,
        warm_up(settings.iterations),
        stats::duration(overhead)
    );
    let ratio = |a: Mode, b: Mode| {
        stats::format_ratio(stats::ratio(median_of(a).unwrap_or_default(), median_of(b).unwrap_or_default()))
    };
    let notes = [format!(
        "Event spinning / busy-wait: {} (goal ≤ 1.5). Event parked / pipe: {} (goal ≤ 1).",
        ratio(Mode::EventSpin, Mode::BusyWait),
        ratio(Mode::EventPark, Mode::Pipe)
    )];
    stats::print_section("Round trip between two processes", &about, &table, &notes);
}

/// Runs `trip` `iterations` times (after a warm-up) and times each run.
fn measure(iterations: usize, mut trip: impl FnMut() -> Result<(), Failure>) -> Result<Samples, Failure> {
    for _ in 0..warm_up(iterations) {
        trip()?;
        stop::check()?;
    }
    let mut samples = Samples::with_capacity(iterations);
    let mut last = Instant::now();
    for _ in 0..iterations {
        trip()?;
        let now = Instant::now();
        samples.push(now - last);
        last = now;
        stop::check()?;
    }
    Ok(samples)
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
#[allow(clippy::large_enum_variant, reason = "one channel a benchmark run: its size does not matter")]
enum Channel {
    Words,
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
            Mode::BusyWait => Channel::Words,
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
            Channel::Words => {
                let ping = &self.shm.atomic_u32s(PING, 1)?[0];
                let pong = &self.shm.atomic_u32s(PONG, 1)?[0];
                measure(iterations, || {
                    let sent = ping.fetch_add(1, Ordering::Release).wrapping_add(1);
                    if spin_until(|| pong.load(Ordering::Acquire) == sent) {
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
    guard.set(1);
    condvar.notify_all()?;
    while guard.get() != 0 {
        let (again, result) = condvar.wait_timeout(guard, PATIENCE)?;
        guard = again.into_guard();
        if result.timed_out() {
            return Err(no_answer());
        }
    }
    Ok(())
}

/// Spins until `done`; false if that took longer than [`PATIENCE`] or a stop signal came.
fn spin_until(mut done: impl FnMut() -> bool) -> bool {
    let mut start = None;
    let mut spins = 0_u32;
    while !done() {
        std::hint::spin_loop();
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
        Mode::BusyWait => {
            let ping = &shm.atomic_u32s(PING, 1)?[0];
            let pong = &shm.atomic_u32s(PONG, 1)?[0];
            let mut seen = ping.load(Ordering::Acquire);
            ready.store(1, Ordering::Release);
            while spin_until(|| ping.load(Ordering::Acquire) != seen) {
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
                while guard.get() != 1 {
                    let (again, result) = condvar.wait_timeout(guard, PATIENCE)?;
                    guard = again.into_guard();
                    if result.timed_out() {
                        return Ok(());
                    }
                }
                guard.set(0);
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
