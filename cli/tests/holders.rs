//! Holding (`create --volatile --hold`, `hold`), stopping holders with signals, garbage
//! collection after `SIGKILL`, and `demo`.

mod common;

use common::{
    create, create_as_nobody, ipcmem, json_of, key_arg, posix_exists, segment_exists, segment_id, stdout_of,
    unique_key, unique_name, wait_until, Guard, Holder,
};
use serde_json::Value;

#[test]
fn a_volatile_posix_object_lives_while_held_and_vanishes_on_sigterm_or_sigint() {
    for signal in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        let mut guard = Guard::new();
        let name = unique_name("volatile");
        guard.track(name.as_str());
        let creator = Holder::start(&["create", &name, "4KiB", "--volatile", "--hold", "--mode", "0640"]);
        assert_eq!(creator.line, name, "create prints the name before it waits");
        let info = json_of(&["info", &name, "--json"]);
        assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), Some(true)));
        assert_eq!(info["mode"], "1640", "the sticky bit marks it volatile");
        let holder = Holder::start(&["hold", &name]);
        assert_eq!(holder.line, format!("holding {name} (4096 bytes)"));

        // The creator goes; the other holder keeps the object.
        assert_eq!(creator.stop(signal), (Some(0), String::new()));
        assert!(posix_exists(&name), "still held by `hold`");
        assert_eq!(json_of(&["info", &name, "--json"])["in_use"], true);
        // The last holder goes: so does the object.
        assert_eq!(holder.stop(signal), (Some(0), String::new()));
        assert!(!posix_exists(&name), "gone with its last holder (signal {signal})");
    }
}

#[test]
fn a_volatile_segment_lives_while_attached() {
    let mut guard = Guard::new();
    let key = unique_key();
    guard.track(key);
    let creator = Holder::start(&["create", &key_arg(key), "1000", "--volatile", "--hold"]);
    let segment = guard.track_printed(&creator.line);
    let id = segment_id(&segment);
    let info = json_of(&["info", &segment, "--json"]);
    assert_eq!(info["marked_for_removal"], true);
    assert_eq!(info["volatile"], true);
    assert_eq!(info["nattch"], 1);
    assert_eq!(info["key"], Value::Null, "a segment marked for removal has lost its key");
    let output = ipcmem(["info", &key_arg(key)]).output().expect("run ipcmem");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("reachable by id only"));

    let holder = Holder::start(&["hold", &segment]);
    assert_eq!(json_of(&["info", &segment, "--json"])["nattch"], 2);
    assert_eq!(creator.stop(libc::SIGTERM).0, Some(0));
    assert!(segment_exists(id), "still attached by `hold`");
    assert_eq!(holder.stop(libc::SIGINT).0, Some(0));
    assert!(wait_until(|| !segment_exists(id)), "freed at its last detach");
}

#[test]
fn a_volatile_private_segment_vanishes_even_after_sigkill() {
    let mut guard = Guard::new();
    let creator = Holder::start(&["create", "private", "100", "--volatile", "--hold"]);
    let segment = guard.track_printed(&creator.line);
    let id = segment_id(&segment);
    assert!(segment_exists(id));
    assert_eq!(creator.stop(libc::SIGKILL).0, None);
    assert!(wait_until(|| !segment_exists(id)), "the kernel frees it at the last detach");
}

#[test]
fn create_hold_of_a_persistent_object_keeps_it_after_the_signal() {
    let mut guard = Guard::new();
    let name = unique_name("persistent-hold");
    guard.track(name.as_str());
    let creator = Holder::start(&["create", &name, "10", "--hold"]);
    assert_eq!(creator.stop(libc::SIGTERM).0, Some(0));
    assert!(posix_exists(&name));
}

#[test]
fn hold_of_a_missing_object_fails_at_once() {
    let name = unique_name("hold-missing");
    let output = ipcmem(["hold", &name]).output().expect("run ipcmem");
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).starts_with(&format!("ipcmem: {name}: ")));
}

/// The entry of `gc --json` output for `name`, if any.
fn gc_entry(json: &Value, name: &str) -> Option<Value> {
    json.as_array().expect("gc --json prints an array").iter().find(|entry| entry["name"] == name).cloned()
}

