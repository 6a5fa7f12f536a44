//! The publishing half: a local stream's frames, put on Zenoh as they come.
//!
//! The bridge is one more reader of the local stream, so the camera's writer never waits for
//! it. When the network (or Zenoh's queue) is slower than the camera, frames are lost in two
//! places, and both are counted:
//! - in the local ring, when the writer overwrites frames before the bridge reads them: the
//!   reader's [`FrameInfo::lost`](ipcmem::stream::FrameInfo::lost), counted here and sent in
//!   every message ([`FrameHeader::publisher_lost`]);
//! - in Zenoh's transmission queue, which the publisher declares with
//!   [`CongestionControl::Drop`]: a put that finds the queue full for more than Zenoh's
//!   `wait_before_drop` (1 ms by default) is dropped instead of blocking. Zenoh does not say
//!   which, so the subscriber counts them, as gaps in the serials.
//!
//! When the local stream's writer goes, the last frame is put once more with
//! [`CongestionControl::Block`]: a subscriber that missed it (and so could not count the frames
//! before it as lost, no frame following them) gets it, so that received plus lost is what was
//! published; a subscriber that had it ignores the repeat.
//!
//! While the local stream has a writer, the bridge holds a Zenoh liveliness token on its key
//! expression; it withdraws the token when that writer is gone, and Zenoh withdraws it when
//! the bridge's process ends or its session is lost. Subscribers follow the token to report the
//! writer gone in their own stream.

use std::time::{Duration, Instant};

use ipcmem::array::ElementType;
use ipcmem::isio;
use ipcmem::stream::{FrameInfo, RawReader};
use ipcmem::Error;
use zenoh::bytes::ZBytes;
use zenoh::qos::CongestionControl;
use zenoh::Wait;

use crate::bridge::{BridgeError, Context, Event, POLL};
use crate::message::FrameHeader;

/// Where the published frames come from: an ipcmem stream, or an ImageStreamIO stream (its
/// frames, or the slices of a circular buffer, followed as [`isio::Follower`] does).
#[allow(clippy::large_enum_variant)] // one per bridge, made once: a box would buy nothing
pub enum FrameSource {
    /// An ipcmem stream ([`ipcmem::stream`]).
    Stream(RawReader),
    /// An ImageStreamIO stream. Its format records no writer liveness that a reader could
    /// trust, so the bridge never reports its writer gone; a stream made anew (`cnt0` going
    /// back) is followed.
    Isio(isio::Follower),
}

impl From<RawReader> for FrameSource {
    fn from(reader: RawReader) -> FrameSource {
        FrameSource::Stream(reader)
    }
}

impl From<isio::Follower> for FrameSource {
    fn from(follower: isio::Follower) -> FrameSource {
        FrameSource::Isio(follower)
    }
}

/// Publishes the frames of `source` (a [`RawReader`] of an ipcmem stream, or an
/// [`isio::Follower`]) on `key` until `context.stop` is raised.
///
/// Runs on: when the stream's writer goes, the bridge withdraws its liveliness token and waits
/// for a new writer; a stream re-created under the same name (other type or dims included) is
/// followed. Fails only when the local stream or Zenoh fails, or when an ImageStreamIO stream
/// holds half-precision elements, which ipcmem streams have no type for.
pub fn publish(
    source: impl Into<FrameSource>,
    session: &zenoh::Session,
    key: &str,
    context: &Context<'_>,
) -> Result<(), BridgeError> {
    let publisher = session
        .declare_publisher(key.to_owned())
        .congestion_control(CongestionControl::Drop)
        .express(true)
        .wait()
        .map_err(|error| BridgeError::zenoh("declare a publisher", key, &error))?;
    let mut source = Source::new(source.into())?;
    let mut token = None;
    let mut publisher_lost = 0u64;
    let mut last = None;
    let mut matching = Matching::default();
    while !context.stopped() {
        matching.check(&publisher, context);
        match source.next(context)? {
            Next::Nothing => {}
            Next::WriterGone(reason) => {
                if let Some(payload) = last.take() {
                    // The stream's last frame again, this time reliably (Block): frames dropped
                    // at its end would show as a gap to no one, as no frame follows them.
                    let repeat = session.put(key.to_owned(), payload).congestion_control(CongestionControl::Block);
                    repeat.wait().map_err(|error| BridgeError::zenoh("put the last frame", key, &error))?;
                }
                if token.take().is_some() {
                    context.event(&Event::SourceGone { reason });
                }
            }
            Next::Frame(info) => {
                if token.is_none() {
                    let declared = session.liveliness().declare_token(key.to_owned()).wait();
                    token =
                        Some(declared.map_err(|error| BridgeError::zenoh("declare a liveliness token", key, &error))?);
                    context.event(&Event::SourceAlive);
                }
                publisher_lost += info.lost;
                let message = ZBytes::from(source.message(&info, publisher_lost));
                // A clone shares the bytes: kept to repeat the last frame when the stream ends.
                last = Some(message.clone());
                publisher.put(message).wait().map_err(|error| BridgeError::zenoh("put a frame", key, &error))?;
                context.stats.record(source.frame.len(), info.lost);
            }
        }
    }
    Ok(())
}

