//! `create`, `list`, `info`, `rm`, `chmod`, `key`, `read` and `write`, on real objects of both
//! kinds, checked against the system's own view (`ipcs`, /proc/sysvipc/shm, `stat`).

mod common;

use std::process::Command;

use common::{
    create, ipcmem, ipcmem_as_nobody, json_of, key_arg, posix_exists, proc_sysvipc, segment_exists, segment_id,
    stdout_of, unique_key, unique_name, Guard, Holder,
};
use serde_json::Value;

/// Fails if `stderr` shows a Rust panic or a debug dump.
fn assert_no_panic(stderr: &str) {
    for sign in ["panicked", "RUST_BACKTRACE", "Error {", "Os {"] {
        assert!(!stderr.contains(sign), "stderr shows {sign:?}: {stderr}");
    }
}

/// Runs `command`, expects exit status 1 and one line `ipcmem: OBJECT: …` naming `why`.
fn failure(command: &mut assert_cmd::Command, object: &str, why: &str) {
    let output = command.output().expect("run ipcmem");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "expected a failure; stderr: {stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line on stderr: {stderr}");
    assert!(stderr.starts_with(&format!("ipcmem: {object}: ")), "stderr names no {object}: {stderr}");
    assert!(stderr.contains(why), "stderr lacks {why:?}: {stderr}");
    assert_no_panic(&stderr);
}

#[test]
fn create_posix_prints_the_name_and_is_exclusive_and_persistent() {
    let mut guard = Guard::new();
    let name = unique_name("create");
    let made = create(&mut guard, &[&name, "4KiB", "--mode", "0640"]);
    assert_eq!(made, name);
    let meta = std::fs::metadata(format!("/dev/shm{name}")).expect("the object exists after create exited");
    assert_eq!(meta.len(), 4096);
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o7777, 0o640);
    let info = json_of(&["info", &name, "--json"]);
    assert_eq!(info["volatile"], Value::Bool(false));
    failure(&mut ipcmem(["create", &name, "10"]), &name, "already exists");
}

#[test]
fn create_sysv_by_key_and_private_prints_the_id() {
    let mut guard = Guard::new();
    let key = unique_key();
    guard.track(key);
    let by_key = create(&mut guard, &[&key_arg(key), "1000", "--mode", "604"]);
    let id = segment_id(&by_key);
    let fields = proc_sysvipc(id).expect("the segment exists after create exited");
    assert_eq!(fields["size"], "1000");
    assert_eq!(fields["perms"], "604");
    assert_eq!(fields["key"], key.as_raw().to_string());
    failure(&mut ipcmem(["create", &key_arg(key), "10"]), &key_arg(key), "already exists");

    let private = create(&mut guard, &["private", "1MiB"]);
    let fields = proc_sysvipc(segment_id(&private)).expect("the private segment exists");
    assert_eq!((fields["key"].as_str(), fields["size"].as_str()), ("0", "1048576"));
}

#[test]
fn create_gives_exactly_the_mode_asked_even_without_owner_bits() {
    let mut guard = Guard::new();
    let name = unique_name("mode");
    create(&mut guard, &[&name, "100", "--mode", "0400"]);
    assert_eq!(json_of(&["info", &name, "--json"])["mode"], "0400");
    let segment = create(&mut guard, &["private", "100", "--mode", "0"]);
    assert_eq!(proc_sysvipc(segment_id(&segment)).expect("segment")["perms"], "0");
}

