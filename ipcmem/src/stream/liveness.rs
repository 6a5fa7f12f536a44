//! Whether a stream's writer process lives: its pid, checked against the start time it recorded
//! (so that a pid reused by another process does not pass for the writer), in the pid
//! namespace it recorded (another namespace's pid tells nothing: the writer counts as alive).
//!
//! A reader needs no write access for this and no file of the object: it works alike for POSIX
//! objects and System V segments, whose readers may have only read permission.

use std::sync::OnceLock;

/// Who a process is, as the stream's control block records its writer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcessIdentity {
    /// The process id, in the namespace of `pidns`.
    pub pid: u32,
    /// Its start time in clock ticks since boot (`/proc/PID/stat`, field 22); 0 if unknown.
    pub start: u64,
    /// The inode of its pid namespace (`/proc/PID/ns/pid`); 0 if unknown.
    pub pidns: u64,
}

/// What a look at the writer's process says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Liveness {
    /// The process runs (not a zombie), with the recorded start time.
    Alive,
    /// No such process, a zombie, or another process under the same pid.
    Dead,
    /// It cannot be told from here (another pid namespace, no /proc): taken as alive.
    Unknown,
}

impl ProcessIdentity {
    /// This process.
    pub(crate) fn current() -> ProcessIdentity {
        static CURRENT: OnceLock<ProcessIdentity> = OnceLock::new();
        *CURRENT.get_or_init(|| {
            let pid = std::process::id();
            let start = read_stat(pid).map_or(0, |stat| stat.start);
            ProcessIdentity { pid, start, pidns: pid_namespace("/proc/self/ns/pid") }
        })
    }

    /// Whether the process lives, as seen from this process.
    pub(crate) fn liveness(self) -> Liveness {
        let ours = ProcessIdentity::current().pidns;
        if self.pid == 0 || self.pidns == 0 || ours == 0 || self.pidns != ours {
            return Liveness::Unknown;
        }
        if self.pid == std::process::id() {
            return Liveness::Alive;
        }
        match read_stat(self.pid) {
            None => {
                // No /proc/PID/stat: the process is gone, or /proc is not mounted.
                if std::path::Path::new("/proc/self/stat").exists() {
                    Liveness::Dead
                } else {
                    Liveness::Unknown
                }
            }
            Some(stat) if stat.zombie || (self.start != 0 && stat.start != self.start) => Liveness::Dead,
            Some(_) => Liveness::Alive,
        }
    }
}

/// What `/proc/PID/stat` says that matters here.
struct Stat {
    start: u64,
    zombie: bool,
}

/// Reads `/proc/PID/stat`: the state (field 3) and the start time (field 22). The command name
/// (field 2) may hold spaces and parentheses: the fields are counted after its last `)`.
fn read_stat(pid: u32) -> Option<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next()?;
    // Fields 4 to 21 come between the state and the start time.
    let start = fields.nth(18)?.parse().ok()?;
    Some(Stat { start, zombie: matches!(state, "Z" | "X" | "x") })
}

/// The inode of the pid namespace link `path`; 0 if it cannot be read.
fn pid_namespace(path: &str) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).map_or(0, |metadata| metadata.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_command_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 123456 1000 10";
        let stat = parse_stat(line).unwrap();
        assert_eq!(stat.start, 123_456);
        assert!(!stat.zombie);
        assert!(parse_stat("7 (x) Z 1 2").is_none());
        assert!(parse_stat("garbage").is_none());
    }

    #[test]
    fn this_process_is_alive_and_pid_reuse_is_seen() {
        let me = ProcessIdentity::current();
        assert_ne!(me.start, 0);
        assert_eq!(me.liveness(), Liveness::Alive);
        let parent = ProcessIdentity { pid: std::os::unix::process::parent_id(), ..me };
        // The parent started before us: its recorded start time is not ours.
        assert_eq!(parent.liveness(), Liveness::Dead);
        let other_namespace = ProcessIdentity { pidns: me.pidns + 1, ..me };
        assert_eq!(other_namespace.liveness(), Liveness::Unknown);
    }
}
