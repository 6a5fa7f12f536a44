//! `array create` and `array show`: typed N-dimensional arrays in the layout of the Julia package
//! (see `ipcmem::array`), and the array that `list` and `info` show for an object.

use std::io::{self, BufWriter, Write};

use ipcmem::array::{self, Complex32, Complex64, Element, ElementType, Header, MAX_DIMS};
use ipcmem::inventory::{Kind, ObjectInfo};
use ipcmem::{Holding, Id, SharedArray, SharedMemory};

use crate::args::Mode;
use crate::failure::{self, Failure, Outcome};
use crate::inspect::print_line;
use crate::manage;

/// The example of `array --help`.
pub const ARRAY_HELP: &str = "\
An array is a header (element type, dimensions) followed by its elements, column-major (the
first index varies fastest), in the layout of the Julia package InterProcessCommunication.jl:
Julia's WrappedArray, ipcmem::SharedArray and NumPy (see the README) open it by name or id.
`ipcmem info` shows the type and dims of an array, as `ipcmem list` does for POSIX objects.

Example:
  $ ipcmem array create /img f32 640x480
  /img
  $ ipcmem array show /img --limit 4
  0 0 0 0
  ipcmem: /img: showing the first 4 of 307200 values (--limit all shows every one)";

/// The example of `array create --help`.
pub const CREATE_HELP: &str = "\
The array is persistent, as with `ipcmem create`: it stays until `ipcmem rm`. Its elements are
zero; its object has exactly the size of header and elements.

Example:
  $ ipcmem array create /img f32 640x480 --mode 0640
  /img
  $ ipcmem array create private c64 2x3x4
  id:32781";

/// The example of `array show --help`.
pub const SHOW_HELP: &str = "\
Values are printed in memory order, one line per run of the first dimension (a column of a
matrix), separated by spaces; a complex value as re+imi (1.5-0.5i). Integers and floats are
exact: a float prints as the shortest decimal that reads back as the same value, with an
exponent when very large or small (1e30). When not every value is shown, stdout holds only the
values and one line on stderr says how many there are. Opens the object read-only.

Example:
  $ ipcmem array show /img --limit 6
  $ ipcmem array show id:32781 --limit all";

/// Dimensions, first (fastest varying) first; at least one, each at least 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dims(pub Vec<usize>);

/// Parses an element type: `i8` … `u64`, `f32`, `f64`, `c32`, `c64`.
pub fn parse_element(text: &str) -> Result<ElementType, String> {
    let types = "i8 i16 i32 i64 u8 u16 u32 u64 f32 f64, c32 or c64 (complex of two f32, of two f64)";
    text.parse().map_err(|_| format!("{text:?} is not an element type: one of {types}"))
}

/// Parses dimensions: numbers of at least 1 separated by `x`, as `640x480`, `10` or `2x3x4`,
/// whose array, of any element type, could exist on this machine.
pub fn parse_dims(text: &str) -> Result<Dims, String> {
    let dims = text.split('x').map(parse_dim).collect::<Result<Vec<usize>, String>>()?;
    if dims.len() > MAX_DIMS {
        return Err(format!("{} dimensions: an array has at most {MAX_DIMS}", dims.len()));
    }
    // Checked with the largest element type, so that any TYPE given with them fits: the smaller
    // types lose only arrays of more than 2^59 bytes, which no machine can map.
    Header::new(ElementType::C64, &dims).map_err(|_| format!("{text}: too many elements for this machine"))?;
    Ok(Dims(dims))
}

fn parse_dim(part: &str) -> Result<usize, String> {
    if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
        return Err("dimensions are numbers separated by x, as 640x480, 10 or 2x3x4".into());
    }
    match part.parse::<usize>() {
        Ok(0) => Err("every dimension must be at least 1".into()),
        Ok(dim) => Ok(dim),
        Err(_) => Err(format!("dimension {part} is too large for this machine")),
    }
}

/// Parses the limit of `show`: a number of values, or `all`.
pub fn parse_limit(text: &str) -> Result<usize, String> {
    if text == "all" {
        return Ok(usize::MAX);
    }
    text.parse().map_err(|_| format!("{text:?} is not a limit: write a number of values, or all"))
}

