//! POSIX objects through the unified API, with real objects in /dev/shm and real second
//! processes: read-only mappings, exact modes, permissions, volatile lifetime and garbage
//! collection, persistence, sizes, names, errors.

mod common;

use std::os::unix::fs::MetadataExt;

use common::{report, run_child, spawn_held, Guard};
use ipcmem::gc::{self, Collected};
use ipcmem::{Error, Limit, NameRule, SharedMemory};

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    match scenario.as_str() {
        "write-readonly" => write_readonly(args[0]),
        "nobody-access" => nobody_access(&args),
        "umask-create" => umask_create(&args),
        "create-hold" => create_hold(args[0], args[1] == "volatile"),
        "open-hold" => open_hold(args[0]),
        "create-persistent" => {
            let shm = SharedMemory::options().volatile(false).create(args[0], 64).expect("create");
            shm.write_at(0, args[1].as_bytes()).expect("write");
        }
        "open-len" => report(SharedMemory::open_readonly(args[0]).expect("open").len()),
        other => panic!("unknown scenario {other}"),
    }
    common::exit(0);
}

/// Writes through the pointer of a read-only handle: the process must die of `SIGSEGV`.
fn write_readonly(name: &str) {
    let no_core = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: setrlimit only reads the struct; no core file for the crash that follows.
    unsafe { libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core) };
    let shm = SharedMemory::open_readonly(name).expect("open read-only");
    report("mapped");
    // SAFETY: deliberately unsound in spirit: the address is mapped (within the object) but not
    // writable; the kernel stops the write with SIGSEGV, which is what the test checks.
    unsafe { shm.as_mut_ptr().write_volatile(1) };
    report("survived");
}

/// As uid 65534, tries a read-write and a read-only open of every object named in `names`;
/// reports `NAME rw=OUTCOME ro=OUTCOME`. A granted read-write handle writes "nobody" at 8;
/// a granted read-only one reports the 6 bytes at 0 (`ok:TEXT`).
fn nobody_access(names: &[&str]) {
    common::become_nobody();
    for name in names {
        let rw = outcome(SharedMemory::open(*name), |shm| {
            shm.write_at(8, b"nobody").expect("write through a read-write handle");
            String::new()
        });
        let ro = outcome(SharedMemory::open_readonly(*name), |shm| {
            let mut text = [0; 6];
            shm.read_at(0, &mut text).expect("read through a read-only handle");
            format!(":{}", String::from_utf8_lossy(&text))
        });
        report(format!("{name} rw={rw} ro={ro}"));
    }
}

/// `ok` plus what `then` says, or the error variant and its message: `PermissionDenied|MESSAGE`.
fn outcome(result: ipcmem::Result<SharedMemory>, then: impl FnOnce(&SharedMemory) -> String) -> String {
    match result {
        Ok(shm) => format!("ok{}", then(&shm)),
        Err(error @ Error::PermissionDenied { .. }) => format!("PermissionDenied|{error}"),
        Err(error) => format!("{error:?}"),
    }
}

/// Sets the umask `args[0]` (octal), then for each pair `NAME PERMS` (octal) makes a persistent
/// object `NAME` and a volatile one `NAME-v`; reports the modes of both (`MODE MODE`, octal).
fn umask_create(args: &[&str]) {
    common::set_umask(u32::from_str_radix(args[0], 8).expect("an octal umask"));
    for pair in args[1..].chunks(2) {
        let (name, perms) = (pair[0], u32::from_str_radix(pair[1], 8).expect("octal perms"));
        let options = SharedMemory::options().perms(perms);
        let _persistent = options.clone().volatile(false).create(name, 100).expect("create persistent");
        let volatile_name = format!("{name}-v");
        let _volatile = options.create(volatile_name.as_str(), 100).expect("create volatile");
        let mode = |name: &str| common::posix_mode(name).map_or("none".to_owned(), |mode| format!("{mode:o}"));
        report(format!("{} {}", mode(name), mode(&volatile_name)));
    }
}

/// Makes `name` (volatile or not), writes "child" at 0, reports "held", waits for release.
fn create_hold(name: &str, volatile: bool) {
    let shm = SharedMemory::options().volatile(volatile).create(name, 4096).expect("create");
    shm.write_at(0, b"child").expect("write");
    report("held");
    common::wait_for_release();
}

/// Opens `name`, reports "held TEXT" with the 5 bytes at 0, waits for release.
fn open_hold(name: &str) {
    let shm = SharedMemory::open(name).expect("open");
    let mut text = [0; 5];
    shm.read_at(0, &mut text).expect("read");
    report(format!("held {}", String::from_utf8_lossy(&text)));
    common::wait_for_release();
}