#[test]
fn list_shows_both_kinds_with_filters_and_json() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("list"), "4KiB"]);
    let segment = create(&mut guard, &["private", "1000"]);
    let id = segment_id(&segment);

    let table = stdout_of(&["list"]);
    let header = table.lines().next().expect("a header");
    let columns: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(columns, ["KIND", "OBJECT", "KEY", "SIZE", "MODE", "OWNER", "NATTCH", "CPID", "STATUS"]);
    let posix_row = table.lines().find(|line| line.contains(&name)).expect("the POSIX object is listed");
    let sysv_row = table.lines().find(|line| line.contains(&segment)).expect("the segment is listed");
    assert!(posix_row.starts_with("posix"), "{posix_row}");
    assert!(sysv_row.starts_with("sysv"), "{sysv_row}");
    assert!(!table.contains("/sem."), "named semaphores are not shared memory objects");

    let posix_only = stdout_of(&["list", "--posix"]);
    assert!(posix_only.contains(&name) && !posix_only.contains(&segment));
    let sysv_only = stdout_of(&["list", "--sysv"]);
    assert!(sysv_only.contains(&segment) && !sysv_only.contains(&name));

    let all = json_of(&["list", "--json"]);
    let array = all.as_array().expect("list --json prints an array");
    let posix = array.iter().find(|o| o["name"] == name.as_str()).expect("the POSIX object in JSON");
    let sysv = array.iter().find(|o| o["id"] == id).expect("the segment in JSON");
    assert_eq!((posix["kind"].as_str(), posix["size"].as_u64()), (Some("posix"), Some(4096)));
    assert_eq!((sysv["kind"].as_str(), sysv["size"].as_u64()), (Some("sysv"), Some(1000)));
    assert!(array.iter().all(|o| !o["name"].as_str().is_some_and(|n| n.starts_with("/sem."))));
    let posix_json = json_of(&["list", "--posix", "--json"]);
    assert!(posix_json.as_array().expect("array").iter().all(|o| o["kind"] == "posix"));
    let sysv_json = json_of(&["list", "--sysv", "--json"]);
    assert!(sysv_json.as_array().expect("array").iter().all(|o| o["kind"] == "sysv"));
}

#[test]
fn the_table_fits_100_columns() {
    let mut guard = Guard::new();
    let posix = create(&mut guard, &[&unique_name("wide-table-row"), "1023"]);
    let key = unique_key();
    guard.track(key);
    let segment = create(&mut guard, &[&key_arg(key), "123456789"]);
    let _holder = Holder::start(&["hold", &segment]);
    let table = stdout_of(&["list"]);
    for line in
        table.lines().filter(|line| line.starts_with("KIND") || line.contains(&posix) || line.contains(&segment))
    {
        assert!(line.chars().count() <= 100, "{} columns: {line}", line.chars().count());
    }
}

/// The fields that every JSON object has, with their types.
fn assert_schema(object: &Value) {
    let fields = object.as_object().expect("a JSON object");
    for (field, check) in [
        ("kind", Value::is_string as fn(&Value) -> bool),
        ("size", Value::is_u64),
        ("mode", Value::is_string),
        ("uid", Value::is_u64),
        ("gid", Value::is_u64),
        ("ctime", Value::is_i64),
        ("marked_for_removal", Value::is_boolean),
    ] {
        assert!(fields.get(field).is_some_and(check), "{field} in {object}");
    }
    for field in ["name", "id", "key", "user", "nattch", "cpid", "lpid", "atime", "dtime", "volatile", "in_use"] {
        assert!(fields.contains_key(field), "{field} missing in {object}");
    }
}

/// `date`'s rendering of a Unix time as ctime(3) does in UTC, which is how `ipcs` shows it.
fn ctime_utc(seconds: &Value) -> String {
    let Some(seconds) = seconds.as_i64() else { return "Not set".to_owned() };
    let output = Command::new("date")
        .args(["-u", "-d", &format!("@{seconds}"), "+%a %b %e %H:%M:%S %Y"])
        .env("LC_ALL", "C")
        .output()
        .expect("run date");
    String::from_utf8(output.stdout).expect("UTF-8").trim().to_owned()
}

/// The `name=value` fields of `ipcs -m -i ID`, in UTC.
fn ipcs_fields(id: i32) -> std::collections::HashMap<String, String> {
    let output = Command::new("ipcs")
        .args(["-m", "-i", &id.to_string()])
        .env("TZ", "UTC")
        .env("LC_ALL", "C")
        .output()
        .expect("run ipcs");
    assert!(output.status.success(), "ipcs -m -i {id}");
    let text = String::from_utf8(output.stdout).expect("UTF-8");
    let mut fields = std::collections::HashMap::new();
    for line in text.lines() {
        // Lines hold tab-separated `name=value` pairs; the times hold spaces.
        for pair in line.split('\t') {
            if let Some((name, value)) = pair.split_once('=') {
                fields.insert(name.trim().to_owned(), value.trim().to_owned());
            }
        }
    }
    fields
}

