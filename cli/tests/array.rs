//! `array create`, `array show`, and the array that `info` and `list` show: on real objects of
//! both kinds, with arrays made by the command, by the library, and headers laid by hand
//! (valid, hostile, half-written) with `ipcmem write`.

mod common;

use common::{
    create, ipcmem, ipcmem_as_nobody, json_of, posix_exists, segment_id, stdout_of, unique_name, Guard, Holder,
};
use ipcmem::array::{Complex32, Complex64, ElementType, MAGIC};
use ipcmem::SharedArray;
use serde_json::{json, Value};

/// Runs `ipcmem array create ARGS…`, expects success, and tracks what it made.
fn array_create(guard: &mut Guard, args: &[&str]) -> String {
    let output = ipcmem(["array", "create"].iter().chain(args)).output().expect("run ipcmem array create");
    assert!(output.status.success(), "array create {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    guard.track_printed(&String::from_utf8_lossy(&output.stdout))
}

/// `ipcmem write OBJ --offset OFFSET` with `bytes` on stdin.
fn write(object: &str, offset: usize, bytes: &[u8]) {
    ipcmem(["write", object, "--offset", &offset.to_string()]).write_stdin(bytes.to_vec()).assert().success();
}

/// The bytes of values in native order.
fn bytes_of<const N: usize, T>(values: &[T], to_bytes: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(to_bytes).collect()
}

/// A header laid by hand from the layout table: magic, type code, N, data offset, dims.
fn header(magic: u32, code: u16, ndims: u16, offset: i64, dims: &[i64]) -> Vec<u8> {
    let mut bytes = Vec::new();
    bytes.extend(magic.to_ne_bytes());
    bytes.extend(code.to_ne_bytes());
    bytes.extend(ndims.to_ne_bytes());
    bytes.extend(offset.to_ne_bytes());
    for dim in dims {
        bytes.extend(dim.to_ne_bytes());
    }
    bytes
}

/// The stdout and stderr of a successful `ipcmem array show ARGS…`.
fn show(args: &[&str]) -> (String, String) {
    let output = ipcmem(["array", "show"].iter().chain(args)).output().expect("run ipcmem array show");
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert!(output.status.success(), "array show {args:?}: {stderr}");
    (String::from_utf8(output.stdout).expect("UTF-8"), stderr)
}

/// The `array` field of `info --json` and of the object's entry in `list --json`, which must
/// agree.
fn array_field(object: &str) -> Value {
    let info = json_of(&["info", object, "--json"]);
    let list = json_of(&["list", "--json"]);
    let entry = list.as_array().expect("an array").iter().find(|entry| entry["object"] == object).cloned();
    let entry = entry.unwrap_or_else(|| panic!("{object} not listed"));
    assert!(entry.as_object().expect("an object").contains_key("array"), "list --json lacks array: {entry}");
    if object.starts_with('/') {
        assert_eq!(info["array"], entry["array"], "info and list disagree on {object}");
    }
    info["array"].clone()
}

/// The line of `object` in the `list` table.
fn table_line(object: &str) -> String {
    let table = stdout_of(&["list"]);
    let line = table.lines().find(|line| line.split_whitespace().nth(1) == Some(object));
    line.unwrap_or_else(|| panic!("{object} not in the table:\n{table}")).to_owned()
}

#[test]
fn create_then_show_integers_floats_and_complex_numbers() {
    let mut guard = Guard::new();
    // i16 2x3: one line per column, column-major.
    let matrix = array_create(&mut guard, &[&unique_name("i16"), "i16", "2x3"]);
    write(&matrix, 64, &bytes_of(&[1_i16, -2, 3, -4, 5, i16::MIN], |v| v.to_ne_bytes()));
    assert_eq!(show(&[&matrix]), ("1 -2\n3 -4\n5 -32768\n".to_owned(), String::new()));

    // f64 4, exact: shortest decimals, exponents for the very large and small.
    let vector = array_create(&mut guard, &[&unique_name("f64"), "f64", "4"]);
    write(&vector, 64, &bytes_of(&[1.5_f64, -0.25, 1e30, 0.1], |v| v.to_ne_bytes()));
    assert_eq!(show(&[&vector]).0, "1.5 -0.25 1e30 0.1\n");

    // c32 2x2, complex as re+imi.
    let complex = array_create(&mut guard, &[&unique_name("c32"), "c32", "2x2"]);
    write(&complex, 64, &bytes_of(&[1.0_f32, 2.0, 1.5, -0.5, 0.0, 0.0, -3.0, 0.25], |v| v.to_ne_bytes()));
    assert_eq!(show(&[&complex]).0, "1+2i 1.5-0.5i\n0+0i -3+0.25i\n");

    // A 3-D array in a System V segment, of complex f64.
    let cube = array_create(&mut guard, &["private", "c64", "2x3x2"]);
    let parts: Vec<f64> = (1..=12).flat_map(|n| [f64::from(n), -f64::from(n) / 2.0]).collect();
    write(&cube, 64, &bytes_of(&parts, |v| v.to_ne_bytes()));
    let lines = ["1-0.5i 2-1i", "3-1.5i 4-2i", "5-2.5i 6-3i", "7-3.5i 8-4i", "9-4.5i 10-5i", "11-5.5i 12-6i"];
    assert_eq!(show(&[&cube]).0, lines.map(|line| format!("{line}\n")).concat());

    for (object, element, dims, size) in [
        (&matrix, "i16", json!([2, 3]), 64 + 12),
        (&vector, "f64", json!([4]), 64 + 32),
        (&complex, "c32", json!([2, 2]), 64 + 32),
        (&cube, "c64", json!([2, 3, 2]), 64 + 12 * 16),
    ] {
        let info = json_of(&["info", object, "--json"]);
        assert_eq!(info["array"], json!({"type": element, "dims": dims}), "{object}");
        assert_eq!(info["size"], size, "{object}: header and elements, exactly");
        assert_eq!(info["mode"], "0600");
        assert_eq!(info["volatile"], false, "persistent, as create");
    }
}

#[test]
fn every_element_type_and_the_mode_and_exclusivity_of_create() {
    let mut guard = Guard::new();
    for element in ElementType::ALL {
        let name = array_create(&mut guard, &[&unique_name(element.name()), element.name(), "3", "--mode", "0640"]);
        let zero = if element.name().starts_with('c') { "0+0i" } else { "0" };
        assert_eq!(show(&[&name]).0, format!("{zero} {zero} {zero}\n"), "{element}");
        let info = json_of(&["info", &name, "--json"]);
        assert_eq!(info["array"], json!({"type": element.name(), "dims": [3]}));
        assert_eq!(info["mode"], "0640");
    }
    // Exactly the mode asked, even without the owner's bits; exclusive.
    let name = array_create(&mut guard, &[&unique_name("mode"), "u8", "10", "--mode", "0400"]);
    assert_eq!(json_of(&["info", &name, "--json"])["mode"], "0400");
    let again = ipcmem(["array", "create", &name, "u8", "10"]).output().expect("run ipcmem");
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).starts_with(&format!("ipcmem: {name}: ")));
}

