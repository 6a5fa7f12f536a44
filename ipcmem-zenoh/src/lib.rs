//! Mirror ipcmem frame streams between machines over [Zenoh](https://zenoh.io).
//!
//! A publishing bridge reads a local stream ([`ipcmem::stream`]) and puts each frame on a Zenoh
//! key expression as one [`message`]; a subscribing bridge writes the frames it receives into a
//! local stream of its own machine, keeping the source's serials. The core library and the
//! `ipcmem` tool never depend on Zenoh: only this crate does.
//!
//! - [`publish`] and [`subscribe`] are the two halves, for programs that embed a bridge; the
//!   binary `ipcmem-bridge` runs one of them with a status line every second.
//! - [`SessionOptions`] opens the Zenoh session from endpoints (`tcp/HOST:PORT`).
//! - [`message`] is the wire layout (versioned, documented in `docs/zenoh-message.md`).
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use ipcmem::stream::RawReader;
//! use ipcmem_zenoh::{Context, SessionOptions, Stats, SubscribeOptions};
//!
//! let session = SessionOptions {
//!     connect: vec!["tcp/192.168.1.10:7447".into()],
//!     multicast: false,
//!     ..SessionOptions::default()
//! }
//! .open()?;
//! let stop = AtomicBool::new(false); // raise it (from another thread) to stop
//! let stats = Stats::default(); // frames, bytes, lost: read them while it runs
//! let context = Context { stop: &stop, stats: &stats, on_event: &|event| eprintln!("{event}") };
//!
//! // One side:
//! ipcmem_zenoh::publish(RawReader::open("/cam")?, &session, "lab/cam1", &context)?;
//! // or the other:
//! ipcmem_zenoh::subscribe(&session, "lab/cam1", "/cam", &SubscribeOptions::default(), &context)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod bridge;
pub mod message;
pub mod publish;
pub mod session;
pub mod status;
pub mod stop;
pub mod subscribe;

pub use bridge::{BridgeError, Context, Event};
pub use publish::{publish, FrameSource};
pub use subscribe::{subscribe, SubscribeOptions};

pub use session::{SessionError, SessionOptions};
pub use status::{Stats, Totals};
pub use zenoh;

/// `640x480`.
pub(crate) fn dims_text(dims: &[usize]) -> String {
    dims.iter().map(ToString::to_string).collect::<Vec<_>>().join("x")
}

/// Zenoh's error message without the source locations it puts in (` at /…/file.rs:777.`),
/// which say nothing to a user.
pub fn zenoh_reason(error: &impl std::fmt::Display) -> String {
    let mut text = error.to_string();
    while let Some(at) = text.find(" at /") {
        let Some(rs) = text[at..].find(".rs:").map(|rs| at + rs + 4) else { break };
        let digits = text[rs..].find(|c: char| !c.is_ascii_digit()).map_or(text.len(), |end| rs + end);
        let end = if text[digits..].starts_with('.') { digits + 1 } else { digits };
        text.replace_range(at..end, "");
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn zenoh_reason_drops_source_locations() {
        let text = "Endpoints must be of the form x: nonsense at /root/.cargo/a/endpoint.rs:615., location: 1";
        assert_eq!(super::zenoh_reason(&text), "Endpoints must be of the form x: nonsense, location: 1");
        assert_eq!(super::zenoh_reason(&"empty chunks at /x/borrowed.rs:777."), "empty chunks");
        assert_eq!(super::zenoh_reason(&"look at /dev/shm"), "look at /dev/shm");
    }
}
