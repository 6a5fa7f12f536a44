//! `demo`: two processes share a volatile POSIX object and a volatile System V segment, and say
//! step by step what they do and see. Nothing is left behind: both objects are volatile.
//!
//! The second process is this program again, run as the hidden command `demo-child`, which
//! opens the POSIX object by name and the segment by id.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use ipcmem::{inventory, Id, Key, SharedMemory};

use crate::failure::{Failure, Outcome};

/// The text of `demo --help`.
pub const DEMO_HELP: &str = "\
Creates a volatile POSIX object and a volatile System V segment, starts a second process that
opens them (by name, by id) and writes a message into each, reads the messages back, and shows
that both objects are gone once their last handle is dropped.

Example:
  $ ipcmem demo
  [parent 4242] created the volatile POSIX object /ipcmem-demo-4242 (4096 bytes, mode 0600)
  ...";

/// The size of both objects.
const SIZE: usize = 4096;
/// Where each process writes its message: the parent at 0, the child at 256.
const PARENT_AT: usize = 0;
const CHILD_AT: usize = 256;
/// The longest message read back.
const MESSAGE_MAX: usize = 256;
/// How long the second process may take before the demo gives up on it.
const CHILD_TIMEOUT: Duration = Duration::from_secs(30);

/// `ipcmem demo`.
pub fn run() -> Outcome {
    let pid = std::process::id();
    let name = format!("/ipcmem-demo-{pid}");
    let posix = SharedMemory::create(name.as_str(), SIZE)?;
    say("parent", format!("created the volatile POSIX object {name} ({SIZE} bytes, mode 0600)"));
    let sysv = SharedMemory::create(Key::PRIVATE, SIZE)?;
    let segment = sysv.id();
    say(
        "parent",
        format!("created the volatile System V segment {segment} ({SIZE} bytes): marked for removal at once, so the kernel frees it at its last detach"),
    );
    for (shm, how) in [(&posix, "by name"), (&sysv, "by id")] {
        let message = format!("hello from the parent, pid {pid}, to whoever opens {} {how}", shm.id());
        shm.write_at(PARENT_AT, message.as_bytes())?;
        say("parent", format!("wrote {message:?} into {}", shm.id()));
    }
    run_child(&name, &segment)?;
    for shm in [&posix, &sysv] {
        say("parent", format!("read back from {}: {:?}", shm.id(), read_message(shm, CHILD_AT)?));
    }
    drop(posix);
    drop(sysv);
    say("parent", "dropped both handles, the last ones anywhere");
    check_gone(&Id::Name(name.clone()), &format!("/dev/shm{name} is gone"))?;
    check_gone(&segment, &format!("segment {segment} is gone from ipcs -m"))?;
    say("parent", "nothing is left behind");
    Ok(())
}

/// Starts `ipcmem demo-child NAME ID` and waits for it (at most [`CHILD_TIMEOUT`]).
fn run_child(name: &str, segment: &Id) -> Outcome {
    let exe = std::env::current_exe().map_err(|error| Failure::about("demo", error))?;
    say("parent", format!("starting a second process: ipcmem demo-child {name} {segment}"));
    let mut child = Command::new(exe)
        .args(["demo-child", name, &segment.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .map_err(|error| Failure::about("demo", format!("cannot start the second process: {error}")))?;
    let deadline = Instant::now() + CHILD_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|error| Failure::about("demo", error))? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(Failure::about("demo", "the second process did not finish in time"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    if !status.success() {
        return Err(Failure::about("demo", format!("the second process failed ({status})")));
    }
    say("parent", format!("the second process (pid {}) has exited", child.id()));
    Ok(())
}

/// Fails unless `object` is gone.
fn check_gone(object: &Id, place: &str) -> Outcome {
    match inventory::info(object) {
        Err(ipcmem::Error::NotFound { .. }) => {
            say("parent", place);
            Ok(())
        }
        Ok(_) => Err(Failure::about(object, "still exists after its last handle was dropped")),
        Err(error) => Err(error.into()),
    }
}

/// `ipcmem demo-child NAME ID`: the second process of the demo.
pub fn child(name: &Id, segment: &Id) -> Outcome {
    let pid = std::process::id();
    for (object, how) in [(name, "by name"), (segment, "by id")] {
        let shm = SharedMemory::open(object)?;
        say("child", format!("opened {object} {how}: {} bytes, volatile: {}", shm.len(), shm.is_volatile()));
        say("child", format!("read from {object}: {:?}", read_message(&shm, PARENT_AT)?));
        let reply = format!("hello from the child, pid {pid}, who opened {object} {how}");
        shm.write_at(CHILD_AT, reply.as_bytes())?;
        say("child", format!("wrote {reply:?} into {object}"));
    }
    say("child", "exiting: my handles drop, the parent still holds both objects");
    Ok(())
}

/// The message at `offset`: the bytes up to the first NUL.
fn read_message(shm: &SharedMemory, offset: usize) -> Result<String, Failure> {
    let mut buffer = [0; MESSAGE_MAX];
    shm.read_at(offset, &mut buffer)?;
    let end = buffer.iter().position(|&byte| byte == 0).unwrap_or(MESSAGE_MAX);
    Ok(String::from_utf8_lossy(&buffer[..end]).into_owned())
}

/// Prints one step of `who` (`parent` or `child`), with its process id.
fn say(who: &str, what: impl std::fmt::Display) {
    println!("[{who:<6} {}] {what}", std::process::id());
}