/// Whether subscribers match the key expression, looked at every [`MATCHING_CHECK`]: said
/// when it changes, so that a user (or a test) knows when frames start to reach someone.
#[derive(Default)]
struct Matching {
    matching: bool,
    checked: Option<Instant>,
}

/// How often the publisher asks Zenoh whether subscribers match.
const MATCHING_CHECK: Duration = Duration::from_millis(100);

impl Matching {
    fn check(&mut self, publisher: &zenoh::pubsub::Publisher<'_>, context: &Context<'_>) {
        if self.checked.is_some_and(|checked| checked.elapsed() < MATCHING_CHECK) {
            return;
        }
        self.checked = Some(Instant::now());
        // A failed look (the session closing) changes nothing: the next put says why.
        let Ok(status) = publisher.matching_status().wait() else { return };
        if status.matching() != self.matching {
            self.matching = status.matching();
            context.event(&Event::Subscribers { matching: self.matching });
        }
    }
}

/// What the local stream gave.
enum Next {
    /// A frame, in the buffer.
    Frame(FrameInfo),
    /// Nothing within [`POLL`].
    Nothing,
    /// The writer is gone, for this reason.
    WriterGone(String),
}

/// The local stream being read, its frames' element type and dims, and the frame buffer.
struct Source {
    from: FrameSource,
    element: ElementType,
    dims: Vec<usize>,
    frame: Vec<u8>,
}

impl Source {
    fn new(from: FrameSource) -> ipcmem::Result<Source> {
        let (element, dims, frame_bytes) = match &from {
            FrameSource::Stream(reader) => {
                let geometry = reader.geometry();
                (geometry.element(), geometry.frame_dims().to_vec(), geometry.frame_bytes())
            }
            FrameSource::Isio(follower) => {
                let stream = follower.reader().stream();
                let element = stream.datatype().element_type().ok_or_else(|| Error::InvalidArgument {
                    object: format!("isio:{}", stream.name()),
                    reason: "half-precision (f16) frames: ipcmem streams have no such element type".into(),
                })?;
                (element, stream.frame_dims(), stream.frame_len())
            }
        };
        Ok(Source { from, element, dims, frame: vec![0; frame_bytes] })
    }

    /// The next frame, waiting up to [`POLL`].
    fn next(&mut self, context: &Context<'_>) -> Result<Next, BridgeError> {
        let reader = match &mut self.from {
            FrameSource::Stream(reader) => reader,
            FrameSource::Isio(follower) => {
                return Ok(follower.next_into(&mut self.frame, POLL)?.map_or(Next::Nothing, Next::Frame));
            }
        };
        match reader.next_into(&mut self.frame, POLL) {
            Ok(Some(info)) => Ok(Next::Frame(info)),
            Ok(None) => Ok(Next::Nothing),
            Err(Error::WriterGone { pid, reason, .. }) => Ok(Next::WriterGone(format!("pid {pid}: {reason}"))),
            // The stream was re-created with frames of another size or type: read it anew.
            Err(Error::InvalidArgument { .. }) if !context.stopped() => {
                let reopened = RawReader::open_wait(reader.id(), Duration::from_secs(1));
                match reopened {
                    Ok(reader) => {
                        *self = Source::new(FrameSource::Stream(reader))?;
                        Ok(Next::Nothing)
                    }
                    Err(Error::NotFound { .. }) => Ok(Next::Nothing),
                    Err(error) => Err(error.into()),
                }
            }
            Err(error) => Err(error.into()),
        }
    }

    /// The message for the frame in the buffer: header, then the frame (one copy).
    fn message(&self, info: &FrameInfo, publisher_lost: u64) -> Vec<u8> {
        let header = FrameHeader {
            serial: info.serial,
            acquired_ns: info.acquired_ns,
            published_ns: info.published_ns,
            publisher_lost,
            element: self.element,
            dims: self.dims.clone(),
        };
        let mut message = Vec::with_capacity(header.encoded_len() + self.frame.len());
        header.encode_into(&mut message);
        message.extend_from_slice(&self.frame);
        message
    }
}
