//! `read` and `write`: the bytes of an object, to stdout and from stdin.

use std::io::{self, Read, Write};

use ipcmem::{Holding, Id, SharedMemory};

use crate::failure::{Failure, Outcome};

/// The example of `read --help`.
pub const READ_HELP: &str = "\
Example:
  $ ipcmem read /frames --offset 1KiB --length 16 | od -An -tx1
  $ ipcmem read id:3 > segment.bin";

/// The example of `write --help`.
pub const WRITE_HELP: &str = "\
Nothing is written if the input would run past the end of the object.

Example:
  $ printf 'hello' | ipcmem write /frames --offset 16
  $ ipcmem write key:0x2a0010ff < segment.bin";

/// How many bytes are copied at a time.
const CHUNK: usize = 1 << 20;

/// `ipcmem read OBJ [--offset N] [--length N]`: opens read-only, so read permission is enough,
/// and as a look (`Holding::Look`): reading an abandoned volatile object leaves it for `gc`.
pub fn read(object: &Id, offset: usize, length: Option<usize>) -> Outcome {
    let shm = SharedMemory::look(object)?;
    let room = room_after(object, &shm, offset)?;
    let length = length.unwrap_or(room);
    if length > room {
        return Err(ipcmem::Error::OutOfBounds { object: object.to_string(), offset, length, len: shm.len() }.into());
    }
    let mut out = io::stdout().lock();
    let mut buffer = vec![0; length.min(CHUNK)];
    let mut done = 0;
    while done < length {
        let chunk = &mut buffer[..(length - done).min(CHUNK)];
        shm.read_at(offset + done, chunk)?;
        out.write_all(chunk).map_err(|error| Failure::io("stdout", &error))?;
        done += chunk.len();
    }
    out.flush().map_err(|error| Failure::io("stdout", &error))
}

/// `ipcmem write OBJ [--offset N]`: reads all of stdin first, so that input that would run past
/// the end is refused before a byte is written. Opens as a look (`Holding::Look`): the bytes
/// written stay for the object's holders, and an abandoned volatile object is left for `gc`.
pub fn write(object: &Id, offset: usize) -> Outcome {
    let shm = SharedMemory::options().holding(Holding::Look).open(object)?;
    let room = room_after(object, &shm, offset)?;
    let mut data = Vec::new();
    // One byte more than fits tells that the input is too long, without reading all of it.
    let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
    io::stdin().lock().take(limit).read_to_end(&mut data).map_err(|error| Failure::io("stdin", &error))?;
    if data.len() > room {
        return Err(Failure::about(
            object,
            format!(
                "the input runs past the end: more than {room} bytes from offset {offset} of a {}-byte object; nothing was written",
                shm.len()
            ),
        ));
    }
    shm.write_at(offset, &data)?;
    Ok(())
}

/// The bytes from `offset` to the end; an offset past the end is an error.
fn room_after(object: &Id, shm: &SharedMemory, offset: usize) -> Result<usize, Failure> {
    shm.len()
        .checked_sub(offset)
        .ok_or_else(|| Failure::about(object, format!("offset {offset} is past the end ({} bytes)", shm.len())))
}
