//! Atomic views stay sound: safe code cannot get atomics of two sizes over the same bytes of a
//! mapping (a mixed-size race is undefined behaviour in Rust), and loads through read-only
//! handles are relaxed loads with fences, never a panic.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use common::Guard;
use ipcmem::{Error, Event, Semaphore, SharedMemory};

fn refused(result: Result<impl std::fmt::Debug, Error>, width: &str) {
    match result {
        Err(Error::InvalidArgument { reason, .. }) => {
            assert!(reason.contains(&format!("used as {width}-bit atomics")), "{reason}");
            assert!(reason.contains("mixed-size race"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn views_of_two_widths_over_the_same_bytes_are_refused() {
    let mut guard = Guard::new();
    let name = common::unique_name("views");
    guard.track(name.as_str());
    let shm = SharedMemory::create(name.as_str(), 4096).unwrap();
    let words = shm.atomic_u32s(0, 4).unwrap();
    words[1].store(7, Ordering::Relaxed);
    refused(shm.atomic_u64s(0, 1), "32");
    refused(shm.atomic_u64s(8, 1), "32");
    refused(shm.load_u64(8, Ordering::Relaxed), "32");
    // The same width again, and other bytes at the other width, are fine.
    assert_eq!(shm.atomic_u32s(4, 1).unwrap()[0].load(Ordering::Relaxed), 7);
    assert_eq!(shm.load_u32(4, Ordering::Acquire).unwrap(), 7);
    let wide = shm.atomic_u64s(16, 2).unwrap();
    wide[0].store(u64::MAX, Ordering::Relaxed);
    refused(shm.atomic_u32s(20, 1), "64");
    refused(shm.load_u32(24, Ordering::Relaxed), "64");
    // Copies may cover any of them.
    let mut bytes = [0; 32];
    shm.read_at(0, &mut bytes).unwrap();
    assert_eq!(bytes[4..8], 7_u32.to_ne_bytes());
    assert_eq!(bytes[16..24], [0xff; 8]);
    shm.write_at(2, &[1; 20]).unwrap();
    // Another handle is another mapping: its views are its own.
    let other = SharedMemory::open(name.as_str()).unwrap();
    assert_eq!(
        other.atomic_u64s(0, 1).unwrap()[0].load(Ordering::Relaxed),
        u64::from_ne_bytes([0, 0, 1, 1, 1, 1, 1, 1])
    );
}

#[test]
fn the_library_s_own_atomics_are_claimed_too() {
    let mut guard = Guard::new();
    let name = common::unique_name("views-sync");
    guard.track(name.as_str());
    let shm = Arc::new(SharedMemory::create(name.as_str(), 4096).unwrap());
    let _event = Event::attach_at(&shm, 0).unwrap();
    refused(shm.atomic_u64s(0, 1), "32");
    let _sem = Semaphore::init_at(&shm, 64, 1).unwrap();
    // The header's words are 32-bit, the sem_t's first word 64-bit.
    refused(shm.atomic_u64s(64, 1), "32");
    refused(shm.load_u32(76, Ordering::Relaxed), "64");
}

#[test]
fn loads_through_a_read_only_handle_are_relaxed_with_fences() {
    let mut guard = Guard::new();
    let name = common::unique_name("views-readonly");
    guard.track(name.as_str());
    let shm = SharedMemory::create(name.as_str(), 4096).unwrap();
    shm.atomic_u64s(0, 1).unwrap()[0].store(0x1122_3344_5566_7788, Ordering::Release);
    let reader = SharedMemory::open_readonly(name.as_str()).unwrap();
    for order in [Ordering::Relaxed, Ordering::Acquire, Ordering::SeqCst] {
        assert_eq!(reader.load_u64(0, order).unwrap(), 0x1122_3344_5566_7788);
        // Loads of both sizes over the same bytes: allowed (racing reads of different sizes are).
        assert_eq!(reader.load_u32(0, order).unwrap(), 0x5566_7788);
    }
    for order in [Ordering::Release, Ordering::AcqRel] {
        match reader.load_u32(0, order) {
            Err(Error::InvalidArgument { reason, .. }) => {
                assert!(reason.contains("cannot have the ordering"), "{reason}");
            }
            other => panic!("expected an error, got {other:?}"),
        }
    }
    assert!(matches!(reader.atomic_u32s(0, 1), Err(Error::ReadOnly { .. })));
}