#[test]
fn info_of_a_segment_agrees_with_ipcs_and_proc() {
    let mut guard = Guard::new();
    let key = unique_key();
    guard.track(key);
    let segment = create(&mut guard, &[&key_arg(key), "5000", "--mode", "0640"]);
    let id = segment_id(&segment);
    // One attach and detach sets the times; a holder stays attached, so nattch is 1.
    ipcmem(["read", &segment, "--length", "1"]).assert().success();
    let holder = Holder::start(&["hold", &key_arg(key)]);

    for object in [segment.clone(), key_arg(key)] {
        // Read first: info attaches the segment to read an array header, which makes it the last
        // to attach and detach (lpid, atime, dtime); it reports the segment as it was before.
        let proc = proc_sysvipc(id).expect("the segment in /proc/sysvipc/shm");
        let ipcs = ipcs_fields(id);
        let info = json_of(&["info", &object, "--json"]);
        assert_schema(&info);
        let number = |field: &str| info[field].to_string();
        assert_eq!(info["kind"], "sysv");
        assert_eq!(info["name"], Value::Null);
        assert_eq!(info["id"], id);
        assert_eq!(number("key"), proc["key"]);
        assert_eq!(number("size"), proc["size"]);
        assert_eq!(number("size"), ipcs["bytes"]);
        assert_eq!(info["mode"], format!("{:0>4}", proc["perms"]));
        assert_eq!(info["mode"], ipcs["access_perms"]);
        for field in ["uid", "gid", "cpid", "lpid", "nattch"] {
            assert_eq!(number(field), proc[field], "{field}");
            assert_eq!(number(field), ipcs[field], "{field}");
        }
        for field in ["cuid", "cgid"] {
            assert_eq!(number(field), proc[field], "{field}");
            assert_eq!(number(field), ipcs[field], "{field}");
        }
        // The holder is the only attachment: info counts before it attaches.
        assert_eq!(info["nattch"], 1);
        assert_eq!(info["in_use"], true);
        assert_eq!(info["user"], "root");
        for (field, ipcs_field) in [("atime", "att_time"), ("dtime", "det_time"), ("ctime", "change_time")] {
            assert_eq!(number(field), proc[field], "{field}");
            assert_eq!(ctime_utc(&info[field]), ipcs[ipcs_field], "{field}");
        }
        assert_eq!((info["marked_for_removal"].as_bool(), info["volatile"].as_bool()), (Some(false), Some(false)));
    }
    drop(holder);

    let human = stdout_of(&["info", &segment]);
    assert!(human.lines().any(|line| line.split_whitespace().eq(["size", "5000", "(5000)"])), "{human}");
    assert!(human.lines().any(|line| line.split_whitespace().eq(["mode", "0640"])), "{human}");
}

#[test]
fn info_of_a_posix_object_agrees_with_stat() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("stat"), "4097", "--mode", "0604"]);
    let info = json_of(&["info", &name, "--json"]);
    assert_schema(&info);
    let output = Command::new("stat")
        .args(["-c", "%s %a %u %g %U %X %Y %Z", &format!("/dev/shm{name}")])
        .output()
        .expect("run stat");
    let stat = String::from_utf8(output.stdout).expect("UTF-8");
    let stat: Vec<&str> = stat.split_whitespace().collect();
    assert_eq!(info["kind"], "posix");
    assert_eq!(info["name"], name.as_str());
    assert_eq!(info["size"].to_string(), stat[0]);
    assert_eq!(info["mode"], format!("{:0>4}", stat[1]));
    assert_eq!(info["uid"].to_string(), stat[2]);
    assert_eq!(info["gid"].to_string(), stat[3]);
    assert_eq!(info["user"], stat[4]);
    assert_eq!(info["atime"].to_string(), stat[5]);
    assert_eq!(info["mtime"].to_string(), stat[6]);
    assert_eq!(info["ctime"].to_string(), stat[7]);
    for field in ["id", "key", "nattch", "cpid", "lpid", "dtime", "in_use"] {
        assert_eq!(info[field], Value::Null, "{field}");
    }
    assert_eq!((info["volatile"].as_bool(), info["marked_for_removal"].as_bool()), (Some(false), Some(false)));
}

