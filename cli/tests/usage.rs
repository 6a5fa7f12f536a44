//! Usage: help with an example for every command, exit status 2 for every kind of bad input,
//! and never a panic.

mod common;

use common::{ipcmem, unique_name};

const COMMANDS: [&str; 12] =
    ["create", "hold", "list", "info", "rm", "read", "write", "chmod", "key", "gc", "stream", "demo"];

/// Fails if `stderr` shows a Rust panic or a debug dump.
fn assert_no_panic(stderr: &str) {
    for sign in ["panicked", "RUST_BACKTRACE", "Error {", "Os {", "NotFound {"] {
        assert!(!stderr.contains(sign), "stderr shows {sign:?}: {stderr}");
    }
}

#[test]
fn every_command_has_help_with_an_example() {
    for command in COMMANDS {
        let output = ipcmem([command, "--help"]).output().expect("run ipcmem");
        assert!(output.status.success(), "{command} --help");
        let help = String::from_utf8_lossy(&output.stdout);
        assert!(help.contains("Example:"), "{command} --help has no example:\n{help}");
        assert!(help.contains(&format!("$ ipcmem {command}")), "{command} --help shows no use of {command}:\n{help}");
    }
    let main = String::from_utf8(ipcmem(["--help"]).output().expect("run ipcmem").stdout).expect("UTF-8");
    for command in COMMANDS {
        assert!(main.contains(command), "the main help lists no {command}");
    }
    assert!(!main.contains("demo-child"), "the second process of demo is hidden");
}

/// Runs `ipcmem ARGS…`, expects exit status 2 and a message naming `why`.
fn usage_error(args: &[&str], why: &str) {
    let output = ipcmem(args).output().expect("run ipcmem");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "ipcmem {args:?} should be a usage error; stderr: {stderr}");
    assert!(stderr.contains(why), "ipcmem {args:?}: stderr lacks {why:?}: {stderr}");
    assert!(output.stdout.is_empty(), "ipcmem {args:?} printed on stdout");
    assert_no_panic(&stderr);
}

#[test]
fn unknown_commands_and_flags() {
    usage_error(&[], "Usage");
    usage_error(&["frobnicate"], "unrecognized subcommand");
    usage_error(&["list", "--verbose"], "unexpected argument");
    usage_error(&["list", "--posix", "--sysv"], "cannot be used with");
    usage_error(&["rm"], "required");
    usage_error(&["gc", "--force"], "unexpected argument");
}

#[test]
fn bad_object_syntax() {
    for bad in ["noslash", "/", "/a/b", "", "key:", "key:xyz", "key:0x1ffffffff", "id:-1", "id:abc", "shm:1"] {
        for command in ["info", "read", "rm", "hold"] {
            let output = ipcmem([command, bad]).output().expect("run ipcmem");
            assert_eq!(output.status.code(), Some(2), "{command} {bad:?}");
            assert_no_panic(&String::from_utf8_lossy(&output.stderr));
        }
        usage_error(&["create", bad, "10"], "<OBJ>");
        usage_error(&["chmod", bad, "0600"], "<OBJ>");
    }
    let long = format!("/{}", "x".repeat(256));
    usage_error(&["info", &long], "NAME_MAX");
    usage_error(&["create", "/a\u{1}/b", "10"], "'/'");
}

#[test]
fn private_is_for_create_only() {
    for args in [
        vec!["info", "private"],
        vec!["hold", "private"],
        vec!["rm", "private"],
        vec!["read", "private"],
        vec!["write", "private"],
        vec!["chmod", "private", "0600"],
    ] {
        usage_error(&args, "for `create` only");
    }
    usage_error(&["create", "id:5", "10"], "existing segment");
}

#[test]
fn bad_sizes_and_counts() {
    let name = unique_name("never-made");
    for bad in ["0", "", "-1", "1.5", "4kb", "4 KiB", "KiB", "99999999999999999999", "20000000000GiB", "0x10"] {
        usage_error(&["create", &name, bad], "<SIZE>");
    }
    usage_error(&["read", &name, "--offset=-3"], "--offset");
    usage_error(&["read", &name, "--length", "lots"], "--length");
    usage_error(&["write", &name, "--offset", "1T"], "--offset");
    assert!(!common::posix_exists(&name));
}

#[test]
fn bad_modes() {
    let name = unique_name("never-made");
    for bad in ["", "999", "0800", "1777", "07777", "rw-r--r--", "u+rw", "-1"] {
        usage_error(&["create", &name, "10", &format!("--mode={bad}")], "--mode");
        usage_error(&["chmod", &name, bad], "<MODE>");
    }
    assert!(!common::posix_exists(&name));
}

#[test]
fn volatile_needs_hold() {
    let name = unique_name("never-made");
    usage_error(&["create", &name, "10", "--volatile"], "--hold");
    assert!(!common::posix_exists(&name));
}

#[test]
fn key_project_must_be_1_to_255() {
    for bad in ["0", "256", "-1", "x", ""] {
        usage_error(&["key", "/", bad], "<PROJ>");
    }
}