#[test]
fn limit_shows_the_first_values_and_says_so_on_stderr() {
    let mut guard = Guard::new();
    let name = array_create(&mut guard, &[&unique_name("limit"), "u32", "150"]);
    write(&name, 64, &bytes_of(&(0..150_u32).collect::<Vec<_>>(), |v| v.to_ne_bytes()));
    let all: Vec<String> = (0..150).map(|n: u32| n.to_string()).collect();

    let (out, err) = show(&[&name, "--limit", "3"]);
    assert_eq!(out, "0 1 2\n");
    assert_eq!(err, format!("ipcmem: {name}: showing the first 3 of 150 values (--limit all shows every one)\n"));
    let (out, err) = show(&[&name]);
    assert_eq!(out, format!("{}\n", all[..100].join(" ")), "100 by default");
    assert!(err.contains("the first 100 of 150"), "{err}");
    for limit in ["all", "150", "1000"] {
        assert_eq!(show(&[&name, "--limit", limit]), (format!("{}\n", all.join(" ")), String::new()));
    }
    let (out, err) = show(&[&name, "--limit", "0"]);
    assert_eq!(out, "");
    assert!(err.contains("the first 0 of 150"), "{err}");
}

#[test]
fn info_and_list_show_arrays_and_null_for_plain_objects() {
    let mut guard = Guard::new();
    let image = array_create(&mut guard, &[&unique_name("img"), "f32", "640x480"]);
    let plain = create(&mut guard, &[&unique_name("plain"), "4KiB"]);
    let segment = array_create(&mut guard, &["private", "i8", "5x2"]);
    let plain_segment = create(&mut guard, &["private", "1000"]);

    assert_eq!(array_field(&image), json!({"type": "f32", "dims": [640, 480]}));
    assert_eq!(array_field(&plain), Value::Null);
    assert_eq!(array_field(&segment), json!({"type": "i8", "dims": [5, 2]}), "info reads a segment's header");
    assert_eq!(array_field(&plain_segment), Value::Null);

    // list attaches no segment: its arrays are null there, and the table shows none.
    let list = json_of(&["list", "--sysv", "--json"]);
    let entry = list.as_array().expect("an array").iter().find(|entry| entry["object"] == segment.as_str());
    assert_eq!(entry.expect("the segment listed")["array"], Value::Null);

    assert!(table_line(&image).ends_with("  f32 640x480"), "{}", table_line(&image));
    assert!(table_line(&plain).ends_with("  -"), "{}", table_line(&plain));
    let human = stdout_of(&["info", &image]);
    assert!(human.lines().any(|line| line.split_whitespace().eq(["array", "f32", "640x480"])), "{human}");
    let human = stdout_of(&["info", &plain_segment]);
    assert!(human.lines().any(|line| line.split_whitespace().eq(["array", "-"])), "{human}");
}