#[test]
fn info_of_missing_objects_fails_with_a_hint() {
    let name = unique_name("missing");
    failure(&mut ipcmem(["info", &name]), &name, "`ipcmem list`");
    let key = key_arg(unique_key());
    failure(&mut ipcmem(["info", &key, "--json"]), &key, "reachable by id only");
    failure(&mut ipcmem(["info", "id:2147483647"]), "id:2147483647", "no such shared memory object");
}

#[test]
fn rm_removes_each_and_reports_missing_ones_unless_forced() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("rm"), "10"]);
    let key = unique_key();
    guard.track(key);
    let by_key = create(&mut guard, &[&key_arg(key), "10"]);
    let by_id = create(&mut guard, &["private", "10"]);
    ipcmem(["rm", &name, &key_arg(key), &by_id]).assert().success().stdout("");
    assert!(!posix_exists(&name));
    assert!(!segment_exists(segment_id(&by_key)));
    assert!(!segment_exists(segment_id(&by_id)));

    // A missing one is an error, but the others are still removed.
    let other = create(&mut guard, &[&unique_name("rm-other"), "10"]);
    failure(&mut ipcmem(["rm", &name, &other]), &name, "no such shared memory object");
    assert!(!posix_exists(&other));
    failure(&mut ipcmem(["rm", &by_id]), &by_id, "no such shared memory object");
    ipcmem(["rm", "--force", &name, &by_id, &key_arg(key)]).assert().success();
}

#[test]
fn rm_of_an_attached_segment_marks_it_for_removal() {
    let mut guard = Guard::new();
    let segment = create(&mut guard, &["private", "10"]);
    let holder = Holder::start(&["hold", &segment]);
    ipcmem(["rm", &segment]).assert().success();
    let info = json_of(&["info", &segment, "--json"]);
    assert_eq!((info["marked_for_removal"].as_bool(), info["nattch"].as_u64()), (Some(true), Some(1)));
    assert!(stdout_of(&["list", "--sysv"]).lines().any(|line| line.contains(&segment) && line.ends_with("dest")));
    drop(holder);
    assert!(common::wait_until(|| !segment_exists(segment_id(&segment))), "gone at its last detach");
}

#[test]
fn chmod_changes_the_mode_of_both_kinds() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("chmod"), "10"]);
    let segment = create(&mut guard, &["private", "10"]);
    let key = unique_key();
    guard.track(key);
    let by_key = create(&mut guard, &[&key_arg(key), "10"]);
    for (object, mode) in [(&name, "0644"), (&segment, "640"), (&key_arg(key), "0606")] {
        ipcmem(["chmod", object, mode]).assert().success().stdout("");
        assert_eq!(json_of(&["info", object, "--json"])["mode"], format!("{mode:0>4}"));
    }
    assert_eq!(proc_sysvipc(segment_id(&by_key)).expect("segment")["perms"], "606");
    let missing = unique_name("chmod-missing");
    failure(&mut ipcmem(["chmod", &missing, "0600"]), &missing, "no such shared memory object");
}

#[test]
fn chmod_does_not_follow_a_symbolic_link() {
    let name = unique_name("symlink");
    let target = std::env::temp_dir().join(format!("ipcmem-cli-target-{}", std::process::id()));
    std::fs::write(&target, b"x").expect("make the target");
    std::os::unix::fs::symlink(&target, format!("/dev/shm{name}")).expect("plant a link");
    let output = ipcmem(["chmod", &name, "0777"]).output().expect("run ipcmem");
    let _ = std::fs::remove_file(format!("/dev/shm{name}"));
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&target).expect("target").permissions());
    let _ = std::fs::remove_file(&target);
    assert_eq!(output.status.code(), Some(1));
    assert_ne!(mode & 0o777, 0o777, "chmod went through the link");
}