/// The permission field (`r--s`) of the mapping that starts at `address`, from /proc/self/maps.
fn mapping_perms(address: *const u8) -> String {
    let start = format!("{:x}-", address as usize);
    let maps = std::fs::read_to_string("/proc/self/maps").expect("read /proc/self/maps");
    let line = maps.lines().find(|line| line.starts_with(&start)).expect("the mapping is in /proc/self/maps");
    line.split_whitespace().nth(1).expect("a permission field").to_owned()
}

#[test]
fn readonly_mapping_is_read_only() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("ro"));
    let shm = SharedMemory::options().perms(0o644).create(&name, 4096).unwrap();
    shm.write_at(0, b"secret").unwrap();
    assert_eq!(mapping_perms(shm.as_ptr()), "rw-s");

    let reader = SharedMemory::open_readonly(&name).unwrap();
    assert!(reader.is_readonly());
    assert_eq!(mapping_perms(reader.as_ptr()), "r--s");
    let error = reader.write_at(0, b"x").unwrap_err();
    assert!(matches!(&error, Error::ReadOnly { object } if *object == name.to_string()), "{error:?}");
    assert!(matches!(reader.atomic_u32s(0, 1), Err(Error::ReadOnly { .. })));
    // SAFETY: nothing writes the object while the slice lives.
    assert!(matches!(unsafe { reader.as_mut_slice() }, Err(Error::ReadOnly { .. })));
    assert_eq!(reader.load_u32(0, std::sync::atomic::Ordering::Relaxed).unwrap(), u32::from_ne_bytes(*b"secr"));

    let child = run_child("write-readonly", &[&name.to_string()]);
    assert_eq!(child.signal(), Some(libc::SIGSEGV), "{child:?}");
    assert_eq!(child.reports, ["mapped"], "{child:?}");
    let mut text = [0; 6];
    shm.read_at(0, &mut text).unwrap();
    assert_eq!(&text, b"secret", "the refused write changed nothing");

    // Read permission alone suffices for a read-only open (0o644: others may only read).
    let child = run_child("nobody-access", &[&name.to_string()]);
    assert!(child.status.success(), "{child:?}");
    let expected_ro = "ro=ok:secret";
    assert!(child.report().ends_with(expected_ro), "{child:?}");
    assert!(child.report().contains(" rw=PermissionDenied|"), "{child:?}");
}

