//! User names of user ids, from the system's user database (`getpwuid_r(3)`).

use std::collections::HashMap;
use std::ffi::CStr;

/// Looks up user names, each uid once.
#[derive(Debug, Default)]
pub struct Users(HashMap<u32, Option<String>>);

impl Users {
    /// The name of `uid`, if the user database has one.
    pub fn name(&mut self, uid: u32) -> Option<String> {
        self.0.entry(uid).or_insert_with(|| lookup(uid)).clone()
    }
}

/// The largest buffer tried for one entry of the user database.
const MAX_BUFFER: usize = 1 << 20;

fn lookup(uid: u32) -> Option<String> {
    let mut buffer = vec![0_u8; 1024];
    loop {
        // SAFETY: passwd is a C struct of pointers and integers, for which all zeros is valid.
        let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call: `entry` and `result` are exclusively
        // borrowed, and `buffer` has `buffer.len()` writable bytes for the strings of the entry.
        let error =
            unsafe { libc::getpwuid_r(uid, &raw mut entry, buffer.as_mut_ptr().cast(), buffer.len(), &raw mut result) };
        if error == libc::ERANGE && buffer.len() < MAX_BUFFER {
            buffer.resize(buffer.len() * 2, 0);
            continue;
        }
        if error != 0 || result.is_null() || entry.pw_name.is_null() {
            return None;
        }
        // SAFETY: on success pw_name points to a NUL-terminated string inside `buffer`, which
        // is alive here.
        let name = unsafe { CStr::from_ptr(entry.pw_name) };
        return Some(name.to_string_lossy().into_owned());
    }
}