#[test]
fn key_prints_the_ftok_key() {
    let file = std::env::temp_dir();
    let printed = stdout_of(&["key", file.to_str().expect("UTF-8 path"), "42"]);
    let expected = ipcmem::Key::from_path(&file, 42).expect("ftok");
    assert_eq!(printed.trim(), key_arg(expected));
    assert_eq!(printed.trim().len(), "key:0x".len() + 8);
    assert_eq!(stdout_of(&["key", "/", "255"]).trim(), key_arg(ipcmem::Key::from_path("/", 255).expect("ftok")));
    let missing = format!("/nonexistent-{}", std::process::id());
    failure(&mut ipcmem(["key", &missing, "1"]), &missing, "no such file");
}

/// Key 0 is `IPC_PRIVATE`: the commands that take an existing object say so, not "`private`".
#[test]
fn key_zero_is_refused_as_ipc_private() {
    for command in ["read", "info", "rm", "hold"] {
        let output = ipcmem([command, "key:0"]).output().expect("run ipcmem");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "a usage error: {stderr}");
        assert!(stderr.contains("key 0 is IPC_PRIVATE"), "{command}: {stderr}");
        assert!(stderr.contains("id:N") && !stderr.contains("`private`"), "{command}: {stderr}");
        assert_no_panic(&stderr);
    }
}

/// 1 MiB in which every byte value occurs many times, in no simple order.
fn all_byte_values() -> Vec<u8> {
    let mut state: u32 = 0x1234_5678;
    let data: Vec<u8> = (0..1 << 20)
        .map(|i: u32| {
            state = state.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (state >> 24).to_le_bytes()[0] ^ i.to_le_bytes()[0]
        })
        .collect();
    let mut seen = [false; 256];
    for &byte in &data {
        seen[usize::from(byte)] = true;
    }
    assert!(seen.iter().all(|&s| s), "every byte value occurs");
    data
}

#[test]
fn write_then_read_round_trips_binary_data_in_both_kinds() {
    let mut guard = Guard::new();
    let data = all_byte_values();
    let name = create(&mut guard, &[&unique_name("roundtrip"), "1MiB"]);
    let key = unique_key();
    guard.track(key);
    create(&mut guard, &[&key_arg(key), "1MiB"]);
    for object in [name.as_str(), &key_arg(key)] {
        ipcmem(["write", object]).write_stdin(data.clone()).assert().success().stdout("");
        let read = ipcmem(["read", object]).output().expect("run ipcmem read");
        assert!(read.status.success());
        assert!(read.stdout == data, "{object}: the bytes read back differ");
        let part = ipcmem(["read", object, "--offset", "1000", "--length", "4KiB"]).output().expect("read");
        assert_eq!(part.stdout, data[1000..1000 + 4096]);
        let tail = ipcmem(["read", object, "--offset", "1048000"]).output().expect("read");
        assert_eq!(tail.stdout, data[1_048_000..]);
        ipcmem(["write", object, "--offset", "1MiB"]).write_stdin("").assert().success();
        ipcmem(["read", object, "--offset", "1MiB"]).assert().success().stdout("");
    }
}

#[test]
fn write_at_an_offset_changes_only_those_bytes() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("offset"), "16"]);
    ipcmem(["write", &name, "--offset", "4"]).write_stdin("abcd").assert().success();
    let mut expected = vec![0_u8; 16];
    expected[4..8].copy_from_slice(b"abcd");
    ipcmem(["read", &name]).assert().success().stdout(expected);
}

#[test]
fn writes_past_the_end_are_refused_before_a_byte_is_written() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("pastend"), "100"]);
    let segment = create(&mut guard, &["private", "100"]);
    for object in [name.as_str(), segment.as_str()] {
        let too_long = vec![0xff_u8; 101];
        failure(ipcmem(["write", object]).write_stdin(too_long), object, "nothing was written");
        failure(ipcmem(["write", object, "--offset", "90"]).write_stdin(vec![1_u8; 11]), object, "past the end");
        failure(ipcmem(["write", object, "--offset", "101"]).write_stdin(""), object, "past the end");
        ipcmem(["read", object]).assert().success().stdout(vec![0_u8; 100]);
        failure(&mut ipcmem(["read", object, "--offset", "101"]), object, "past the end");
        failure(&mut ipcmem(["read", object, "--offset", "50", "--length", "51"]), object, "past the end");
        ipcmem(["write", object, "--offset", "90"]).write_stdin(vec![7_u8; 10]).assert().success();
    }
}

