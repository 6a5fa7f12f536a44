//! Names as they come: a file of /dev/shm may be named with newlines, terminal escapes or bytes
//! that are not UTF-8. Tables escape them, JSON keeps them exact, and gc collects them.
//!
//! The objects are made directly in /dev/shm with `std::fs`, as any program could.

mod common;

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use common::{ipcmem, json_of, stdout_of, unique_name};
use serde_json::Value;

/// Files of /dev/shm by exact bytes, removed when dropped, also when the test fails.
#[derive(Default)]
struct Files(Vec<PathBuf>);

impl Files {
    /// Makes `/dev/shm/NAME` (name given with its leading slash), 64 zero bytes, mode 0600;
    /// volatile (with ipcmem's mark) if asked.
    fn make(&mut self, name: &[u8], volatile: bool) {
        let path = PathBuf::from(OsStr::from_bytes(&[b"/dev/shm", name].concat()));
        self.0.push(path.clone());
        std::fs::write(&path, [0_u8; 64]).expect("make a file in /dev/shm");
        if volatile {
            // ipcmem's volatile mark: the sticky bit, which only the owner can set.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o1600)).expect("chmod 1600");
        }
    }

    fn exists(name: &[u8]) -> bool {
        PathBuf::from(OsStr::from_bytes(&[b"/dev/shm", name].concat())).exists()
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        for path in &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The entry of a JSON array whose `field` is `value`.
fn entry<'a>(json: &'a Value, field: &str, value: &Value) -> Option<&'a Value> {
    json.as_array().expect("a JSON array").iter().find(|entry| &entry[field] == value)
}

/// The exact bytes as JSON shows them: an array of numbers.
fn bytes_json(bytes: &[u8]) -> Value {
    Value::Array(bytes.iter().map(|&byte| Value::from(byte)).collect())
}

#[test]
fn tables_escape_control_characters_and_json_keeps_names_exact() {
    let mut files = Files::default();
    let newline = format!("{}-nl\nposix  fake-row", unique_name("esc"));
    let ansi = format!("{}-\x1b[31mred\x1b[0m", unique_name("esc"));
    let bidi = format!("{}-\u{202e}txt.exe", unique_name("esc"));
    for name in [&newline, &ansi, &bidi] {
        files.make(name.as_bytes(), false);
    }

    let table = stdout_of(&["list", "--posix"]);
    assert!(!table.contains('\x1b'), "no raw escape reaches the terminal:\n{table}");
    assert!(!table.contains('\u{202e}'), "no raw bidi override:\n{table}");
    assert!(!table.lines().any(|line| line.starts_with("posix  fake-row")), "no faked row:\n{table}");
    for shown in [newline.replace('\n', "\\n"), ansi.replace('\x1b', "\\x1b"), bidi.replace('\u{202e}', "\\u{202e}")] {
        let rows: Vec<&str> = table.lines().filter(|line| line.contains(&shown)).collect();
        assert_eq!(rows.len(), 1, "{shown} is one row:\n{table}");
        assert!(rows[0].starts_with("posix"), "{}", rows[0]);
    }

    let json = json_of(&["list", "--posix", "--json"]);
    for name in [&newline, &ansi, &bidi] {
        let found = entry(&json, "name", &Value::from(name.as_str())).unwrap_or_else(|| panic!("{name:?} in JSON"));
        assert_eq!(found["name_bytes"], Value::Null, "a UTF-8 name is exact in `name`");
    }

    let info = stdout_of(&["info", &ansi]);
    assert!(!info.contains('\x1b'), "{info}");
    assert!(info.contains(&ansi.replace('\x1b', "\\x1b")), "{info}");

    // Errors are one line, whatever the name.
    let missing = format!("{}-gone\nipcmem: fake error\x1b[2J", unique_name("esc"));
    let output = ipcmem(["info", &missing]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert!(!stderr.contains('\x1b') && stderr.contains("-gone\\nipcmem: fake error\\x1b[2J"), "{stderr}");
}

#[test]
fn names_that_are_not_utf8_are_listed_escaped_and_collected() {
    let mut files = Files::default();
    let prefix = unique_name("bad-utf8");
    let volatile = [prefix.as_bytes(), b"-vol\xff\xfe"].concat();
    let persistent = [prefix.as_bytes(), b"-keep\xc3"].concat();
    let semaphore = [b"/sem.", &prefix.as_bytes()[1..], b"-sem\x80"].concat();
    files.make(&volatile, true);
    files.make(&persistent, false);
    files.make(&semaphore, false);

    let table = stdout_of(&["list"]);
    assert!(table.contains(&format!("{prefix}-vol\\xff\\xfe")), "{table}");
    assert!(table.contains(&format!("{prefix}-keep\\xc3")), "{table}");
    assert!(table.contains(&format!("sem:/{}-sem\\x80", &prefix[1..])), "{table}");

    let json = json_of(&["list", "--json"]);
    for (bytes, kind) in [(&volatile, "posix"), (&persistent, "posix")] {
        let found = entry(&json, "name_bytes", &bytes_json(bytes)).unwrap_or_else(|| panic!("{bytes:?} in JSON"));
        assert_eq!(found["kind"], kind);
        assert_eq!(found["name"], String::from_utf8_lossy(bytes).as_ref());
    }
    let sem_name = [b"/", &semaphore[5..]].concat();
    let found = entry(&json, "name_bytes", &bytes_json(&sem_name)).expect("the semaphore in JSON");
    assert_eq!(found["kind"], "semaphore");
    let abandoned = entry(&json, "name_bytes", &bytes_json(&volatile)).unwrap();
    assert_eq!((abandoned["volatile"].as_bool(), abandoned["in_use"].as_bool()), (Some(true), Some(false)));

    let dry = json_of(&["gc", "--dry-run", "--json"]);
    let would = entry(&dry, "name_bytes", &bytes_json(&volatile)).expect("gc --dry-run finds it");
    assert_eq!(would["removed"], false);
    assert!(entry(&dry, "name_bytes", &bytes_json(&persistent)).is_none(), "persistent: not garbage");
    let text = stdout_of(&["gc", "--dry-run"]);
    assert!(text.contains(&format!("would remove {prefix}-vol\\xff\\xfe: ")), "{text}");

    let output = ipcmem(["gc", "--json"]).output().unwrap();
    assert!(output.status.success());
    let done: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(entry(&done, "name_bytes", &bytes_json(&volatile)).expect("gc collects it")["removed"], true);
    assert!(!Files::exists(&volatile), "gc removed the object whose name is not UTF-8");
    assert!(Files::exists(&persistent) && Files::exists(&semaphore), "gc leaves persistent objects and semaphores");

    // The cleanup of last resort by prefix removes them too.
    ipcmem::gc::sweep(&prefix);
    assert!(!Files::exists(&persistent), "sweep removed the object whose name is not UTF-8");
}
