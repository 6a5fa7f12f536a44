//! Round trip between two processes: ping from this one, pong from a child (this bench binary
//! run again), through each way ipcmem offers and the kernel's own for comparison:
//! a raw busy-wait on shared words (with a `pause` at each check, and without: the floor is the
//! faster; the ping is a plain store), `Event` (default spin budget, and none), anonymous
//! semaphores, a robust mutex with a condition variable, a pipe and a Unix socket.
//!
//! `cargo bench -p ipcmem-bench --bench pingpong`; the medians are in
//! `target/criterion/pingpong/*/new/estimates.json`.
#![allow(clippy::similar_names)] // `ping` and `pong` name the two directions

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use ipcmem::sync::{Condvar, Mutex};
use ipcmem::{Event, Semaphore, SharedMemory};

/// Names the child's mode; its arguments follow on the command line.
const CHILD_VAR: &str = "IPCMEM_PINGPONG_CHILD";
/// Any wait longer than this means the other side is gone: fail instead of hanging.
const PATIENCE: Duration = Duration::from_secs(10);

// The layout of the shared memory object.
const READY: usize = 0; // u32: the child is set up
const PING: usize = 64; // u32 word, Event, or Semaphore
const PONG: usize = 128; // the same, the other way
const LOCK: usize = 256; // Mutex<u32>: whose turn
const TURN: usize = 512; // Condvar