#[test]
fn info_counts_the_attachments_of_a_segment_before_it_attaches() {
    let mut guard = Guard::new();
    let segment = array_create(&mut guard, &["private", "f64", "8"]);
    let _holder = Holder::start(&["hold", &segment]);
    for _ in 0..3 {
        let info = json_of(&["info", &segment, "--json"]);
        assert_eq!((info["nattch"].as_u64(), info["in_use"].as_bool()), (Some(1), Some(true)));
        assert_eq!(info["array"], json!({"type": "f64", "dims": [8]}));
    }
    let proc = common::proc_sysvipc(segment_id(&segment)).expect("the segment in /proc");
    assert_eq!(proc["nattch"], "1", "info detached");
}

#[test]
fn another_user_sees_the_arrays_it_may_read() {
    let mut guard = Guard::new();
    let info_as_nobody = |object: &str| -> Value {
        let output = ipcmem_as_nobody(["info", object, "--json"]).output().expect("run ipcmem info");
        assert!(output.status.success(), "info {object}: {}", String::from_utf8_lossy(&output.stderr));
        serde_json::from_slice(&output.stdout).expect("valid JSON")
    };
    for object in [&unique_name("readable"), "private"] {
        let readable = array_create(&mut guard, &[object, "u16", "3x3", "--mode", "0644"]);
        assert_eq!(info_as_nobody(&readable)["array"], json!({"type": "u16", "dims": [3, 3]}), "{readable}");
        let unreadable = array_create(&mut guard, &[object.replace("readable", "unreadable").as_str(), "u16", "3"]);
        assert_eq!(info_as_nobody(&unreadable)["array"], Value::Null, "{unreadable}");
    }
}

/// Headers that are no valid array: garbage, a valid magic with absurd fields, and a header
/// without its magic (a creator that has not finished), each in a POSIX object and a segment.
fn bad_headers() -> Vec<(&'static str, Vec<u8>)> {
    let mut garbage = vec![0_u8; 4096];
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for byte in &mut garbage {
        // xorshift: the same "random" bytes every run.
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        *byte = state.to_le_bytes()[0];
    }
    let max = i64::MAX;
    vec![
        ("garbage", garbage),
        ("huge dims", header(MAGIC, 9, 2, 64, &[max, max])),
        ("elements past the end", header(MAGIC, 2, 1, 64, &[1 << 40])),
        ("negative dim", header(MAGIC, 9, 2, 64, &[-1, 4])),
        ("65535 dims past the end", header(MAGIC, 9, u16::MAX, 524_352, &[1; 8])),
        ("type code 13", header(MAGIC, 13, 1, 64, &[4])),
        ("wrong offset", header(MAGIC, 9, 1, 16, &[4])),
        ("no magic yet", header(0, 9, 2, 64, &[4, 4])),
    ]
}

#[test]
fn hostile_and_half_written_headers_make_no_array_and_no_failure() {
    let mut guard = Guard::new();
    for (what, bytes) in bad_headers() {
        let name = create(&mut guard, &[&unique_name("hostile"), "4KiB"]);
        let segment = create(&mut guard, &["private", "4KiB"]);
        for object in [&name, &segment] {
            write(object, 0, &bytes);
            assert_eq!(array_field(object), Value::Null, "{what} in {object}");
            assert!(table_line(object).ends_with("  -"), "{what}: {}", table_line(object));
            let output = ipcmem(["info", object]).output().expect("run ipcmem info");
            assert!(output.status.success(), "{what}: info {object}");
        }
    }
}