/// Calls the generic `$function::<T>(…)`, `T` the Rust type of the element type `$element`.
macro_rules! for_element {
    ($element:expr, $function:ident($($arg:expr),*)) => {
        match $element {
            ElementType::I8 => $function::<i8>($($arg),*),
            ElementType::U8 => $function::<u8>($($arg),*),
            ElementType::I16 => $function::<i16>($($arg),*),
            ElementType::U16 => $function::<u16>($($arg),*),
            ElementType::I32 => $function::<i32>($($arg),*),
            ElementType::U32 => $function::<u32>($($arg),*),
            ElementType::I64 => $function::<i64>($($arg),*),
            ElementType::U64 => $function::<u64>($($arg),*),
            ElementType::F32 => $function::<f32>($($arg),*),
            ElementType::F64 => $function::<f64>($($arg),*),
            ElementType::C32 => $function::<Complex32>($($arg),*),
            ElementType::C64 => $function::<Complex64>($($arg),*),
        }
    };
}

/// `ipcmem array create OBJ TYPE DIMS [--mode MODE]`: exclusive and persistent, as `create`.
pub fn create(object: &Id, element: ElementType, dims: &Dims, mode: Mode) -> Outcome {
    // As `create`: the library gives the owner read and write (the creator writes the header);
    // a mode without them is set once the array is complete.
    let shm = for_element!(element, create_typed(object, &dims.0, mode | 0o600))?;
    if mode & 0o600 != 0o600 {
        if let Err(error) = manage::set_mode(&shm.id(), mode) {
            let _ = shm.remove();
            return Err(error.into());
        }
    }
    print_line(&shm.id().to_string())
}

fn create_typed<T: Element>(object: &Id, dims: &[usize], perms: Mode) -> ipcmem::Result<SharedMemory> {
    let array = SharedArray::<T>::options().volatile(false).perms(perms).create(object, dims)?;
    Ok(array.into_memory())
}

/// `ipcmem array show OBJ [--limit N]`.
pub fn show(object: &Id, limit: usize) -> Outcome {
    // Waits a moment for a header still being written, as every opener of an array does.
    let header = array::inspect(object)?;
    for_element!(header.element(), show_typed(object, limit))
}

/// How many values are read at a time: the whole array is never copied at once.
const CHUNK: usize = 1 << 16;

fn show_typed<T: Value>(object: &Id, limit: usize) -> Outcome {
    // Typed open: checks the header again, and fails if the array changed type meanwhile. A
    // look: showing an abandoned volatile array leaves it for `gc`.
    let array = SharedArray::<T>::options().readonly(true).holding(Holding::Look).open(object)?;
    let count = array.len().min(limit);
    let per_line = array.dims()[0];
    let stdout = |error: io::Error| Failure::io("stdout", &error);
    let mut out = BufWriter::new(io::stdout().lock());
    let mut values = vec![T::default(); count.min(CHUNK)];
    let mut first = 0;
    while first < count {
        let chunk = &mut values[..(count - first).min(CHUNK)];
        array.read_range(first, chunk)?;
        for (position, value) in (first..).zip(chunk.iter()) {
            let end = if (position + 1) % per_line == 0 || position + 1 == count { "\n" } else { " " };
            write!(out, "{}{end}", value.text()).map_err(stdout)?;
        }
        first += chunk.len();
    }
    out.flush().map_err(stdout)?;
    if count < array.len() {
        failure::report(&format!(
            "{object}: showing the first {count} of {} values (--limit all shows every one)",
            array.len()
        ));
    }
    Ok(())
}

/// An element as `show` prints it.
trait Value: Element + Default + Copy {
    fn text(self) -> String;
}

macro_rules! integer_values {
    ($($integer:ty),*) => {
        $(impl Value for $integer {
            fn text(self) -> String {
                self.to_string()
            }
        })*
    };
}

integer_values!(i8, u8, i16, u16, i32, u32, i64, u64);

impl Value for f32 {
    fn text(self) -> String {
        float(self, f64::from(self.abs()))
    }
}

impl Value for f64 {
    fn text(self) -> String {
        float(self, self.abs())
    }
}

impl Value for Complex32 {
    fn text(self) -> String {
        complex(&self.re.text(), self.im.is_sign_negative(), &self.im.abs().text())
    }
}

