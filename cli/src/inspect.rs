//! `list` and `info`: what exists, read without attaching, mapping or locking anything (see
//! `ipcmem::inventory`), so that `nattch` and volatile objects and semaphores are left as they
//! are; then the array each object holds (see `array::header_of`): `info` attaches a System V
//! segment for it only after taking the segment's figures.

use std::io::{self, Write};

use ipcmem::inventory::{self, Filter};

use crate::args::Target;
use crate::failure::{Failure, Outcome};
use crate::report::{self, Contents, ObjectJson, Table};
use crate::users::Users;

/// The example of `list --help`.
pub const LIST_HELP: &str = "\
Named semaphores (/dev/shm/sem.NAME, KIND sem) are listed as sem:/NAME, after the POSIX
objects; --posix leaves them out, --sem lists only them.

STATUS: volatile (held), abandoned (volatile, used by no process: `ipcmem gc` removes it),
unfinished (a creation killed half way, used by no process: gc removes it), unknown (who uses
it cannot be known here, as inside a child PID namespace: never called abandoned), dest
(System V, marked for removal: goes at its last detach), locked, and the shared array the
object holds (`ipcmem array`, as f32 640x480) or the frame stream (`ipcmem stream`, as
stream f32 512x512 x4: type, frame dims, slots), or -. list attaches no System V segment, so it
shows the arrays of POSIX objects only: `ipcmem info id:N` reads a segment's. For a semaphore:
value=N, its count, and volatile (made volatile by ipcmem, held) or unheld (volatile, held by no
ipcmem handle: gc leaves semaphores, `ipcmem rm sem:/NAME` removes it).

Example:
  $ ipcmem list
  KIND   OBJECT      KEY         SIZE  MODE  OWNER  NATTCH  CPID  STATUS
  posix  /frames     -           4MiB  0640  root        -     -  -
  sem    sem:/ready  -             32  0600  root        -     -  value=2
  sysv   id:3        0x2a0010ff  1000  0600  root        1  4242  -
  $ ipcmem list --sysv --json
  $ ipcmem list --sem";

/// The example of `info --help`.
pub const INFO_HELP: &str = "\
JSON fields (null where a kind has none): kind, name, id, key, size, mode, uid, user, gid,
nattch, cpid, lpid, atime, dtime, ctime, marked_for_removal, volatile, in_use, array ({\"type\":
\"f32\", \"dims\": [640, 480]} for a shared array, else null), stream (for a frame stream, as
`ipcmem stream info --json` gives it: type, frame_dims, slots, serial, writer_pid, writer_alive...;
else null); then object, cuid, cgid, mtime,
locked, value (the count of a named semaphore), name_bytes (the exact bytes of a name that is
not UTF-8, else null; tables escape control characters and such bytes). kind is \"posix\", \"sysv\" or \"semaphore\"
(sem:/name: its name is /name, as sem_open takes it; its count is read from its file, which is
neither opened as a semaphore nor locked, so a volatile semaphore is never removed by a look). To read an array header, info attaches a System V segment read-only for a moment,
after taking its figures: nattch never counts this command, but the segment then shows info as
the last process to attach and detach (lpid, atime, dtime). A POSIX object is read as a file,
neither mapped nor locked.

Example:
  $ ipcmem info /frames --json
  {
    \"kind\": \"posix\",
    \"name\": \"/frames\",
    \"size\": 4194304,
    ...
  $ ipcmem info key:0x2a0010ff
  $ ipcmem info sem:/ready --json";

/// `ipcmem list [--posix | --sysv | --sem] [--json]`.
pub fn list(filter: Filter, json: bool) -> Outcome {
    // The arrays of POSIX objects only: attaching every System V segment would rewrite the
    // last attach and detach (pid, times) of each.
    let objects: Vec<_> = inventory::list(filter)?
        .into_iter()
        .map(|info| {
            let contents = Contents::of(&info, false);
            (info, contents)
        })
        .collect();
    let mut users = Users::default();
    let text = if json {
        let shown: Vec<ObjectJson> =
            objects.iter().map(|(info, contents)| ObjectJson::new(info, contents, &mut users)).collect();
        to_json(&shown)
    } else {
        Table::new(&objects, &mut users).lines().join("\n")
    };
    print_line(&text)
}

/// `ipcmem info OBJ [--json]`.
pub fn info(target: &Target, json: bool) -> Outcome {
    // The figures (nattch, lpid, times) before the attach that reads a System V header.
    let found = match target {
        Target::Memory(object) => inventory::info(object)?,
        Target::Semaphore(name) => inventory::semaphore(name)?,
    };
    let contents = Contents::of(&found, true);
    let shown = ObjectJson::new(&found, &contents, &mut Users::default());
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
