//! `ipcmem read` of an object that another process shrinks under it: an error, exit 1, never
//! a death by `SIGBUS`.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use common::{bin, create, unique_name, Guard};

/// `read` copies 1 MiB at a time and writes each to stdout: with stdout a pipe that nobody
/// drains, it waits in the write of the first MiB. The object is shrunk to 0 then, and the
/// pipe drained: the copy of the second MiB finds its pages gone.
#[test]
fn read_of_an_object_shrunk_under_it_is_an_error() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("shrunk-read"), "3MiB"]);
    let mut child =
        Command::new(bin()).args(["read", &name]).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    // The first bytes of the first MiB: its copy is done, its write under way.
    let mut first = [0; 4096];
    stdout.read_exact(&mut first).unwrap();
    std::fs::OpenOptions::new().write(true).open(format!("/dev/shm{name}")).unwrap().set_len(0).unwrap();
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.signal(), None, "killed by a signal: {stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(first.len() + rest.len(), 1 << 20, "the first MiB, and nothing after it");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with(&format!("ipcmem: {name}: the object was shrunk by another process to 0 bytes")),
        "{stderr}"
    );
}
