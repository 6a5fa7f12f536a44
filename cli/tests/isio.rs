//! ImageStreamIO streams in `list`, `info`, `rm` and `chmod` (`isio:NAME`), in a directory of
//! the test's own given by `$MILK_SHM_DIR` (never `/milk/shm`).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::ipcmem;
use ipcmem::isio::{DataType, Dir, KeywordValue, StreamSpec};
use serde_json::Value;

/// A stream directory on a tmpfs, removed with its content on drop.
struct TestDir(PathBuf);

impl TestDir {
    fn new(tag: &str) -> TestDir {
        let path = PathBuf::from(format!("/dev/shm/ipcmem-test-isio-cli-{}-{tag}", std::process::id()));
        std::fs::create_dir_all(&path).expect("make the test directory");
        TestDir(path)
    }

    fn dir(&self) -> Dir {
        Dir::new(&self.0)
    }

    /// `ipcmem ARGS…` with `$MILK_SHM_DIR` set to this directory.
    fn run(&self, args: &[&str]) -> (bool, String, String) {
        let output = ipcmem(args).env("MILK_SHM_DIR", &self.0).output().expect("run ipcmem");
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        (output.status.success(), text(&output.stdout), text(&output.stderr))
    }

    fn stdout(&self, args: &[&str]) -> String {
        let (ok, out, err) = self.run(args);
        assert!(ok, "ipcmem {args:?}: {err}");
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.stdout(args)).expect("valid JSON")
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn list_shows_streams_with_type_dims_and_cnt0() {
    let dir = TestDir::new("list");
    let stream = dir.dir().create(&StreamSpec::new("wfs", DataType::F32, &[120, 120])).unwrap();
    for _ in 0..3 {
        stream.write_frame(&vec![0; stream.frame_len()]).unwrap();
    }
    dir.dir().create(&StreamSpec::new("tel", DataType::U16, &[8, 8, 4]).circular(true)).unwrap();
    std::fs::write(dir.path().join("junk.im.shm"), b"not a stream").unwrap();

    let table = dir.stdout(&["list", "--isio"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("KIND"), "{table}");
    assert_eq!(lines.len(), 4, "{table}");
    let row = |object: &str| lines.iter().find(|l| l.contains(object)).unwrap_or_else(|| panic!("{object} in {table}"));
    assert!(row("isio:wfs").starts_with("isio"));
    assert!(row("isio:wfs").ends_with("f32 120x120 cnt0=3"), "{table}");
    assert!(row("isio:tel").ends_with("u16 8x8x4 cnt0=0 circular"), "{table}");
    assert!(row("isio:junk").ends_with("invalid"), "{table}");
    assert!(row("isio:wfs").contains(&std::process::id().to_string()), "CPID: {table}");

    // Without a filter, streams come after the other objects; --posix leaves them out.
    assert!(dir.stdout(&["list"]).contains("isio:wfs"));
    assert!(!dir.stdout(&["list", "--posix"]).contains("isio:"));

    let json = dir.json(&["list", "--isio", "--json"]);
    let entries = json.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    let wfs = entries.iter().find(|e| e["object"] == "isio:wfs").unwrap();
    assert_eq!(wfs["kind"], "isio");
    assert_eq!(wfs["name"], "wfs");
    assert_eq!(wfs["array"]["type"], "f32");
    assert_eq!(wfs["array"]["dims"], serde_json::json!([120, 120]));
    assert_eq!(wfs["isio"]["cnt0"], 3);
    assert_eq!(wfs["size"], stream.layout().total);
    let junk = entries.iter().find(|e| e["object"] == "isio:junk").unwrap();
    assert!(junk["isio"]["error"].as_str().unwrap().contains("not a valid ImageStreamIO stream"));

    // A stream this user may not read: listed as unreadable, not invalid.
    std::fs::set_permissions(stream.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let output = common::ipcmem_as_nobody(["list", "--isio"]).env("MILK_SHM_DIR", dir.path()).output().unwrap();
    let table = String::from_utf8_lossy(&output.stdout);
    let wfs = table.lines().find(|l| l.contains("isio:wfs")).unwrap_or_else(|| panic!("{table}"));
    assert!(wfs.ends_with("unreadable"), "{table}");
}

#[test]
fn list_without_the_directory_shows_no_streams() {
    let output =
        ipcmem(["list", "--isio"]).env("MILK_SHM_DIR", "/dev/shm/ipcmem-test-isio-cli-missing").output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).lines().count(), 1, "the header only");
}

#[test]
fn info_gives_metadata_keywords_and_semaphores() {
    let dir = TestDir::new("info");
    let stream = dir.dir().create(&StreamSpec::new("dm", DataType::F64, &[12, 12]).semaphores(4).keywords(2)).unwrap();
    stream.set_keyword("GAIN", &KeywordValue::Double(0.5), "loop gain").unwrap();
    stream.write_frame(&vec![0; stream.frame_len()]).unwrap();
    let reader = stream.reader().unwrap();

    let json = dir.json(&["info", "isio:dm", "--json"]);
    assert_eq!(json["object"], "isio:dm");
    assert_eq!(json["kind"], "isio");
    let md = &json["metadata"];
    assert_eq!(md["version"], "2.00");
    assert_eq!(md["datatype"], "f64");
    assert_eq!(md["datatype_code"], 10);
    assert_eq!(md["size"], serde_json::json!([12, 12, 0]));
    assert_eq!(md["cnt0"], 1);
    assert_eq!(md["nbsem"], 4);
    assert_eq!(md["creator_pid"], std::process::id());
    assert_eq!(json["keywords"][0]["name"], "GAIN");
    assert_eq!(json["keywords"][0]["type"], "D");
    assert_eq!(json["keywords"][0]["value"], 0.5);
    let sems = json["semaphores"].as_array().unwrap();
    assert_eq!(sems.len(), 4);
    let claimed = &sems[reader.index()];
    assert_eq!(claimed["reader_pid"], std::process::id());
    assert_eq!(claimed["value"], 0, "flushed when claimed");
    assert!(sems.iter().filter(|s| s["index"] != reader.index()).all(|s| s["value"] == 1 && s["reader_pid"] == -1));

    let text = dir.stdout(&["info", "isio:dm"]);
    assert!(text.contains("datatype          f64 (code 10)"), "{text}");
    assert!(text.contains("[0] D GAIN = 0.5  // loop gain (cnt 1)"), "{text}");
    assert!(text.contains(&format!("value=0 reader_pid={}", std::process::id())), "{text}");
    // A look writes nothing: the claim stays ours and cnt0 as it was.
    assert_eq!(stream.semaphores().unwrap()[reader.index()].reader_pid, std::process::id().cast_signed());

    let (ok, _, err) = dir.run(&["info", "isio:nothing"]);
    assert!(!ok);
    assert!(err.starts_with("ipcmem: isio:nothing: no such shared memory object"), "{err}");
    std::fs::write(dir.path().join("bad.im.shm"), vec![0; 1000]).unwrap();
    let (ok, _, err) = dir.run(&["info", "isio:bad"]);
    assert!(!ok);
    assert!(err.contains("isio:bad: not a valid ImageStreamIO stream: version \"\" is not \"2.00\""), "{err}");
}

#[test]
fn rm_and_chmod_take_streams() {
    let dir = TestDir::new("rm");
    let stream = dir.dir().create(&StreamSpec::new("gone", DataType::U8, &[4])).unwrap();
    dir.stdout(&["chmod", "isio:gone", "0640"]);
    assert_eq!(std::fs::metadata(stream.path()).unwrap().permissions().mode() & 0o777, 0o640);
    dir.stdout(&["rm", "isio:gone"]);
    assert!(!stream.path().exists());
    let (ok, _, err) = dir.run(&["rm", "isio:gone"]);
    assert!(!ok && err.contains("isio:gone"), "{err}");
    dir.stdout(&["rm", "--force", "isio:gone"]);
    for bad in ["isio:", "isio:a/b", "isio:.."] {
        let (ok, _, err) = dir.run(&["rm", bad]);
        assert!(!ok && err.contains("isio:NAME"), "{bad}: {err}");
    }
    let (ok, _, err) = dir.run(&["read", "isio:x"]);
    assert!(!ok && err.contains("only list, info, rm and chmod"), "{err}");
}

#[test]
fn stream_publish_and_watch_take_isio_streams() {
    let dir = TestDir::new("stream");
    for (name, slots) in [("plain", "1"), ("ring", "4")] {
        let object = format!("isio:{name}");
        let mut publisher = std::process::Command::new(common::bin())
            .args(["stream", "publish", &object, "--create", "i16", "32x8", "--slots", slots, "--rate", "400"])
            .args(["--count", "2000", "--mode", "0644"])
            .env("MILK_SHM_DIR", dir.path())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let (ok, out, err) = dir.run(&["stream", "watch", &object, "--count", "20", "--check", "--json"]);
        let _ = publisher.kill();
        let _ = publisher.wait();
        assert!(ok, "watch {object}: {err}");
        let lines: Vec<Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 21, "{out}");
        assert_eq!(lines[20]["frames"], 20);
        let serials: Vec<u64> = lines[..20].iter().map(|l| l["serial"].as_u64().unwrap()).collect();
        assert!(serials.windows(2).all(|w| w[1] > w[0]), "{serials:?}");
        let stream = dir.dir().open_readonly(name).unwrap();
        assert_eq!(stream.is_circular(), slots != "1");
        assert_eq!(stream.frame_len(), 32 * 8 * 2);
        assert_eq!(std::fs::metadata(stream.path()).unwrap().permissions().mode() & 0o777, 0o644);
    }
    // A frame that is not the pattern fails --check.
    let stream = dir.dir().open("plain").unwrap();
    let mut watcher = std::process::Command::new(common::bin())
        .args(["stream", "watch", "isio:plain", "--count", "1", "--check", "--timeout", "10"])
        .env("MILK_SHM_DIR", dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the watcher has claimed its semaphore, a write would not wake it: write until it ends.
    let started = std::time::Instant::now();
    while watcher.try_wait().unwrap().is_none() && started.elapsed() < std::time::Duration::from_secs(10) {
        stream.write_frame(&vec![0xff; stream.frame_len()]).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = watcher.wait_with_output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not the test pattern"));
    // No stream appears: watch times out.
    let (ok, _, err) = dir.run(&["stream", "watch", "isio:none", "--timeout", "0.2"]);
    assert!(!ok && err.contains("isio:none: timed out"), "{err}");
    let info = dir.json(&["stream", "info", "isio:ring", "--json"]);
    assert_eq!(info["metadata"]["circular"], true);
}
