//! Shared arrays in the Julia package's layout "WA-1": golden bytes, a second process that
//! attaches an array knowing only its name or id, hostile headers, incomplete headers.
//!
//! The fixtures are little-endian, as on x86-64 (the layout is native-endian).

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{report, run_child, Guard};
use ipcmem::array::{
    self, parse_header, Complex32, Complex64, Element, ElementType, Header, HeaderError, DEFAULT_WAIT, MAGIC,
};
use ipcmem::{Error, Id, Key, Outcome, SharedArray, SharedMemory};
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// An allocator that tells the largest allocation made by a piece of code, to show that the
// header parser never allocates by a header's word.

struct Watching;

thread_local! {
    /// The largest allocation of this thread since watching began; `None` when not watching.
    static LARGEST: Cell<Option<usize>> = const { Cell::new(None) };
}

// SAFETY: every call goes to the system allocator with the same arguments; the bookkeeping
// touches only a thread-local `Cell`, which allocates nothing.
unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = LARGEST.try_with(|largest| {
            if let Some(max) = largest.get() {
                largest.set(Some(max.max(layout.size())));
            }
        });
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System.alloc` with this layout (see `alloc`).
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

/// Runs `f` and returns its result and the largest allocation it made on this thread.
fn largest_allocation<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|largest| largest.set(Some(0)));
    let result = f();
    let largest = LARGEST.with(|largest| largest.replace(None)).unwrap_or(0);
    (result, largest)
}

// ---------------------------------------------------------------------------------------------
// Children.

/// The entry point of child processes (see `common`); a no-op in the parent's test run.
#[test]
fn child_entry() {
    let Some((scenario, args)) = common::scenario() else { return };
    let code = match scenario.as_str() {
        "reverse" => {
            // Knows only the object: asks what it holds, reads it, writes it back reversed.
            let id: Id = args[0].parse().expect("an object");
            let header = array::inspect(&id).expect("inspect");
            let seen = match header.element() {
                ElementType::I8 => reverse::<i8>(&id),
                ElementType::U8 => reverse::<u8>(&id),
                ElementType::I16 => reverse::<i16>(&id),
                ElementType::U16 => reverse::<u16>(&id),
                ElementType::I32 => reverse::<i32>(&id),
                ElementType::U32 => reverse::<u32>(&id),
                ElementType::I64 => reverse::<i64>(&id),
                ElementType::U64 => reverse::<u64>(&id),
                ElementType::F32 => reverse::<f32>(&id),
                ElementType::F64 => reverse::<f64>(&id),
                ElementType::C32 => reverse::<Complex32>(&id),
                ElementType::C64 => reverse::<Complex64>(&id),
            };
            report(format!("{header} {seen}"));
            0
        }
        "create-and-vanish" => {
            // A volatile array whose only holder ends without dropping it, as a crash would:
            // `exit` runs no destructors, and the kernel releases the lock.
            let array = SharedArray::<u8>::create(args[0].as_str(), &[4, 4]).expect("create");
            report(array.header());
            common::exit(0)
        }
        other => panic!("unknown scenario {other}"),
    };
    common::exit(code);
}

/// Opens the array of `T` at `id`, returns its values as `{:?}` prints them, and writes them
/// back in reverse order.
fn reverse<T: Element>(id: &Id) -> String {
    let array = SharedArray::<T>::open(id).expect("open");
    let mut values = array.to_vec().expect("read");
    let seen = format!("{values:?}");
    values.reverse();
    array.write_from(&values).expect("write");
    seen
}

/// Fills `array` with `values`, lets a child reverse it knowing only `target`, and checks what
/// each side saw.
fn share<T: Element>(array: &SharedArray<T>, target: &Id, values: &[T]) {
    array.write_from(values).unwrap();
    let child = run_child("reverse", &[&target.to_string()]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), format!("{} {values:?}", array.header()));
    let reversed: Vec<T> = values.iter().rev().copied().collect();
    assert_eq!(array.to_vec().unwrap(), reversed);
}

#[test]
fn second_process_by_name() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("array"));
    let array = SharedArray::<f32>::create(&name, &[3, 4]).unwrap();
    #[allow(clippy::cast_precision_loss)] // small integers
    let values: Vec<f32> = (0..12).map(|v| v as f32 * 1.5).collect();
    share(&array, &name, &values);
}

#[test]
fn second_process_by_id() {
    let array = SharedArray::<Complex64>::create(Key::PRIVATE, &[2, 3]).unwrap();
    let mut guard = Guard::new();
    let id = guard.track(array.id());
    assert!(matches!(id, Id::Shm(_)));
    #[allow(clippy::cast_precision_loss)]
    let values: Vec<Complex64> = (0..6).map(|v| Complex64::new(f64::from(v), -0.25 * f64::from(v))).collect();
    share(&array, &id, &values);
}

#[test]
fn second_process_by_key() {
    let mut guard = Guard::new();
    let key = guard.track(common::unique_key());
    let array = SharedArray::<i64>::options().volatile(false).create(&key, &[5]).unwrap();
    share(&array, &key, &[i64::MIN, -1, 0, 1, i64::MAX]);
}

#[test]
fn try_inspect_leaves_an_abandoned_volatile_array_alone() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("abandoned"));
    let child = run_child("create-and-vanish", &[&name.to_string()]);
    assert!(child.status.success(), "{child:?}");
    assert_eq!(child.report(), "u8 4x4");
    // Nobody holds the object now: reading it as a file neither locks nor removes it.
    assert_eq!(array::try_inspect(&name).map(|h| h.to_string()), Some("u8 4x4".to_owned()));
    assert!(common::posix_exists(&name.to_string()));
    // inspect opens it as a look: it stays for gc.
    assert_eq!(array::inspect(&name).unwrap().to_string(), "u8 4x4");
    assert!(common::posix_exists(&name.to_string()));
    // A consumer that opens to use it holds it, and as its last holder removes it.
    drop(SharedArray::<u8>::open_readonly(&name).unwrap());
    assert!(!common::posix_exists(&name.to_string()));
}

// ---------------------------------------------------------------------------------------------
// Golden fixtures, written by hand from the layout table.

/// i16, dims 2x3, element (i, j) = 10 i + j.
#[rustfmt::skip]
const I16_2X3: [u8; 76] = [
    0x31, 0x2D, 0x41, 0x57, // magic "WA-1"
    3, 0,                   // type code 3: i16
    2, 0,                   // N = 2
    64, 0, 0, 0, 0, 0, 0, 0, // data offset roundup(16 + 16, 64) = 64
    2, 0, 0, 0, 0, 0, 0, 0, // dims[0] = 2
    3, 0, 0, 0, 0, 0, 0, 0, // dims[1] = 3
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding to 64
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    // column-major: (0,0) (1,0) (0,1) (1,1) (0,2) (1,2)
    0, 0, 10, 0, 1, 0, 11, 0, 2, 0, 12, 0,
];

/// f64, dims 4: 1.0, -2.5, 0.5, 2.0.
#[rustfmt::skip]
const F64_4: [u8; 96] = [
    0x31, 0x2D, 0x41, 0x57, // magic
    10, 0,                  // type code 10: f64
    1, 0,                   // N = 1
    64, 0, 0, 0, 0, 0, 0, 0, // data offset 64
    4, 0, 0, 0, 0, 0, 0, 0, // dims[0] = 4
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding to 64
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0xF0, 0x3F, // 1.0
    0, 0, 0, 0, 0, 0, 0x04, 0xC0, // -2.5
    0, 0, 0, 0, 0, 0, 0xE0, 0x3F, // 0.5
    0, 0, 0, 0, 0, 0, 0x00, 0x40, // 2.0
];

/// Complex of two f32, dims 2x2x2, element (i, j, k) = (i + 2j + 4k) - 1.0 i.
#[rustfmt::skip]
const C32_2X2X2: [u8; 128] = [
    0x31, 0x2D, 0x41, 0x57, // magic
    11, 0,                  // type code 11: complex f32
    3, 0,                   // N = 3
    64, 0, 0, 0, 0, 0, 0, 0, // data offset roundup(16 + 24, 64) = 64
    2, 0, 0, 0, 0, 0, 0, 0, // dims
    2, 0, 0, 0, 0, 0, 0, 0,
    2, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // padding to 64
    0, 0, 0x00, 0x00, 0, 0, 0x80, 0xBF, // 0 - 1i
    0, 0, 0x80, 0x3F, 0, 0, 0x80, 0xBF, // 1 - 1i
    0, 0, 0x00, 0x40, 0, 0, 0x80, 0xBF, // 2 - 1i
    0, 0, 0x40, 0x40, 0, 0, 0x80, 0xBF, // 3 - 1i
    0, 0, 0x80, 0x40, 0, 0, 0x80, 0xBF, // 4 - 1i
    0, 0, 0xA0, 0x40, 0, 0, 0x80, 0xBF, // 5 - 1i
    0, 0, 0xC0, 0x40, 0, 0, 0x80, 0xBF, // 6 - 1i
    0, 0, 0xE0, 0x40, 0, 0, 0x80, 0xBF, // 7 - 1i
];

/// Every byte of the object.
fn object_bytes(shm: &SharedMemory) -> Vec<u8> {
    let mut bytes = vec![0; shm.len()];
    shm.read_at(0, &mut bytes).unwrap();
    bytes
}

/// A persistent POSIX object of `len` bytes holding `bytes` (cut to `len`), as another writer
/// would have left it; the guard removes it.
fn lay(guard: &mut Guard, bytes: &[u8], len: usize) -> (Id, SharedMemory) {
    let name = guard.track(common::unique_name("laid"));
    let shm = SharedMemory::options().volatile(false).create(&name, len).unwrap();
    shm.write_at(0, &bytes[..len.min(bytes.len())]).unwrap();
    (name, shm)
}

#[test]
fn golden_bytes_written() {
    let mut guard = Guard::new();

    let name = guard.track(common::unique_name("gold-i16"));
    let a = SharedArray::<i16>::create(&name, &[2, 3]).unwrap();
    for i in 0..2 {
        for j in 0..3 {
            a.set(&[i, j], i16::try_from(10 * i + j).unwrap()).unwrap();
        }
    }
    assert_eq!(object_bytes(a.memory()), I16_2X3);

    let name = guard.track(common::unique_name("gold-f64"));
    let b = SharedArray::<f64>::create(&name, &[4]).unwrap();
    b.write_from(&[1.0, -2.5, 0.5, 2.0]).unwrap();
    assert_eq!(object_bytes(b.memory()), F64_4);

    let name = guard.track(common::unique_name("gold-c32"));
    let c = SharedArray::<Complex32>::create(&name, &[2, 2, 2]).unwrap();
    for (i, j, k) in (0..2).flat_map(|i| (0..2).flat_map(move |j| (0..2).map(move |k| (i, j, k)))) {
        #[allow(clippy::cast_precision_loss)] // small integers
        c.set(&[i, j, k], Complex32::new((i + 2 * j + 4 * k) as f32, -1.0)).unwrap();
    }
    assert_eq!(object_bytes(c.memory()), C32_2X2X2);

    // The pure encoder agrees, up to the data offset.
    assert_eq!(Header::new(ElementType::I16, &[2, 3]).unwrap().encode(), I16_2X3[..64]);
    assert_eq!(Header::new(ElementType::C32, &[2, 2, 2]).unwrap().encode(), C32_2X2X2[..64]);
}

#[test]
fn golden_fixtures_opened() {
    let mut guard = Guard::new();

    let (name, _shm) = lay(&mut guard, &I16_2X3, I16_2X3.len());
    let header = array::inspect(&name).unwrap();
    assert_eq!(
        (header.element(), header.dims(), header.to_string().as_str()),
        (ElementType::I16, &[2, 3][..], "i16 2x3")
    );
    let a = SharedArray::<i16>::open_readonly(&name).unwrap();
    assert_eq!(a.to_vec().unwrap(), [0, 10, 1, 11, 2, 12]);
    assert_eq!((a.get(&[1, 2]).unwrap(), a.get(&[0, 1]).unwrap()), (12, 1));
    assert_eq!(a.len(), 6);

    let (name, _shm) = lay(&mut guard, &F64_4, F64_4.len());
    assert_eq!(array::try_inspect(&name).map(|h| h.to_string()), Some("f64 4".to_owned()));
    let b = SharedArray::<f64>::open(&name).unwrap();
    assert_eq!(b.to_vec().unwrap(), [1.0, -2.5, 0.5, 2.0]);

    // The same fixture in a System V segment, opened by its id.
    let segment = SharedMemory::create(Key::PRIVATE, C32_2X2X2.len()).unwrap();
    let id = guard.track(segment.id());
    segment.write_at(0, &C32_2X2X2).unwrap();
    let header = array::inspect(&id).unwrap();
    assert_eq!((header.element(), header.dims()), (ElementType::C32, &[2, 2, 2][..]));
    assert_eq!(array::try_inspect(&id), Some(header));
    let c = SharedArray::<Complex32>::open(&id).unwrap();
    assert_eq!(c.get(&[1, 1, 1]).unwrap(), Complex32::new(7.0, -1.0));
    assert_eq!(c.get(&[0, 1, 0]).unwrap(), Complex32::new(2.0, -1.0));
}

#[test]
fn wrong_type_names_the_stored_type() {
    let mut guard = Guard::new();
    let (name, _shm) = lay(&mut guard, &I16_2X3, I16_2X3.len());
    let error = SharedArray::<u16>::open(&name).unwrap_err();
    assert!(
        matches!(error, Error::TypeMismatch { expected: ElementType::U16, found: ElementType::I16, .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("holds an array of i16, not of u16"), "{error}");
    assert_eq!(error.kind(), std::io::ErrorKind::InvalidData);
}

// ---------------------------------------------------------------------------------------------
// One test per check of the reader: each breaks exactly that check of a valid header, and the
// error names it, from the pure parser and from a real object.

/// The i16 2x3 fixture as a vector, to break.
fn fixture() -> Vec<u8> {
    I16_2X3.to_vec()
}

/// `bytes` as an object of `len` bytes is refused for `expected`, by the parser and by an
/// opener.
fn refused(bytes: &[u8], len: usize, expected: &HeaderError) {
    let buffer = &bytes[..len.min(bytes.len())];
    assert_eq!(parse_header(buffer, len).as_ref(), Err(expected));
    let mut guard = Guard::new();
    let (name, _shm) = lay(&mut guard, bytes, len);
    let opened = SharedArray::<i16>::options().wait(Duration::ZERO).open(&name);
    match opened {
        Err(Error::BadHeader { reason, object }) => {
            assert_eq!((&reason, object.as_str()), (expected, name.to_string().as_str()));
        }
        other => panic!("expected {expected:?}, got {other:?}"),
    }
    assert!(array::try_inspect(&name).is_none());
}

#[test]
fn check_size_at_least_16() {
    refused(&fixture(), 15, &HeaderError::TooSmall { len: 15 });
    assert_eq!(parse_header(&[], 0), Err(HeaderError::TooSmall { len: 0 }));
}

#[test]
fn check_magic() {
    let mut bytes = fixture();
    bytes[3] = 0x58; // "WA-1" becomes "XA-1"
    refused(&bytes, bytes.len(), &HeaderError::BadMagic { found: 0x5841_2D31 });
    bytes[..4].copy_from_slice(&MAGIC.swap_bytes().to_ne_bytes()); // the other byte order
    refused(&bytes, bytes.len(), &HeaderError::BadMagic { found: MAGIC.swap_bytes() });
}

#[test]
fn check_type_code() {
    for code in [0_u16, 13, 0xFFFF] {
        let mut bytes = fixture();
        bytes[4..6].copy_from_slice(&code.to_ne_bytes());
        refused(&bytes, bytes.len(), &HeaderError::BadType { code });
    }
}

#[test]
fn check_at_least_one_dimension() {
    let mut bytes = fixture();
    bytes[6..8].copy_from_slice(&0_u16.to_ne_bytes());
    refused(&bytes, bytes.len(), &HeaderError::NoDimensions);
}

#[test]
fn check_data_offset() {
    for found in [0_i64, 63, 65, 128, -64, i64::MIN] {
        let mut bytes = fixture();
        bytes[8..16].copy_from_slice(&found.to_ne_bytes());
        refused(&bytes, bytes.len(), &HeaderError::BadOffset { found, expected: 64, ndims: 2 });
    }
}

#[test]
fn check_dimensions_at_least_1() {
    for value in [0_i64, -1, i64::MIN] {
        let mut bytes = fixture();
        bytes[24..32].copy_from_slice(&value.to_ne_bytes());
        refused(&bytes, bytes.len(), &HeaderError::BadDimension { index: 1, value });
    }
}

#[test]
fn check_object_holds_the_data() {
    let bytes = fixture();
    refused(&bytes, bytes.len() - 1, &HeaderError::TooSmallForData { end: 76, len: 75 });
    refused(&bytes, 64, &HeaderError::TooSmallForData { end: 76, len: 64 });
}

#[test]
fn check_dimension_list_within_the_object() {
    // Six dimensions end at byte 64, and their offset is 64: an object of 40 bytes passes every
    // check before this one.
    let mut bytes = fixture();
    bytes[6..8].copy_from_slice(&6_u16.to_ne_bytes());
    refused(&bytes, 40, &HeaderError::DimsPastEnd { ndims: 6, end: 64, len: 40 });
}

#[test]
fn check_product_overflow() {
    let mut bytes = fixture();
    let big = 1_i64 << 32;
    bytes[16..24].copy_from_slice(&big.to_ne_bytes());
    bytes[24..32].copy_from_slice(&big.to_ne_bytes());
    refused(&bytes, bytes.len(), &HeaderError::Overflow { element: ElementType::I16, dims: vec![1 << 32, 1 << 32] });
    // The product fits, its size in bytes does not.
    bytes[16..24].copy_from_slice(&(1_i64 << 62).to_ne_bytes());
    bytes[24..32].copy_from_slice(&1_i64.to_ne_bytes());
    refused(&bytes, bytes.len(), &HeaderError::Overflow { element: ElementType::I16, dims: vec![1 << 62, 1] });
}

#[test]
fn short_buffer_is_refused_not_read_past() {
    let bytes = fixture();
    assert_eq!(parse_header(&bytes[..20], 76), Err(HeaderError::ShortBuffer { have: 20, need: 32 }));
    assert_eq!(parse_header(&bytes[..10], 76), Err(HeaderError::ShortBuffer { have: 10, need: 16 }));
}

// ---------------------------------------------------------------------------------------------
// Property tests: random and mutated headers.

/// Parses `bytes` as an object of `object_len` bytes and checks that the parser allocated no
/// more than the buffer, and that an accepted header says what the bytes say.
fn check_parse(bytes: &[u8], object_len: usize) -> Result<(), TestCaseError> {
    let (parsed, largest) = largest_allocation(|| parse_header(bytes, object_len));
    prop_assert!(largest <= bytes.len(), "allocated {largest} bytes for a {}-byte buffer", bytes.len());
    if let Ok(header) = parsed {
        let end = 16 + 8 * header.ndims();
        prop_assert!(end <= bytes.len() && header.object_size() <= object_len);
        prop_assert_eq!(&header.encode()[..end], &bytes[..end]);
        prop_assert_eq!(header.dims().iter().product::<usize>(), header.len());
        prop_assert!(header.dims().iter().all(|&dim| dim >= 1));
    }
    Ok(())
}

/// A dimension word: small, zero, negative, huge.
fn dimension_word() -> impl Strategy<Value = i64> {
    prop_oneof![-2_i64..=5, Just(i64::MAX), Just(i64::MIN), (1_i64 << 31)..=(1_i64 << 34), any::<i64>()]
}

prop_compose! {
    /// A header of plausible and hostile words: right or random magic, codes around the table,
    /// few or many dimensions, the right or a random offset, a dimension list that may be too
    /// short, and an object size near, below or far past the bytes.
    fn hostile_object()(
        good_magic in prop::bool::weighted(0.9),
        code in 0_u16..=14,
        ndims in prop_oneof![4 => 0_u16..=8, 1 => any::<u16>()],
        offset in prop_oneof![3 => Just(None), 1 => any::<i64>().prop_map(Some)],
        dims in vec(dimension_word(), 0..12),
        tail in 0_usize..300,
        size in prop_oneof![4 => Just(0_i64), 2 => -80_i64..80, 1 => Just(i64::MAX)],
    ) -> (Vec<u8>, usize) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&(if good_magic { MAGIC } else { 0x5741_2D30 }).to_ne_bytes());
        bytes.extend_from_slice(&code.to_ne_bytes());
        bytes.extend_from_slice(&ndims.to_ne_bytes());
        let offset = offset.unwrap_or(i64::try_from(array::data_offset(usize::from(ndims))).unwrap());
        bytes.extend_from_slice(&offset.to_ne_bytes());
        for dim in dims {
            bytes.extend_from_slice(&dim.to_ne_bytes());
        }
        bytes.resize(bytes.len() + tail, 0);
        let object_len = if size == i64::MAX {
            usize::MAX
        } else {
            bytes.len().saturating_add_signed(isize::try_from(size).unwrap())
        };
        (bytes, object_len)
    }
}

prop_compose! {
    /// A valid header of any type with small dimensions, as the bytes of its whole object.
    fn valid_object()(
        element in prop::sample::select(ElementType::ALL.to_vec()),
        dims in vec(prop_oneof![3 => Just(1_usize), 2 => 2_usize..=5], 1..=16)
            .prop_filter("a small object", |dims| dims.iter().product::<usize>() <= 4096),
    ) -> (Header, Vec<u8>) {
        let header = Header::new(element, &dims).unwrap();
        let mut bytes = header.encode();
        bytes.resize(header.object_size(), 0xA5);
        (header, bytes)
    }
}

proptest! {
    #[test]
    fn random_bytes(bytes in vec(any::<u8>(), 0..700), extra in 0_usize..4096) {
        check_parse(&bytes, bytes.len())?;
        check_parse(&bytes, bytes.len() + extra)?;
        check_parse(&bytes, usize::MAX)?;
    }

    #[test]
    fn hostile_headers((bytes, object_len) in hostile_object()) {
        check_parse(&bytes, object_len)?;
        check_parse(&bytes, bytes.len())?;
    }

    #[test]
    fn mutated_headers(
        (header, mut bytes) in valid_object(),
        mutations in vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let header_end = 16 + 8 * header.ndims();
        for (at, value) in mutations {
            let at = at.index(header_end);
            bytes[at] = value;
        }
        check_parse(&bytes, bytes.len())?;
        let cut = cut.index(bytes.len() + 1);
        check_parse(&bytes[..cut], cut)?;
    }

    #[test]
    fn valid_headers_round_trip((header, bytes) in valid_object(), extra in 0_usize..100) {
        prop_assert_eq!(parse_header(&bytes, bytes.len()), Ok(header.clone()));
        // A larger object is accepted, as by the Julia reader.
        prop_assert_eq!(parse_header(&bytes, bytes.len() + extra), Ok(header.clone()));
        prop_assert!(header.data_offset() % 64 == 0 && header.data_offset() >= 16 + 8 * header.ndims());
        let expected = match header.ndims() {
            1..=6 => 64,
            7..=14 => 128,
            _ => 192, // up to 22 dimensions; these have at most 16
        };
        prop_assert_eq!(header.data_offset(), expected);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Hostile headers in real objects: an opener gives an error or a consistent array.
    #[test]
    fn hostile_headers_in_objects((bytes, object_len) in hostile_object()) {
        let len = object_len.clamp(1, 1 << 20);
        let mut guard = Guard::new();
        let (name, shm) = lay(&mut guard, &bytes, len);
        let inspected = array::inspect_memory(&shm);
        let opened = SharedArray::<u8>::options().wait(Duration::ZERO).open(&name);
        match (&inspected, opened) {
            (Ok(header), Ok(array)) => {
                prop_assert_eq!(header, array.header());
                prop_assert!(header.object_size() <= len);
                prop_assert_eq!(array.to_vec().unwrap().len(), header.len());
            }
            (Ok(header), Err(Error::TypeMismatch { found, .. })) => prop_assert_eq!(header.element(), found),
            (Err(_), Err(_)) => {}
            (inspected, opened) => prop_assert!(false, "inspect {inspected:?}, open {opened:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Headers being written.

#[test]
fn half_written_header_is_not_initialised_after_the_wait() {
    let mut guard = Guard::new();
    let mut bytes = fixture();
    bytes[..4].fill(0); // every field but the magic
    let (name, shm) = lay(&mut guard, &bytes, bytes.len());
    let error = SharedArray::<i16>::open(&name).unwrap_err();
    assert!(matches!(&error, Error::NotInitialised { waited, .. } if *waited == DEFAULT_WAIT), "{error:?}");
    assert!(error.to_string().contains("not an initialised shared array"), "{error}");
    assert_eq!(error.kind(), std::io::ErrorKind::TimedOut);
    assert!(matches!(array::inspect(&name), Err(Error::NotInitialised { .. })));
    // Listings neither wait nor fail.
    assert!(array::try_inspect(&name).is_none());
    assert!(matches!(array::inspect_memory(&shm), Err(Error::NotInitialised { waited: Duration::ZERO, .. })));
}

/// An opener that starts before the writer finishes sees the complete header.
fn completed_during_the_wait(bytes: &[u8], finish: impl FnOnce(&SharedMemory) + Send) {
    let mut guard = Guard::new();
    let (name, shm) = lay(&mut guard, bytes, I16_2X3.len());
    std::thread::scope(|scope| {
        scope.spawn(|| {
            std::thread::sleep(Duration::from_millis(50));
            finish(&shm);
        });
        let array = SharedArray::<i16>::options().wait(Duration::from_secs(20)).open(&name).unwrap();
        assert_eq!(array.to_vec().unwrap(), [0, 10, 1, 11, 2, 12]);
    });
}

#[test]
fn opener_waits_for_the_magic() {
    let mut bytes = fixture();
    bytes[..4].fill(0);
    completed_during_the_wait(&bytes, |shm| shm.atomic_u32s(0, 1).unwrap()[0].store(MAGIC, Ordering::Release));
}

#[test]
fn opener_waits_for_dimensions_written_after_the_magic() {
    // The Julia writer stores the fixed fields, magic included, before the dimensions.
    let mut bytes = fixture();
    bytes[16..32].fill(0);
    completed_during_the_wait(&bytes, |shm| shm.write_at(16, &I16_2X3[16..32]).unwrap());
}

// ---------------------------------------------------------------------------------------------
// The rest of the API.

#[test]
fn open_or_create_says_which() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("ooc"));
    let (a, outcome) = SharedArray::<u32>::options().perms(0o640).open_or_create(&name, &[4, 2]).unwrap();
    assert_eq!(outcome, Outcome::Created);
    a.set(&[3, 1], 7).unwrap();
    let (b, outcome) = SharedArray::<u32>::options().open_or_create(&name, &[4, 2]).unwrap();
    assert_eq!((outcome, b.get(&[3, 1]).unwrap()), (Outcome::Opened, 7));
    let other_dims = SharedArray::<u32>::options().open_or_create(&name, &[2, 4]).unwrap_err();
    assert!(other_dims.to_string().contains("u32 4x2"), "{other_dims}");
    let other_type = SharedArray::<i32>::options().open_or_create(&name, &[4, 2]).unwrap_err();
    assert!(matches!(other_type, Error::TypeMismatch { found: ElementType::U32, .. }), "{other_type:?}");

    // By key: persistent, as the key must stay usable.
    let key = guard.track(common::unique_key());
    let options = SharedArray::<u8>::options().volatile(false);
    assert_eq!(options.open_or_create(&key, &[10]).unwrap().1, Outcome::Created);
    assert_eq!(options.open_or_create(&key, &[10]).unwrap().1, Outcome::Opened);
}

#[test]
fn bad_dimensions_and_indices() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("bad"));
    for dims in [&[][..], &[0], &[3, 0], &[usize::MAX, 2]] {
        let error = SharedArray::<f32>::create(&name, dims).unwrap_err();
        assert!(matches!(error, Error::InvalidArgument { .. }), "{dims:?}: {error:?}");
    }
    assert!(!common::posix_exists(&name.to_string()));
    let a = SharedArray::<u16>::create(&name, &[2, 3]).unwrap();
    for index in [&[2, 0][..], &[0, 3], &[0], &[0, 0, 0]] {
        assert!(matches!(a.get(index), Err(Error::InvalidArgument { .. })), "{index:?}");
    }
    assert!(a.read_into(&mut [0; 5]).is_err());
    assert!(a.write_from(&[0; 7]).is_err());
    assert!(a.read_range(5, &mut [0; 2]).is_err());
    assert!(a.read_range(usize::MAX, &mut [0; 2]).is_err());
    a.write_range(4, &[8, 9]).unwrap();
    assert_eq!(a.get(&[1, 2]).unwrap(), 9);
}

#[test]
fn readonly_handles_do_not_write() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("ro"));
    let a = SharedArray::<i8>::create(&name, &[3]).unwrap();
    a.write_from(&[-1, 0, 1]).unwrap();
    let r = SharedArray::<i8>::open_readonly(&name).unwrap();
    assert!(matches!(r.set(&[0], 5), Err(Error::ReadOnly { .. })));
    assert!(matches!(r.write_from(&[1, 2, 3]), Err(Error::ReadOnly { .. })));
    // SAFETY: nothing writes the array while the slice lives.
    assert!(matches!(unsafe { r.as_mut_slice() }, Err(Error::ReadOnly { .. })));
    // SAFETY: as above.
    assert_eq!(unsafe { r.as_slice() }, [-1, 0, 1]);
}

#[test]
fn element_types() {
    for (i, element) in ElementType::ALL.into_iter().enumerate() {
        assert_eq!(usize::from(element.code()), i + 1);
        assert_eq!(ElementType::from_code(element.code()), Some(element));
        assert_eq!(element.name().parse::<ElementType>().unwrap(), element);
    }
    assert_eq!(ElementType::from_code(0), None);
    assert_eq!(ElementType::from_code(13), None);
    assert!("f16".parse::<ElementType>().is_err());
    let sizes = [1, 1, 2, 2, 4, 4, 8, 8, 4, 8, 8, 16];
    assert_eq!(ElementType::ALL.map(ElementType::size), sizes);
    assert_eq!(size_of::<Complex32>(), 8);
    assert_eq!(size_of::<Complex64>(), 16);
    assert_eq!(<Complex64 as Element>::TYPE, ElementType::C64);
}

#[test]
fn many_dimensions_use_a_larger_offset() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("ndims"));
    let dims = [1, 2, 1, 1, 1, 1, 1, 3];
    let a = SharedArray::<u64>::create(&name, &dims).unwrap();
    assert_eq!((a.header().data_offset(), a.memory().len()), (128, 128 + 6 * 8));
    a.set(&[0, 1, 0, 0, 0, 0, 0, 2], 42).unwrap();
    assert_eq!(a.to_vec().unwrap()[5], 42);
    assert_eq!(array::inspect(&name).unwrap().to_string(), "u64 1x2x1x1x1x1x1x3");
}

#[cfg(feature = "ndarray")]
#[test]
fn ndarray_views_are_column_major() {
    let mut guard = Guard::new();
    let name = guard.track(common::unique_name("nd"));
    let a = SharedArray::<i16>::create(&name, &[2, 3]).unwrap();
    // SAFETY: nothing else accesses the array while the view lives.
    let mut view = unsafe { a.view_mut() }.unwrap();
    view[[1, 2]] = 12;
    view[[0, 1]] = 1;
    drop(view);
    assert_eq!((a.get(&[1, 2]).unwrap(), a.get(&[0, 1]).unwrap()), (12, 1));
    assert_eq!(a.to_vec().unwrap(), [0, 0, 1, 0, 0, 12]);
    // SAFETY: nothing writes the array while the view lives.
    let view = unsafe { a.view() };
    assert_eq!(view.shape(), [2, 3]);
    assert_eq!(view[[1, 2]], 12);
    let readonly = SharedArray::<i16>::open_readonly(&name).unwrap();
    // SAFETY: the call fails before any view exists.
    assert!(unsafe { readonly.view_mut() }.is_err());
}