fn main() {
    if let Ok(mode) = std::env::var(CHILD_VAR) {
        let name = std::env::args().nth(1).unwrap_or_default();
        pong(&mode, &name);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(30).warm_up_time(Duration::from_secs(1)).measurement_time(Duration::from_secs(3));
    targets = pingpong
}

fn pingpong(c: &mut Criterion) {
    let mut group = c.benchmark_group("pingpong");
    for mode in ["busy-wait", "busy-wait-no-pause", "event-spin", "event-park", "semaphore", "mutex-condvar"] {
        let peer = ShmPeer::start(mode);
        group.bench_function(mode, |b| b.iter_custom(|iters| peer.round_trips(iters)));
    }
    for mode in ["pipe", "unix-socket"] {
        let mut peer = StreamPeer::start(mode);
        group.bench_function(mode, |b| b.iter_custom(|iters| peer.round_trips(iters)));
    }
    group.finish();
}

/// A child that answers through shared memory.
struct ShmPeer {
    mode: &'static str,
    shm: Arc<SharedMemory>,
    ping: Event,
    pong: Event,
    ping_sem: Option<Semaphore>,
    pong_sem: Option<Semaphore>,
    turn: Option<(Mutex<u32>, Condvar)>,
    child: Child,
}

impl ShmPeer {
    fn start(mode: &'static str) -> ShmPeer {
        let name = format!("/ipcmem-bench-pingpong-{}-{mode}", std::process::id());
        let shm = Arc::new(SharedMemory::create(name.as_str(), 4096).expect("shared memory"));
        let spin = if mode == "event-park" { Duration::ZERO } else { Event::DEFAULT_SPIN };
        let ping = Event::attach_at(&shm, PING).unwrap().with_spin(spin);
        let pong = Event::attach_at(&shm, PONG).unwrap().with_spin(spin);
        let (ping_sem, pong_sem) = if mode == "semaphore" {
            (Some(Semaphore::init_at(&shm, PING, 0).unwrap()), Some(Semaphore::init_at(&shm, PONG, 0).unwrap()))
        } else {
            (None, None)
        };
        let turn = (mode == "mutex-condvar")
            .then(|| (init_mutex(&shm, LOCK, 0_u32).unwrap(), Condvar::init_at(&shm, TURN).unwrap()));
        let child = child(mode).arg(&name).spawn().expect("spawn the child");
        let ready = &shm.atomic_u32s(READY, 1).unwrap()[0];
        let deadline = Instant::now() + PATIENCE;
        while ready.load(Ordering::Acquire) == 0 {
            assert!(Instant::now() < deadline, "the {mode} child never got ready");
            std::thread::sleep(Duration::from_millis(1));
        }
        ShmPeer { mode, shm, ping, pong, ping_sem, pong_sem, turn, child }
    }

    fn round_trips(&self, iters: u64) -> Duration {
        if let Some(pause) = busy_pause(self.mode) {
            return self.busy_round_trips(iters, pause);
        }
        let start = Instant::now();
        for _ in 0..iters {
            match self.mode {
                "semaphore" => {
                    self.ping_sem.as_ref().unwrap().post().unwrap();
                    assert!(self.pong_sem.as_ref().unwrap().wait_timeout(PATIENCE).unwrap(), "no pong");
                }
                "mutex-condvar" => self.turn_round_trip(),
                _ => {
                    let seen = self.pong.value();
                    self.ping.notify_one();
                    self.pong.wait_timeout(seen, PATIENCE).unwrap().expect("no pong");
                }
            }
        }
        start.elapsed()
    }

    /// The floor: the ping is a plain store of the next number (this process alone writes the
    /// word), the pong its echo; the words are taken once, outside the timed loop.
    fn busy_round_trips(&self, iters: u64, pause: bool) -> Duration {
        let ping = &self.shm.atomic_u32s(PING, 1).unwrap()[0];
        let pong = &self.shm.atomic_u32s(PONG, 1).unwrap()[0];
        let mut sent = ping.load(Ordering::Relaxed);
        let start = Instant::now();
        for _ in 0..iters {
            sent = sent.wrapping_add(1);
            ping.store(sent, Ordering::Release);
            spin_until(pause, || pong.load(Ordering::Acquire) == sent);
        }
        start.elapsed()
    }

    /// Turn 1: the child's; turn 0: ours. Give the turn, wait for it back.
    fn turn_round_trip(&self) {
        let (mutex, condvar) = self.turn.as_ref().unwrap();
        let mut guard = mutex.lock().unwrap().into_guard();
        guard.set(1).unwrap();
        condvar.notify_all().unwrap();
        while guard.get().unwrap() != 0 {
            let (again, result) = condvar.wait_timeout(guard, PATIENCE).unwrap();
            guard = again.into_guard();
            assert!(!result.timed_out(), "no pong");
        }
    }
}

impl Drop for ShmPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A child that answers through a pipe or a socket.
struct StreamPeer {
    send: File,
    receive: File,
    child: Child,
}

impl StreamPeer {
    fn start(mode: &str) -> StreamPeer {
        let mut command = child(mode);
        if mode == "pipe" {
            let mut child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("spawn the child");
            let send = File::from(OwnedFd::from(child.stdin.take().unwrap()));
            let receive = File::from(OwnedFd::from(child.stdout.take().unwrap()));
            StreamPeer { send, receive, child }
        } else {
            let (ours, theirs) = UnixStream::pair().expect("a socket pair");
            let child = command.stdin(Stdio::from(OwnedFd::from(theirs))).spawn().expect("spawn the child");
            let ours = File::from(OwnedFd::from(ours));
            StreamPeer { send: ours.try_clone().unwrap(), receive: ours, child }
        }
    }

    fn round_trips(&mut self, iters: u64) -> Duration {
        let mut byte = [0_u8];
        let start = Instant::now();
        for _ in 0..iters {
            self.send.write_all(&byte).unwrap();
            self.receive.read_exact(&mut byte).unwrap();
        }
        start.elapsed()
    }
}

impl Drop for StreamPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This bench binary, to be run as the child of `mode`.
fn child(mode: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("the bench binary"));
    command.env(CHILD_VAR, mode).stdin(Stdio::null()).stdout(Stdio::null());
    command
}

/// Whether a busy-wait `mode` pauses at each check; `None` for the other modes.
fn busy_pause(mode: &str) -> Option<bool> {
    match mode {
        "busy-wait" => Some(true),
        "busy-wait-no-pause" => Some(false),
        _ => None,
    }
}

/// Spins until `done` (with a `pause` at each check if `pause`), failing after `PATIENCE`.
fn spin_until(pause: bool, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    let mut spins = 0_u32;
    while !done() {
        if pause {
            std::hint::spin_loop();
        }
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(65_536) {
            assert!(start.elapsed() < PATIENCE, "no answer from the other process");
        }
    }
}

