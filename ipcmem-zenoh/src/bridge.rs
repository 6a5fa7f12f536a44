//! What both halves of a bridge share: their error, their events, and how a caller drives
//! them (a stop flag, counters, and a place to report events).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ipcmem::array::ElementType;

use crate::message::DecodeError;
use crate::status::Stats;

/// How often a bridge's loop looks at its stop flag (and at the remote publisher's liveliness)
/// while no frame comes.
pub const POLL: Duration = Duration::from_millis(20);

/// Why a bridge stopped before it was asked to.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The local stream failed (not a stream, a writer already, no permission, …).
    #[error(transparent)]
    Stream(#[from] ipcmem::Error),
    /// Zenoh refused an operation.
    #[error("zenoh: cannot {what} on key expression {key:?}: {reason}")]
    Zenoh {
        /// What was attempted.
        what: &'static str,
        /// The key expression.
        key: String,
        /// Zenoh's reason.
        reason: String,
    },
}

impl BridgeError {
    pub(crate) fn zenoh(what: &'static str, key: &str, error: &zenoh::Error) -> BridgeError {
        BridgeError::Zenoh { what, key: key.to_owned(), reason: crate::zenoh_reason(error) }
    }
}

/// Something worth telling the user, as it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The publisher's source stream has a writer (again): frames flow.
    SourceAlive,
    /// The publisher's source stream lost its writer (`reason`): the bridge withdraws its
    /// liveliness token, so that subscribers report the writer gone too, and waits for a new one.
    SourceGone {
        /// Why, as the stream says it.
        reason: String,
    },
    /// Subscribers now match the publisher's key expression (`true`), or none does any more.
    Subscribers {
        /// Whether any subscriber matches.
        matching: bool,
    },
    /// The subscriber made or took over its local stream.
    StreamReady {
        /// `created` or `attached to the existing stream`.
        how: &'static str,
        /// The element type.
        element: ElementType,
        /// The frame dims.
        dims: Vec<usize>,
    },
    /// The subscriber re-created its local stream.
    StreamRecreated {
        /// Why.
        reason: String,
    },
    /// The remote publisher went away: the subscriber closed its local stream's writer.
    PublisherGone,
    /// A remote publisher appeared.
    PublisherAlive,
    /// A message that does not decode was refused (counted, not written).
    Refused(DecodeError),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::SourceAlive => f.write_str("source stream has a writer: publishing"),
            Self::SourceGone { reason } => {
                write!(f, "source stream's writer is gone ({reason}): liveliness withdrawn, waiting for a new writer")
            }
            Self::Subscribers { matching: true } => f.write_str("subscribers match the key expression"),
            Self::Subscribers { matching: false } => f.write_str("no subscriber matches the key expression"),
            Self::StreamReady { how, element, dims } => {
                write!(f, "local stream {how}: {element} {}", crate::dims_text(dims))
            }
            Self::StreamRecreated { reason } => write!(f, "local stream re-created: {reason}"),
            Self::PublisherGone => f.write_str("remote publisher gone: local stream's writer closed"),
            Self::PublisherAlive => f.write_str("remote publisher alive"),
            Self::Refused(error) => write!(f, "message refused: {error}"),
        }
    }
}

/// How a caller drives a running bridge.
pub struct Context<'a> {
    /// Raised to stop the bridge; it returns within about [`POLL`].
    pub stop: &'a AtomicBool,
    /// Counts of frames, bytes and losses, updated as frames pass.
    pub stats: &'a Stats,
    /// Called for each [`Event`].
    pub on_event: &'a (dyn Fn(&Event) + Sync),
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context").field("stop", &self.stop).field("stats", &self.stats).finish_non_exhaustive()
    }
}

impl Context<'_> {
    pub(crate) fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn event(&self, event: &Event) {
        (self.on_event)(event);
    }
}