/// One test, so that no other test of this file runs `gc` meanwhile.
#[test]
fn gc_removes_only_abandoned_volatile_objects_of_its_user() {
    let mut guard = Guard::new();
    // Abandoned: both holders (a creator and a `hold`) are killed.
    let abandoned = unique_name("gc-abandoned");
    guard.track(abandoned.as_str());
    let creator = Holder::start(&["create", &abandoned, "4KiB", "--volatile", "--hold"]);
    let holder = Holder::start(&["hold", &abandoned]);
    // In use: its holder lives on.
    let in_use = unique_name("gc-in-use");
    guard.track(in_use.as_str());
    let keeper = Holder::start(&["create", &in_use, "4KiB", "--volatile", "--hold"]);
    // Persistent, held by no one.
    let persistent = create(&mut guard, &[&unique_name("gc-persistent"), "4KiB"]);
    // Another user's, abandoned too.
    let foreign = unique_name("gc-foreign");
    guard.track(foreign.as_str());
    let foreign_holder = Holder::start_as_nobody(&["create", &foreign, "4KiB", "--volatile", "--hold"]);
    assert_eq!(foreign_holder.stop(libc::SIGKILL).0, None);
    assert_eq!(creator.stop(libc::SIGKILL).0, None);
    assert_eq!(holder.stop(libc::SIGKILL).0, None);
    assert!(posix_exists(&abandoned), "SIGKILL leaves the object to gc");
    let info = json_of(&["info", &abandoned, "--json"]);
    assert_eq!((info["volatile"].as_bool(), info["in_use"].as_bool()), (Some(true), Some(false)));
    assert!(stdout_of(&["list", "--posix"])
        .lines()
        .any(|line| line.contains(&abandoned) && line.ends_with("abandoned")));

    // Dry run: listed, nothing removed.
    let dry = json_of(&["gc", "--dry-run", "--json"]);
    let entry = gc_entry(&dry, &abandoned).expect("the dry run lists the abandoned object");
    assert_eq!(entry["kind"], "posix");
    assert_eq!(entry["id"], Value::Null);
    assert_eq!(entry["removed"], false);
    assert!(entry["reason"].as_str().is_some_and(|reason| !reason.is_empty()));
    for kept in [&in_use, &persistent, &foreign] {
        assert!(gc_entry(&dry, kept).is_none(), "{kept} is not garbage");
    }
    assert!(stdout_of(&["gc", "--dry-run"]).contains(&format!("would remove {abandoned}: ")));
    assert!(posix_exists(&abandoned), "a dry run removes nothing");

    // The real run removes it, and only it.
    let text = stdout_of(&["gc"]);
    assert!(text.contains(&format!("removed {abandoned}: ")), "{text}");
    assert!(!posix_exists(&abandoned));
    for kept in [&in_use, &persistent, &foreign] {
        assert!(posix_exists(kept), "{kept} survives gc");
        assert!(!text.contains(kept.as_str()), "{text}");
    }

    // Once more, in JSON.
    let again = unique_name("gc-again");
    guard.track(again.as_str());
    let creator = Holder::start(&["create", &again, "10", "--volatile", "--hold"]);
    assert_eq!(creator.stop(libc::SIGKILL).0, None);
    let done = json_of(&["gc", "--json"]);
    assert_eq!(gc_entry(&done, &again).expect("gc lists what it removed")["removed"], true);
    assert!(!posix_exists(&again));
    for kept in [&in_use, &persistent, &foreign] {
        assert!(posix_exists(kept), "{kept} survives gc");
        assert!(gc_entry(&done, kept).is_none());
    }

    // The object in use still goes cleanly with its holder.
    assert_eq!(keeper.stop(libc::SIGTERM).0, Some(0));
    assert!(!posix_exists(&in_use));
}

#[test]
fn demo_runs_and_leaves_nothing() {
    let output = ipcmem(["demo"]).output().expect("run ipcmem demo");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "demo failed: {}", String::from_utf8_lossy(&output.stderr));
    assert!(output.stderr.is_empty());
    let parent = stdout.lines().next().and_then(|line| line.split(['[', ']']).nth(1)).expect("a first step");
    let pid: u32 = parent.split_whitespace().nth(1).and_then(|pid| pid.parse().ok()).expect("the parent's pid");
    let name = format!("/ipcmem-demo-{pid}");
    assert!(stdout.contains("[child "), "the second process speaks:\n{stdout}");
    assert!(stdout.contains(&format!("opened {name} by name")), "{stdout}");
    assert!(stdout.contains("by id: 4096 bytes"), "{stdout}");
    assert!(stdout.contains("read back from"), "{stdout}");
    assert!(stdout.contains("hello from the child"), "{stdout}");
    assert!(stdout.contains("nothing is left behind"), "{stdout}");
    assert_eq!(stdout.matches("every element").count(), 3, "three frames received:\n{stdout}");
    assert!(!stdout.contains(": NO,"), "a frame was not whole:\n{stdout}");
    assert!(!posix_exists(&format!("{name}-frames")));
    assert!(!posix_exists(&name));
    let segment = stdout.split_whitespace().find(|word| word.starts_with("id:")).expect("the segment id");
    assert!(!segment_exists(segment_id(segment.trim_end_matches([',', ':', '.']))));
}

#[test]
fn another_users_object_is_shown_with_its_owner() {
    let mut guard = Guard::new();
    let name = create_as_nobody(&mut guard, &[&unique_name("foreign-info"), "10", "--mode", "0600"]);
    let info = json_of(&["info", &name, "--json"]);
    assert_eq!((info["uid"].as_u64(), info["volatile"].as_bool()), (Some(u64::from(common::NOBODY)), Some(false)));
}