impl Value for Complex64 {
    fn text(self) -> String {
        complex(&self.re.text(), self.im.is_sign_negative(), &self.im.abs().text())
    }
}

/// The shortest decimal that reads back as `value` (Rust's `Display`), with an exponent where
/// the plain form would be long: magnitudes from 1e16, and below 1e-5.
fn float(value: impl std::fmt::Display + std::fmt::LowerExp, magnitude: f64) -> String {
    if magnitude.is_finite() && magnitude != 0.0 && !(1e-5..1e16).contains(&magnitude) {
        format!("{value:e}")
    } else {
        value.to_string()
    }
}

/// `re+imi` or `re-imi`.
fn complex(re: &str, im_negative: bool, im_magnitude: &str) -> String {
    let sign = if im_negative { '-' } else { '+' };
    format!("{re}{sign}{im_magnitude}i")
}

/// The array that `object` holds, as `list` and `info` show it; `None` if it holds none, or a
/// header that is incomplete, invalid or unreadable (never an error, never a wait).
///
/// A POSIX object is read as a file, neither mapped nor locked, so that looking cannot change
/// when a volatile object is destroyed. A System V segment can only be read attached, which
/// changes its attach count for a moment and, for good, its last attach and detach (pid and
/// times): so only when `attach` is set, which `info` does after reading the segment's
/// figures, and `list`, which would rewrite those of every segment, does not.
pub fn header_of(object: &ObjectInfo, attach: bool) -> Option<Header> {
    match (&object.name, object.id) {
        // A semaphore's name is not that of a shared memory object, and it holds no array.
        _ if object.kind == Kind::Semaphore => None,
        // A name that is not UTF-8 cannot be opened by its lossy form (which may name another).
        _ if object.name_bytes.is_some() => None,
        (Some(name), _) => array::try_inspect(name),
        (None, Some(id)) if attach => array::try_inspect(id),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn element_types() {
        assert_eq!(parse_element("c32"), Ok(ElementType::C32));
        assert_eq!(parse_element("u64"), Ok(ElementType::U64));
        for bad in ["", "f16", "F32", "float", "c128", " i8"] {
            assert!(parse_element(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn dims() {
        assert_eq!(parse_dims("640x480"), Ok(Dims(vec![640, 480])));
        assert_eq!(parse_dims("10"), Ok(Dims(vec![10])));
        assert_eq!(parse_dims("2x3x4"), Ok(Dims(vec![2, 3, 4])));
        for bad in ["", "x", "0", "2x0", "2x", "x2", "2xx3", "2*3", "2X3", "-1", "+2", " 2", "1e3", "2x3 "] {
            assert!(parse_dims(bad).is_err(), "{bad:?}");
        }
        assert!(parse_dims("99999999999999999999").is_err());
        assert!(parse_dims("4294967296x4294967296").is_err());
        assert!(parse_dims(&vec!["1"; MAX_DIMS + 1].join("x")).is_err());
    }

    #[test]
    fn limits() {
        assert_eq!(parse_limit("100"), Ok(100));
        assert_eq!(parse_limit("0"), Ok(0));
        assert_eq!(parse_limit("all"), Ok(usize::MAX));
        assert!(parse_limit("-1").is_err());
        assert!(parse_limit("ALL").is_err());
    }

    #[test]
    fn values() {
        assert_eq!((-128_i8).text(), "-128");
        assert_eq!(u64::MAX.text(), "18446744073709551615");
        assert_eq!(1.5_f32.text(), "1.5");
        assert_eq!(0.1_f32.text(), "0.1");
        assert_eq!(1.0_f64.text(), "1");
        assert_eq!((-0.0_f64).text(), "-0");
        assert_eq!(1e30_f64.text(), "1e30");
        assert_eq!(f32::MAX.text(), "3.4028235e38");
        assert_eq!(1.5e-7_f64.text(), "1.5e-7");
        assert_eq!(f64::NAN.text(), "NaN");
        assert_eq!(f32::NEG_INFINITY.text(), "-inf");
        assert_eq!(Complex32::new(1.0, 2.0).text(), "1+2i");
        assert_eq!(Complex64::new(1.5, -0.5).text(), "1.5-0.5i");
        assert_eq!(Complex64::new(-1.0, f64::INFINITY).text(), "-1+infi");
    }
}