#[test]
fn modes_are_exact_whatever_the_umask() {
    for umask in ["077", "022"] {
        let mut guard = Guard::new();
        let mut args = vec![umask.to_owned()];
        let mut asked = Vec::new();
        for perms in [0o640, 0o604, 0o666] {
            let name = guard.track(common::unique_name(&format!("mode{perms:o}"))).to_string();
            guard.track(format!("{name}-v"));
            args.extend([name.clone(), format!("{perms:o}")]);
            asked.push((name, perms));
        }
        let child = run_child("umask-create", &args.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(child.status.success(), "{child:?}");
        assert_eq!(child.reports.len(), asked.len(), "{child:?}");
        for ((name, perms), reported) in asked.iter().zip(&child.reports) {
            assert_eq!(*reported, format!("{perms:o} {perms:o}"), "umask {umask}, {name}");
            assert_eq!(common::posix_mode(name), Some(*perms), "umask {umask}, {name}");
            assert!(!common::posix_exists(&format!("{name}-v")), "the volatile one went with its child");
        }
    }
}

#[test]
fn permissions_apply_to_other_users() {
    for volatile in [false, true] {
        let mut guard = Guard::new();
        let mut held = Vec::new();
        let mut names = Vec::new();
        for perms in [0o600, 0o604, 0o606] {
            let name = guard.track(common::unique_name(&format!("perm{perms:o}"))).to_string();
            let shm = SharedMemory::options().perms(perms).volatile(volatile).create(name.as_str(), 64).unwrap();
            shm.write_at(0, b"parent").unwrap();
            held.push(shm);
            names.push(name);
        }
        let child = run_child("nobody-access", &names.iter().map(String::as_str).collect::<Vec<_>>());
        assert!(child.status.success(), "{child:?}");
        let denied = |access: &str, name: &str| format!("{access}=PermissionDenied|{name}: permission denied");
        let expectations = [
            vec![denied("rw", &names[0]), denied("ro", &names[0])],
            vec![denied("rw", &names[1]), "ro=ok:parent".to_owned()],
            vec!["rw=ok".to_owned(), "ro=ok:parent".to_owned()],
        ];
        assert_eq!(child.reports.len(), 3, "{child:?}");
        for ((name, line), expected) in names.iter().zip(&child.reports).zip(expectations) {
            assert!(line.starts_with(&format!("{name} ")), "{line}");
            for part in expected {
                assert!(line.contains(&part), "volatile {volatile}: {line:?} lacks {part:?}");
            }
        }
        let mut written = [0; 6];
        held[2].read_at(8, &mut written).unwrap();
        assert_eq!(&written, b"nobody", "the read-write open by another user wrote");
        held[1].read_at(8, &mut written).unwrap();
        assert_eq!(written, [0; 6], "nothing written where only reading was allowed");
    }
}

#[test]
fn volatile_object_lives_while_another_process_holds_it() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("vol")).to_string();

    // Alone: gone with its only handle.
    drop(SharedMemory::create(name.as_str(), 64).unwrap());
    assert!(!common::posix_exists(&name));

    // The creator goes first; the child's handle keeps the object.
    let shm = SharedMemory::create(name.as_str(), 64).unwrap();
    shm.write_at(0, b"hello").unwrap();
    let mut holder = spawn_held("open-hold", &[&name]);
    assert_eq!(holder.next_report(), "held hello");
    drop(shm);
    assert!(common::posix_exists(&name), "held by the child");
    let reopened = SharedMemory::open(name.as_str()).unwrap();
    drop(reopened);
    assert!(common::posix_exists(&name), "still held by the child");
    let run = holder.release();
    assert!(run.status.success(), "{run:?}");
    assert!(!common::posix_exists(&name), "the last handle, in the child, removed it");

    // The other way round: the child creates, exits; the parent's handle keeps it.
    let mut creator = spawn_held("create-hold", &[&name, "volatile"]);
    assert_eq!(creator.next_report(), "held");
    let shm = SharedMemory::open(name.as_str()).unwrap();
    let run = creator.release();
    assert!(run.status.success(), "{run:?}");
    assert!(common::posix_exists(&name), "held by the parent");
    let mut text = [0; 5];
    shm.read_at(0, &mut text).unwrap();
    assert_eq!(&text, b"child");
    drop(shm);
    assert!(!common::posix_exists(&name));
}

fn find<'a>(collected: &'a [Collected], name: &str) -> Option<&'a Collected> {
    collected.iter().find(|found| found.name == name)
}

#[test]
fn volatile_object_of_killed_holders_is_collected() {
    let mut guard = Guard::new();
    let abandoned = guard.track(common::unique_name("abandoned")).to_string();
    let persistent = guard.track(common::unique_name("persistent")).to_string();
    let child_held = guard.track(common::unique_name("childheld")).to_string();
    let parent_held = guard.track(common::unique_name("parentheld")).to_string();

    // Every holder of `abandoned` dies by SIGKILL: nobody unlinks it.
    let mut creator = spawn_held("create-hold", &[&abandoned, "volatile"]);
    assert_eq!(creator.next_report(), "held");
    let mut opener = spawn_held("open-hold", &[&abandoned]);
    assert_eq!(opener.next_report(), "held child");
    for holder in [creator, opener] {
        let run = holder.kill();
        assert_eq!(run.signal(), Some(libc::SIGKILL), "{run:?}");
    }
    assert!(common::posix_exists(&abandoned), "no handle was dropped, nobody removed it");

    drop(SharedMemory::options().volatile(false).create(persistent.as_str(), 64).unwrap());
    let mut live = spawn_held("create-hold", &[&child_held, "volatile"]);
    assert_eq!(live.next_report(), "held");
    let mine = SharedMemory::create(parent_held.as_str(), 64).unwrap();

    let dry = gc::collect(gc::Mode::DryRun).unwrap();
    let found = find(&dry, &abandoned).unwrap_or_else(|| panic!("{abandoned} not found by gc: {dry:?}"));
    assert!(!found.removed);
    assert!(common::posix_exists(&abandoned), "a dry run removes nothing");

    let collected = gc::collect(gc::Mode::Remove).unwrap();
    let found = find(&collected, &abandoned).unwrap_or_else(|| panic!("{abandoned} not collected: {collected:?}"));
    assert!(found.removed);
    assert!(!common::posix_exists(&abandoned));
    for kept in [&persistent, &child_held, &parent_held] {
        assert!(find(&dry, kept).is_none() && find(&collected, kept).is_none(), "gc listed {kept}");
        assert!(common::posix_exists(kept), "gc removed {kept}");
    }

    let run = live.release();
    assert!(run.status.success(), "{run:?}");
    assert!(!common::posix_exists(&child_held));
    drop(mine);
    assert!(!common::posix_exists(&parent_held));
    assert!(common::posix_exists(&persistent));
}

