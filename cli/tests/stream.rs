//! `ipcmem stream create / publish / watch / info`, and streams in `list` and `info`: output,
//! JSON fields and exit statuses, with real writer and reader processes.

mod common;

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{bin, ipcmem, json_of, stdout_of, unique_name, Guard};
use ipcmem::array::ElementType;
use ipcmem::stream::RawWriter;

/// Starts `ipcmem ARGS…` in the background, its output piped.
fn spawn(args: &[&str]) -> Child {
    Command::new(bin()).args(args).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap()
}

/// Waits for `child` at most 30 s (then kills it) and gives its output.
fn finish(mut child: Child) -> Output {
    let deadline = Instant::now() + common::TIMEOUT;
    while child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let _ = child.kill();
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn create_then_info_and_list_show_the_stream() {
    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-create").as_str());
    assert_eq!(
        stdout_of(&["stream", "create", &name, "f32", "512x512", "--slots", "4", "--mode", "0644"]).trim(),
        name
    );
    let info = json_of(&["stream", "info", &name, "--json"]);
    assert_eq!(info["type"], "f32");
    assert_eq!(info["frame_dims"], serde_json::json!([512, 512]));
    assert_eq!((info["slots"].as_u64(), info["serial"].as_u64()), (Some(4), Some(0)));
    assert_eq!((info["writer"].as_str(), info["writer_alive"].as_bool()), (Some("none"), Some(false)));
    assert!(info["writer_pid"].is_null() && info["last_published_ns"].is_null());
    let list = stdout_of(&["list", "--posix"]);
    let line = list.lines().find(|line| line.contains(&name)).expect("the stream is listed");
    assert!(line.ends_with("stream f32 512x512 x4"), "{line}");
    let object = json_of(&["info", &name, "--json"]);
    assert_eq!(object["stream"]["slots"].as_u64(), Some(4));
    assert_eq!(object["array"]["dims"], serde_json::json!([512, 512, 4]), "still a WA-1 array");
    // Not a stream: null.
    let plain = guard.track(unique_name("stream-plain").as_str());
    stdout_of(&["create", &plain, "4096"]);
    assert!(json_of(&["info", &plain, "--json"])["stream"].is_null());
    let again = ipcmem(["stream", "create", &name, "f32", "4", "--slots", "1"]).output().unwrap();
    assert_eq!(again.status.code(), Some(1), "exclusive");
    let not_a_stream = ipcmem(["stream", "info", &plain]).output().unwrap();
    assert_eq!(not_a_stream.status.code(), Some(1));
    assert!(text(&not_a_stream.stderr).contains(&plain));
}

#[test]
fn publish_and_watch_with_check_and_json() {
    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-pubwatch").as_str());
    // The watcher starts first: it waits for the stream to appear.
    let watch = spawn(&["stream", "watch", &name, "--count", "50", "--check", "--json", "--timeout", "20"]);
    std::thread::sleep(Duration::from_millis(100));
    let publish = stdout_of(&[
        "stream", "publish", &name, "--create", "u8", "16x8", "--slots", "4", "--count", "300", "--rate", "500",
    ]);
    assert_eq!(publish.trim(), format!("published 300 frames to {name}, serials 1 to 300"));
    let output = finish(watch);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let lines: Vec<serde_json::Value> =
        text(&output.stdout).lines().map(|line| serde_json::from_str(line).expect("a JSON line")).collect();
    assert_eq!(lines.len(), 51);
    for (i, frame) in lines[..50].iter().enumerate() {
        assert!(frame["latency_ns"].is_u64() && frame["lost"].is_u64(), "{frame}");
        assert_eq!(
            frame["serial"].as_u64(),
            Some(i as u64 + 1 + lines[..=i].iter().map(|f| f["lost"].as_u64().unwrap()).sum::<u64>())
        );
    }
    let summary = &lines[50];
    assert_eq!(summary["frames"].as_u64(), Some(50));
    for field in ["lost", "p50_ns", "p99_ns"] {
        assert!(summary[field].is_u64(), "{field}: {summary}");
    }
    assert!(summary["rate_hz"].as_f64().is_some_and(|rate| rate > 0.0), "{summary}");
}

#[test]
fn watch_times_out_and_says_so() {
    let mut guard = Guard::new();
    let missing = unique_name("stream-missing");
    let output = ipcmem(["stream", "watch", &missing, "--timeout", "0.2"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("timed out"), "{}", text(&output.stderr));
    // A stream without a writer: no frame comes.
    let name = guard.track(unique_name("stream-idle").as_str());
    stdout_of(&["stream", "create", &name, "i16", "3", "--slots", "2"]);
    let started = Instant::now();
    let output = ipcmem(["stream", "watch", &name, "--timeout", "0.3"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("timed out: no frame came in 0.3 s"), "{}", text(&output.stderr));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(text(&output.stdout).contains("frames 0"), "the summary is printed");
}

#[test]
fn watch_ends_at_once_when_the_writer_is_killed() {
    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-kill").as_str());
    let mut publisher =
        spawn(&["stream", "publish", &name, "--create", "f64", "32x32", "--slots", "8", "--rate", "200"]);
    let watch = spawn(&["stream", "watch", &name, "--timeout", "20"]);
    std::thread::sleep(Duration::from_millis(500));
    let killed = Instant::now();
    publisher.kill().unwrap();
    let output = finish(watch);
    let delay = killed.elapsed();
    let _ = publisher.wait();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    assert!(stderr.contains("the writer is gone") && stderr.contains("its process died"), "{stderr}");
    assert!(delay < Duration::from_secs(2), "watch took {delay:?} to end");
    assert!(text(&output.stdout).contains("serial "), "frames came before");
}

#[test]
fn check_stops_at_a_wrong_frame() {
    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-wrong").as_str());
    stdout_of(&["stream", "create", &name, "u16", "4x4", "--slots", "2"]);
    let watch = spawn(&["stream", "watch", &name, "--check", "--count", "5", "--timeout", "10"]);
    std::thread::sleep(Duration::from_millis(100));
    let mut writer = RawWriter::attach(name.as_str()).unwrap();
    assert_eq!(writer.geometry().element(), ElementType::U16);
    let mut frame = vec![0; 32];
    frame[0] = 1; // frame 1 should be all ones (as u16): element 1 is 0
    writer.publish(&frame).unwrap();
    let output = finish(watch);
    assert_eq!(output.status.code(), Some(1));
    assert!(text(&output.stderr).contains("frame 1 is not the test pattern: element 1"), "{}", text(&output.stderr));
}

#[test]
fn publish_runs_until_sigterm() {
    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-term").as_str());
    stdout_of(&["stream", "create", &name, "c64", "2x2", "--slots", "3"]);
    let publisher = spawn(&["stream", "publish", &name]);
    assert!(common::wait_until(|| json_of(&["stream", "info", &name, "--json"])["serial"].as_u64() > Some(10)));
    let info = json_of(&["stream", "info", &name, "--json"]);
    assert_eq!((info["writer"].as_str(), info["writer_alive"].as_bool()), (Some("alive"), Some(true)));
    // SAFETY: a signal to our own child, not yet waited for.
    assert_eq!(unsafe { libc::kill(i32::try_from(publisher.id()).unwrap(), libc::SIGTERM) }, 0);
    let output = finish(publisher);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with("published "), "{}", text(&output.stdout));
    let info = json_of(&["stream", "info", &name, "--json"]);
    assert_eq!(info["writer"].as_str(), Some("closed"));
    let text_info = stdout_of(&["stream", "info", &name]);
    assert!(text_info.contains("type            c64") && text_info.contains("frame dims      2x2"), "{text_info}");
}

#[test]
fn bad_stream_arguments_are_usage_errors() {
    for args in [
        &["stream", "create", "/x", "f32", "4x4"][..],
        &["stream", "create", "/x", "f32", "4x4", "--slots", "0"],
        &["stream", "create", "/x", "f16", "4x4", "--slots", "2"],
        &["stream", "publish", "/x", "--create", "f32"],
        &["stream", "publish", "/x", "--create", "f32", "4x4"],
        &["stream", "publish", "/x", "--rate", "0"],
        &["stream", "watch", "/x", "--timeout", "-1"],
        &["stream", "watch", "isio:a/b"],
    ] {
        let output = ipcmem(args).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output.stderr));
        assert!(!text(&output.stderr).contains("panicked"));
    }
}