#[test]
fn show_of_an_object_without_an_array_fails() {
    let mut guard = Guard::new();
    let plain = create(&mut guard, &[&unique_name("plain"), "4KiB"]);
    let garbage = create(&mut guard, &["private", "4KiB"]);
    write(&garbage, 0, &header(MAGIC, 9, 2, 64, &[i64::MAX, i64::MAX]));
    let small = create(&mut guard, &[&unique_name("small"), "8"]);
    for (object, why) in [
        (&plain, "not an initialised shared array"),
        (&garbage, "not a valid shared array"),
        (&small, "not a valid shared array"),
    ] {
        let output = ipcmem(["array", "show", object]).output().expect("run ipcmem array show");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{object}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(&format!("ipcmem: {object}: ")) && stderr.contains(why), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let missing = unique_name("missing");
    let output = ipcmem(["array", "show", &missing]).output().expect("run ipcmem array show");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn list_and_info_leave_an_abandoned_volatile_array_in_place() {
    let mut guard = Guard::new();
    let name = unique_name("abandoned");
    guard.track(name.as_str());
    let holder = Holder::start(&["create", &name, "4KiB", "--volatile", "--hold"]);
    write(&name, 0, &header(MAGIC, 2, 1, 64, &[10]));
    assert_eq!(holder.stop(libc::SIGKILL).0, None, "killed: nobody unlinks the object");
    for _ in 0..2 {
        assert_eq!(array_field(&name), json!({"type": "u8", "dims": [10]}));
        assert!(table_line(&name).ends_with("  abandoned,u8 10"), "{}", table_line(&name));
        assert!(posix_exists(&name), "looking removed the abandoned object");
    }
    assert_eq!(json_of(&["info", &name, "--json"])["in_use"], false);
}

#[test]
fn arrays_made_by_the_library_are_shown_and_those_made_by_the_command_open_in_the_library() {
    let mut guard = Guard::new();
    let name = unique_name("rust-f32");
    guard.track(name.as_str());
    let image = SharedArray::<f32>::create(name.as_str(), &[3, 2]).expect("create an array");
    image.write_from(&[0.5, 1.0, -2.0, 3.25, 1e-7, 100.0]).expect("write the values");
    assert_eq!(show(&[&name]).0, "0.5 1 -2\n3.25 1e-7 100\n");
    assert_eq!(array_field(&name), json!({"type": "f32", "dims": [3, 2]}));
    assert!(table_line(&name).ends_with("  volatile,f32 3x2"), "{}", table_line(&name));

    let cube_name = unique_name("rust-c64");
    guard.track(cube_name.as_str());
    let cube = SharedArray::<Complex64>::create(cube_name.as_str(), &[2, 2, 2]).expect("create an array");
    cube.set(&[1, 0, 1], Complex64::new(-1.5, 2.0)).expect("set");
    assert_eq!(show(&[&cube_name]).0, "0+0i 0+0i\n0+0i 0+0i\n0+0i -1.5+2i\n0+0i 0+0i\n");

    let made = array_create(&mut guard, &["private", "c32", "4x2"]);
    let opened = SharedArray::<Complex32>::open(made.parse::<ipcmem::Id>().expect("an id")).expect("open");
    assert_eq!(opened.dims(), &[4, 2]);
    opened.set(&[3, 1], Complex32::new(7.0, -8.0)).expect("set");
    assert_eq!(show(&[&made, "--limit", "all"]).0, "0+0i 0+0i 0+0i 0+0i\n0+0i 0+0i 0+0i 7-8i\n");
}

#[test]
fn bad_types_dims_and_limits_are_usage_errors() {
    let name = unique_name("never");
    let bad_types = ["f16", "F32", "", "complex", "c128", "i8 "];
    for element in bad_types {
        let output = ipcmem(["array", "create", &name, element, "10"]).output().expect("run ipcmem");
        assert_eq!(output.status.code(), Some(2), "type {element:?}");
        assert!(String::from_utf8_lossy(&output.stderr).contains("is not an element type"));
    }
    let bad_dims =
        ["0", "2x0", "", "x", "2x", "x2", "2xx3", "abc", "-1", "2*3", "99999999999999999999", "4294967296x4294967296"];
    for dims in bad_dims {
        let output = ipcmem(["array", "create", &name, "f32", dims]).output().expect("run ipcmem");
        assert_eq!(output.status.code(), Some(2), "dims {dims:?}");
        assert!(output.stdout.is_empty());
        assert!(!String::from_utf8_lossy(&output.stderr).contains("panicked"));
    }
    for args in [
        vec!["array", "create", "id:3", "f32", "10"],
        vec!["array", "create", &name, "f32"],
        vec!["array", "show", "private"],
        vec!["array", "show", &name, "--limit", "-1"],
        vec!["array", "show", &name, "--limit", "many"],
        vec!["array", "frobnicate"],
        vec!["array"],
    ] {
        assert_eq!(ipcmem(&args).output().expect("run ipcmem").status.code(), Some(2), "{args:?}");
    }
    assert!(!posix_exists(&name), "nothing was made");
}

#[test]
fn help_shows_examples() {
    for args in [&["array", "--help"][..], &["array", "create", "--help"], &["array", "show", "--help"]] {
        let help = stdout_of(args);
        assert!(help.contains("Example:"), "{args:?}:\n{help}");
        let command = args[..args.len() - 1].join(" ");
        assert!(help.contains(&format!("$ ipcmem {command}")), "{args:?}:\n{help}");
    }
    assert!(stdout_of(&["--help"]).contains("array"));
}
