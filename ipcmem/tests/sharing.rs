//! A write in one process is seen by another: by name, by key, by id.

mod common;

use common::{report, run_child, Guard};
use ipcmem::{Id, SharedMemory};

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let code = match scenario.as_str() {
        "write-then-read" => {
            let id: Id = args[0].parse().expect("an object");
            let shm = SharedMemory::open(id).expect("open");
            let mut seen = [0; 6];
            shm.read_at(0, &mut seen).expect("read");
            shm.write_at(8, b"child").expect("write");
            report(String::from_utf8_lossy(&seen));
            0
        }
        other => panic!("unknown scenario {other}"),
    };
    common::exit(code);
}

fn roundtrip(shm: &SharedMemory, target: &Id) {
    shm.write_at(0, b"parent").unwrap();
    let child = run_child("write-then-read", &[&target.to_string()]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "parent");
    let mut back = [0; 5];
    shm.read_at(8, &mut back).unwrap();
    assert_eq!(&back, b"child");
}

#[test]
fn by_name() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("share"));
    let shm = SharedMemory::create(&name, 64).unwrap();
    roundtrip(&shm, &name);
}

#[test]
fn by_key() {
    let mut guard = Guard::new();
    let key = guard.track(common::unique_key());
    let shm = SharedMemory::options().volatile(false).create(&key, 64).unwrap();
    roundtrip(&shm, &key);
}

#[test]
fn by_id() {
    let shm = SharedMemory::create(ipcmem::Key::PRIVATE, 64).unwrap();
    let mut guard = Guard::new();
    let id = guard.track(shm.id());
    roundtrip(&shm, &id);
}
