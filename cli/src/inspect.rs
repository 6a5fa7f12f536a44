//! `list` and `info`: what exists, read without attaching, opening or locking anything (see
//! `ipcmem::inventory`), so that `nattch` and volatile objects are left as they are.

use std::io::{self, Write};

use ipcmem::inventory::{self, Filter};
use ipcmem::Id;

use crate::failure::{Failure, Outcome};
use crate::report::{self, ObjectJson, Table};
use crate::users::Users;

/// The example of `list --help`.
pub const LIST_HELP: &str = "\
STATUS: volatile (held), abandoned (volatile, held by no one: `ipcmem gc` removes it),
dest (System V, marked for removal: goes at its last detach), locked, or -.

Example:
  $ ipcmem list
  KIND   OBJECT   KEY         SIZE  MODE  OWNER  NATTCH  CPID  STATUS
  posix  /frames  -           4MiB  0640  root        -     -  -
  sysv   id:3     0x2a0010ff  1000  0600  root        1  4242  -
  $ ipcmem list --sysv --json";

/// The example of `info --help`.
pub const INFO_HELP: &str = "\
JSON fields (null where a kind has none): kind, name, id, key, size, mode, uid, user, gid,
nattch, cpid, lpid, atime, dtime, ctime, marked_for_removal, volatile, in_use; then object,
cuid, cgid, mtime, locked. nattch never counts this command: it attaches nothing.

Example:
  $ ipcmem info /frames --json
  {
    \"kind\": \"posix\",
    \"name\": \"/frames\",
    \"size\": 4194304,
    ...
  $ ipcmem info key:0x2a0010ff";

/// `ipcmem list [--posix | --sysv] [--json]`.
pub fn list(filter: Filter, json: bool) -> Outcome {
    let objects = inventory::list(filter)?;
    let mut users = Users::default();
    let text = if json {
        let array: Vec<ObjectJson> = objects.iter().map(|info| ObjectJson::new(info, &mut users)).collect();
        to_json(&array)
    } else {
        Table::new(&objects, &mut users).lines().join("\n")
    };
    print_line(&text)
}

/// `ipcmem info OBJ [--json]`.
pub fn info(object: &Id, json: bool) -> Outcome {
    let found = inventory::info(object)?;
    let shown = ObjectJson::new(&found, &mut Users::default());
    let text = if json { to_json(&shown) } else { report::info_lines(&shown).join("\n") };
    print_line(&text)
}

fn to_json(value: &impl serde::Serialize) -> String {
    // Serialising plain structs of strings, numbers and booleans cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

/// Prints `text` and a newline on stdout.
pub fn print_line(text: &str) -> Outcome {
    let mut out = io::stdout().lock();
    writeln!(out, "{text}").and_then(|()| out.flush()).map_err(|error| Failure::io("stdout", &error))
}