#[test]
fn persistent_object_outlives_its_creator_until_removed() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("persist")).to_string();
    let child = run_child("create-persistent", &[&name, "from the child"]);
    assert!(child.status.success(), "{child:?}");
    assert!(common::posix_exists(&name));

    let shm = SharedMemory::open(name.as_str()).unwrap();
    assert!(!shm.is_volatile());
    let mut text = [0; 14];
    shm.read_at(0, &mut text).unwrap();
    assert_eq!(&text, b"from the child");
    drop(shm);
    assert!(common::posix_exists(&name), "dropping a handle of a persistent object keeps it");

    ipcmem::shmrm(name.as_str()).unwrap();
    assert!(!common::posix_exists(&name));
    assert!(matches!(SharedMemory::open(name.as_str()), Err(Error::NotFound { .. })));
    ipcmem::shmrm(name.as_str()).unwrap();
}

#[test]
fn sizes_are_exact() {
    let mut guard = Guard::new();
    for len in [1, 4095, 4097] {
        let name = guard.track(common::unique_name("len")).to_string();
        let shm = SharedMemory::create(name.as_str(), len).unwrap();
        assert_eq!(shm.len(), len);
        assert_eq!(std::fs::metadata(format!("/dev/shm{name}")).unwrap().len(), len as u64);
        shm.write_at(len - 1, &[7]).unwrap();
        assert!(matches!(shm.write_at(len, &[7]), Err(Error::OutOfBounds { .. })));
        let child = run_child("open-len", &[&name]);
        assert!(child.status.success(), "{child:?}");
        assert_eq!(child.report(), len.to_string());
    }
}

#[test]
fn bad_sizes_are_refused_at_creation() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("badsize")).to_string();
    let zero = SharedMemory::create(name.as_str(), 0).unwrap_err();
    assert!(matches!(&zero, Error::InvalidSize { size: 0, .. }), "{zero:?}");
    assert!(matches!(SharedMemory::options().open_or_create(name.as_str(), 0), Err(Error::InvalidSize { .. })));

    let vfs = rustix::fs::statvfs("/dev/shm").unwrap();
    let free = vfs.f_bavail * vfs.f_frsize;
    let past_free = usize::try_from(free + (1 << 30)).unwrap();
    for reserve in [false, true] {
        let error = SharedMemory::options().reserve(reserve).create(name.as_str(), past_free).unwrap_err();
        assert!(matches!(&error, Error::LimitExceeded { limit: Limit::NoSpace, .. }), "{error:?}");
        assert!(error.to_string().contains(&name), "{error}");
    }
    for huge in [usize::MAX, usize::MAX / 2, usize::MAX / 2 + 1, 1 << 62] {
        let error = SharedMemory::create(name.as_str(), huge).unwrap_err();
        assert!(matches!(&error, Error::InvalidSize { .. } | Error::LimitExceeded { .. }), "{huge}: {error:?}");
    }
    assert!(!common::posix_exists(&name), "no failed creation leaves an object");

    let len = (1 << 20) + 3;
    let shm = SharedMemory::options().reserve(true).create(name.as_str(), len).unwrap();
    assert_eq!(shm.len(), len);
    let meta = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
    assert_eq!(meta.len(), len as u64);
    assert!(meta.blocks() * 512 >= len as u64, "reserve allocated every page: {} blocks", meta.blocks());
    shm.write_at(len - 4, b"last").unwrap();
}

#[test]
fn invalid_names_are_refused() {
    let too_long = format!("/{}", "x".repeat(256));
    let cases = [
        ("", NameRule::Empty),
        ("noslash", NameRule::LeadingSlash),
        ("/a/b", NameRule::InnerSlash),
        ("/", NameRule::NothingAfterSlash),
        ("/a\0b", NameRule::Nul),
        (too_long.as_str(), NameRule::TooLong),
        ("/.", NameRule::Dots),
        ("/..", NameRule::Dots),
    ];
    for (name, rule) in cases {
        let results = [
            SharedMemory::create(name, 64).map(drop),
            SharedMemory::options().volatile(false).create(name, 64).map(drop),
            SharedMemory::open(name).map(drop),
            SharedMemory::open_readonly(name).map(drop),
            SharedMemory::options().open_or_create(name, 64).map(drop),
            ipcmem::shmrm(name),
        ];
        for result in results {
            let error = result.unwrap_err();
            assert!(
                matches!(&error, Error::InvalidName { name: given, rule: got } if given == name && *got == rule),
                "{name:?}: {error:?}"
            );
        }
    }
}

