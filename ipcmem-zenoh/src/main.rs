//! `ipcmem-bridge`: mirror an ipcmem frame stream between machines over Zenoh.

fn main() {}