#[test]
fn missing_objects_fail_for_every_command() {
    let name = unique_name("absent");
    let key = key_arg(unique_key());
    for object in [name.as_str(), key.as_str(), "id:2147483646"] {
        failure(&mut ipcmem(["info", object]), object, "no such shared memory object");
        failure(&mut ipcmem(["read", object]), object, "no such shared memory object");
        failure(ipcmem(["write", object]).write_stdin("x"), object, "no such shared memory object");
        failure(&mut ipcmem(["rm", object]), object, "no such shared memory object");
        failure(&mut ipcmem(["chmod", object, "0600"]), object, "no such shared memory object");
        failure(&mut ipcmem(["hold", object]), object, "no such shared memory object");
    }
}

#[test]
fn read_only_permission_as_another_user() {
    let mut guard = Guard::new();
    let name = create(&mut guard, &[&unique_name("readonly"), "64", "--mode", "0644"]);
    let segment = create(&mut guard, &["private", "64", "--mode", "0644"]);
    for object in [name.as_str(), segment.as_str()] {
        ipcmem(["write", object]).write_stdin("secret").assert().success();
        // Read permission is enough to read, and to hold.
        ipcmem_as_nobody(["read", object, "--length", "6"]).assert().success().stdout("secret");
        drop(Holder::start_as_nobody(&["hold", object]));
        // Writing, removing and changing the mode are refused, with a hint.
        let refused = |args: &[&str], stdin: &str| {
            let output = ipcmem_as_nobody(args).write_stdin(stdin).output().expect("run ipcmem as nobody");
            let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
            assert_eq!(output.status.code(), Some(1), "{args:?}: {stderr}");
            assert!(stderr.starts_with("ipcmem: ") && stderr.contains("permission denied"), "{stderr}");
            assert!(stderr.contains("hint:"), "{stderr}");
            assert_no_panic(&stderr);
        };
        refused(&["write", object], "x");
        refused(&["rm", object], "");
        refused(&["chmod", object, "0666"], "");
        ipcmem(["read", object, "--length", "6"]).assert().success().stdout("secret");
        assert_eq!(json_of(&["info", object, "--json"])["mode"], "0644");
    }
    // Mode 0600: not even readable.
    let private = create(&mut guard, &[&unique_name("private"), "64"]);
    failure(&mut ipcmem_as_nobody(["read", &private]), &private, "permission denied");
    // And nobody sees the objects it cannot open, as they are.
    let listed = ipcmem_as_nobody(["list", "--json"]).output().expect("list as nobody");
    let listed: Value = serde_json::from_slice(&listed.stdout).expect("JSON");
    let entry = listed.as_array().expect("array").iter().find(|o| o["name"] == private.as_str()).cloned();
    assert_eq!(entry.expect("listed")["mode"], "0600");
}

#[test]
fn an_owner_without_read_permission_can_still_chmod() {
    let mut guard = Guard::new();
    let name = common::create_as_nobody(&mut guard, &[&unique_name("chmod-owner"), "10", "--mode", "0"]);
    let segment = common::create_as_nobody(&mut guard, &["private", "10", "--mode", "0200"]);
    for object in [name.as_str(), segment.as_str()] {
        assert_eq!(json_of(&["info", object, "--json"])["uid"], common::NOBODY);
        ipcmem_as_nobody(["chmod", object, "0600"]).assert().success();
        assert_eq!(json_of(&["info", object, "--json"])["mode"], "0600");
        ipcmem_as_nobody(["write", object]).write_stdin("ok").assert().success();
    }
}

#[test]
fn a_size_past_the_free_space_of_dev_shm_is_refused_with_a_hint() {
    let name = unique_name("huge");
    failure(&mut ipcmem(["create", &name, "100000GiB"]), &name, "not enough free space in /dev/shm");
    let output = ipcmem(["create", &name, "100000GiB"]).output().expect("run ipcmem");
    assert!(String::from_utf8_lossy(&output.stderr).contains("hint: `df -h /dev/shm`"));
    assert!(!posix_exists(&name));
}