/// `watch` writes each frame's line out while it waits for the next one, not when the next
/// one comes: a pipe reader (here, this test) gets the lines of a stream that went quiet.
#[test]
fn watch_lines_go_out_while_the_stream_is_quiet() {
    use std::io::{BufRead, BufReader};
    use std::sync::mpsc;

    let mut guard = Guard::new();
    let name = guard.track(unique_name("stream-quiet").as_str());
    let mut writer = RawWriter::create(name.as_str(), ElementType::U8, &[64], 4).unwrap();
    let mut watch = spawn(&["stream", "watch", &name, "--json", "--count", "10", "--timeout", "20"]);
    let stdout = watch.stdout.take().unwrap();
    let (lines, received) = mpsc::channel();
    let reading = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = lines.send(line.unwrap());
        }
    });
    std::thread::sleep(Duration::from_millis(300)); // `watch` is waiting for frames now
    for _ in 0..3 {
        writer.publish(&[7; 64]).unwrap();
    }
    // Three lines, long before `watch` ends (at its count or its timeout): it is still waiting.
    for serial in 1..=3 {
        let line = received.recv_timeout(Duration::from_secs(5)).expect("a line while the stream is quiet");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&line).unwrap()["serial"].as_u64(), Some(serial));
    }
    assert!(watch.try_wait().unwrap().is_none(), "watch is still waiting for its 10 frames");
    drop(writer); // the writer closes: watch ends (the writer is gone)
    let _ = finish(watch);
    reading.join().unwrap();
}