/// The child: answers every ping with a pong until killed.
fn pong(mode: &str, name: &str) {
    match mode {
        "pipe" => echo(File::from(dup(std::io::stdin().as_fd())), File::from(dup(std::io::stdout().as_fd()))),
        "unix-socket" => {
            let socket = File::from(dup(std::io::stdin().as_fd()));
            echo(socket.try_clone().unwrap(), socket);
        }
        _ => pong_shm(mode, name),
    }
}

fn dup(fd: std::os::fd::BorrowedFd<'_>) -> OwnedFd {
    fd.try_clone_to_owned().expect("dup")
}

fn echo(mut input: File, mut output: File) {
    let mut byte = [0_u8];
    while input.read_exact(&mut byte).is_ok() {
        if output.write_all(&byte).is_err() {
            return;
        }
    }
}

fn pong_shm(mode: &str, name: &str) {
    let shm = Arc::new(SharedMemory::open(name).expect("open the shared memory"));
    let ready: &AtomicU32 = &shm.atomic_u32s(READY, 1).unwrap()[0];
    match mode {
        "busy-wait" | "busy-wait-no-pause" => {
            let pause = busy_pause(mode) == Some(true);
            let ping = &shm.atomic_u32s(PING, 1).unwrap()[0];
            let pong = &shm.atomic_u32s(PONG, 1).unwrap()[0];
            ready.store(1, Ordering::Release);
            let mut seen = ping.load(Ordering::Acquire);
            loop {
                spin_until(pause, || ping.load(Ordering::Acquire) != seen);
                seen = ping.load(Ordering::Acquire);
                pong.store(seen, Ordering::Release);
            }
        }
        "semaphore" => {
            let ping = Semaphore::attach_at(&shm, PING).unwrap();
            let pong = Semaphore::attach_at(&shm, PONG).unwrap();
            ready.store(1, Ordering::Release);
            while ping.wait_timeout(PATIENCE).unwrap() {
                pong.post().unwrap();
            }
        }
        "mutex-condvar" => {
            let mutex = attach_mutex(&shm, LOCK).unwrap();
            let condvar = Condvar::attach_at(&shm, TURN).unwrap();
            ready.store(1, Ordering::Release);
            let mut guard = mutex.lock().unwrap().into_guard();
            loop {
                while guard.get().unwrap() != 1 {
                    let (again, result) = condvar.wait_timeout(guard, PATIENCE).unwrap();
                    guard = again.into_guard();
                    if result.timed_out() {
                        return;
                    }
                }
                guard.set(0).unwrap();
                condvar.notify_all().unwrap();
            }
        }
        _ => {
            let spin = if mode == "event-park" { Duration::ZERO } else { Event::DEFAULT_SPIN };
            let ping = Event::attach_at(&shm, PING).unwrap().with_spin(spin);
            let pong = Event::attach_at(&shm, PONG).unwrap().with_spin(spin);
            let mut seen = ping.value();
            ready.store(1, Ordering::Release);
            while let Some(now) = ping.wait_timeout(seen, PATIENCE).unwrap() {
                seen = now;
                pong.notify_one();
            }
        }
    }
}

/// [`Mutex::init_at`] for these tests and benches, which write a mutex's bytes only through its
/// handles.
fn init_mutex(shm: &std::sync::Arc<SharedMemory>, offset: usize, value: u32) -> ipcmem::Result<Mutex<u32>> {
    // SAFETY: nothing here writes the mutex's bytes other than through `Mutex` handles.
    unsafe { Mutex::init_at(shm, offset, value) }
}

/// [`Mutex::attach_at`], under the same promise as `init_mutex`.
fn attach_mutex(shm: &std::sync::Arc<SharedMemory>, offset: usize) -> ipcmem::Result<Mutex<u32>> {
    // SAFETY: as in `init_mutex`.
    unsafe { Mutex::attach_at(shm, offset) }
}