#[test]
fn longest_name_is_accepted() {
    let mut guard = Guard::new();
    let prefix = common::unique_name("long");
    let name = format!("{prefix}{}", "y".repeat(256 - prefix.len()));
    assert_eq!(name.len(), 256, "a slash and NAME_MAX bytes");
    guard.track(name.as_str());
    let shm = SharedMemory::create(name.as_str(), 64).unwrap();
    assert!(common::posix_exists(&name));
    let child = run_child("open-len", &[&name]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "64");
    drop(shm);
    assert!(!common::posix_exists(&name));
}

#[test]
fn errors_name_the_object_and_convert_to_io() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("errors")).to_string();

    let missing = SharedMemory::open(name.as_str()).unwrap_err();
    assert!(matches!(&missing, Error::NotFound { .. }), "{missing:?}");
    assert_eq!(missing.object(), name);
    assert!(missing.to_string().contains(&name), "{missing}");
    let io = std::io::Error::from(missing);
    assert_eq!(io.kind(), std::io::ErrorKind::NotFound);
    assert!(io.to_string().contains(&name), "{io}");

    let _shm = SharedMemory::create(name.as_str(), 64).unwrap();
    let exists = SharedMemory::create(name.as_str(), 64).unwrap_err();
    assert!(matches!(&exists, Error::AlreadyExists { .. }), "{exists:?}");
    assert!(exists.to_string().contains(&name), "{exists}");
    let io = std::io::Error::from(exists);
    assert_eq!(io.kind(), std::io::ErrorKind::AlreadyExists);
    assert!(io.to_string().contains(&name), "{io}");

    let zero = SharedMemory::create(common::unique_name("zero").as_str(), 0).unwrap_err();
    assert!(zero.to_string().contains("-zero"), "{zero}");
    assert_eq!(std::io::Error::from(zero).kind(), std::io::ErrorKind::InvalidInput);

    let invalid = SharedMemory::open("/a/b").unwrap_err();
    assert!(invalid.to_string().contains("\"/a/b\""), "{invalid}");
    assert_eq!(std::io::Error::from(invalid).kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn create_of_an_existing_name_disturbs_nothing() {
    for volatile in [false, true] {
        let mut guard = Guard::new();
        let name = guard.track(common::unique_name("exists")).to_string();
        let shm = SharedMemory::options().volatile(volatile).perms(0o640).create(name.as_str(), 100).unwrap();
        shm.write_at(0, b"original").unwrap();
        let before = std::fs::metadata(format!("/dev/shm{name}")).unwrap();

        for (again_volatile, len) in [(false, 100), (true, 100), (false, 5000), (true, 1)] {
            let options = SharedMemory::options().volatile(again_volatile).perms(0o666);
            let error = options.create(name.as_str(), len).unwrap_err();
            assert!(matches!(&error, Error::AlreadyExists { .. }), "{error:?}");
        }

        let after = std::fs::metadata(format!("/dev/shm{name}")).unwrap();
        assert_eq!((after.ino(), after.len(), after.mode()), (before.ino(), before.len(), before.mode()));
        let other = SharedMemory::open(name.as_str()).unwrap();
        assert_eq!(other.len(), 100);
        let mut text = [0; 8];
        other.read_at(0, &mut text).unwrap();
        assert_eq!(&text, b"original");
        drop((shm, other));
        assert_eq!(common::posix_exists(&name), !volatile);
    }
}

/// An object made by `shm_open(O_CREAT)` is visible with size 0 until its creator sizes it: an
/// opener waits for the size rather than failing or mapping nothing; one never sized is refused.
#[test]
fn open_waits_for_an_object_being_sized() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("sizing")).to_string();
    let path = format!("/dev/shm{name}");
    let file = std::fs::File::create_new(&path).expect("an empty object, as shm_open(O_CREAT) makes it");
    let sizer = std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(20));
        file.set_len(4097).expect("size it");
    });
    let shm = SharedMemory::open(name.as_str()).expect("the opener waits for the size");
    assert_eq!(shm.len(), 4097);
    sizer.join().unwrap();

    let never = guard.track(common::unique_name("never-sized")).to_string();
    std::fs::File::create_new(format!("/dev/shm{never}")).unwrap();
    let error = SharedMemory::open(never.as_str()).unwrap_err();
    assert!(matches!(error, ipcmem::Error::InvalidSize { size: 0, .. }), "{error:?}");
}
