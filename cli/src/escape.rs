//! Names as a terminal may show them: a name in `/dev/shm` may hold any byte but `/` and NUL,
//! so a newline would fake a row of a table and an escape sequence would recolour or rewrite
//! the screen. Tables and lines escape them; JSON keeps names exact (JSON escapes controls).

use std::fmt::Write;

/// `bytes` with every control character, every character that reorders or hides text, every
/// byte that is not UTF-8, and the backslash itself escaped: `\n`, `\t`, `\r`, `\\`, `\x1b`,
/// `\u{202e}`, `\xff`. Plain names come out as they are.
pub fn escaped(bytes: &[u8]) -> String {
    let mut shown = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            push_char(&mut shown, c);
        }
        for byte in chunk.invalid() {
            // Writing to a String cannot fail.
            let _ = write!(shown, "\\x{byte:02x}");
        }
    }
    shown
}

fn push_char(shown: &mut String, c: char) {
    match c {
        '\\' => shown.push_str("\\\\"),
        '\n' => shown.push_str("\\n"),
        '\t' => shown.push_str("\\t"),
        '\r' => shown.push_str("\\r"),
        // Writing to a String cannot fail.
        c if c.is_ascii_control() => drop(write!(shown, "\\x{:02x}", u32::from(c))),
        c if c.is_control() || hides_or_reorders(c) => drop(write!(shown, "\\u{{{:x}}}", u32::from(c))),
        c => shown.push(c),
    }
}

/// The format characters that change how the text around them shows: bidirectional overrides
/// and isolates (which can make a name read as another), zero-width characters, the byte-order
/// mark.
fn hides_or_reorders(c: char) -> bool {
    matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on() {
        assert_eq!(escaped(b"/frames"), "/frames");
        assert_eq!(escaped(b"/a\nposix  /fake"), "/a\\nposix  /fake");
        assert_eq!(escaped(b"/\x1b[31mred"), "/\\x1b[31mred");
        assert_eq!(escaped(b"/back\\slash"), "/back\\\\slash");
        assert_eq!(escaped(b"/bad\xff\xfe"), "/bad\\xff\\xfe");
        assert_eq!(escaped("/\u{202e}gpj.exe".as_bytes()), "/\\u{202e}gpj.exe");
        assert_eq!(escaped("/caf\u{e9}".as_bytes()), "/caf\u{e9}");
        assert_eq!(escaped("/\u{9b}31m".as_bytes()), "/\\u{9b}31m");
    }

    proptest! {
        /// Whatever the bytes, the shown name has no control character and reads back: two
        /// names never show alike.
        #[test]
        fn escaped_names_are_printable_and_distinct(a in prop::collection::vec(any::<u8>(), 0..40),
                                                    b in prop::collection::vec(any::<u8>(), 0..40)) {
            let shown = escaped(&a);
            prop_assert!(!shown.chars().any(|c| c.is_control() || hides_or_reorders(c)), "{shown:?}");
            if a != b {
                prop_assert_ne!(shown, escaped(&b));
            }
        }
    }
}
