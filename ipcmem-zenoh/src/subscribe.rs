//! The subscribing half: frames received from Zenoh, written into a local stream with the
//! remote serials.
//!
//! - **The local stream** is made on the first frame (element type and dims from the message,
//!   [`SubscribeOptions::slots`] slots), or, if one exists without a live writer (left by an
//!   earlier run, or made by `ipcmem stream create`), taken over when it matches in type and
//!   dims. A stream with a live writer, or an object that is no stream, is an error.
//! - **Serials** are the remote ones ([`RawWriter::publish_with_serial`]): a gap (frames the
//!   publisher missed, Zenoh dropped, or this bridge's queue dropped) is counted as lost here and
//!   by the local readers.
//! - **Re-creation.** A frame of another type or dims, or a serial not above the last one (the
//!   remote stream was re-created, or another publisher took over), re-creates the local stream:
//!   its readers follow to the new one. A serial equal to the last one is a repeat (the
//!   publisher repeats a stream's last frame when the stream ends) and is ignored.
//! - **Never blocking Zenoh.** Samples wait in a ring of [`SubscribeOptions::queue`] messages;
//!   when it is full the oldest is dropped (a gap in serials, counted as lost), so a slow local
//!   side never holds up Zenoh's threads or the network.
//! - **Writer gone.** The publisher holds a Zenoh liveliness token while its source has a
//!   writer. When the last token on the key expression disappears (the publisher's process
//!   ended or was killed, its session was lost, or its source's writer went), and no frame came
//!   for [`GRACE`] after that, the subscriber closes its local writer: local readers get
//!   [`ipcmem::Error::WriterGone`]. On loopback or a LAN a killed publisher is seen at once (its
//!   TCP connection closes); a publisher cut off without a word is seen after Zenoh's lease
//!   (`transport/link/tx/lease`, 10 s by default).

use std::sync::mpsc;
use std::time::{Duration, Instant};

use ipcmem::key::Id;
use ipcmem::stream::{RawWriter, StreamOptions};
use ipcmem::Error;
use zenoh::handlers::RingChannel;
use zenoh::sample::SampleKind;
use zenoh::Wait;

use crate::bridge::{BridgeError, Context, Event, POLL};
use crate::message::{decode, FrameHeader};

/// How long frames may still come after the publisher's token is gone (a frame can travel
/// behind the token's withdrawal) before the local writer is closed.
pub const GRACE: Duration = Duration::from_millis(100);

/// How the subscriber makes its local stream and queues samples.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    /// Slots of a stream it creates (default 8).
    pub slots: usize,
    /// Messages queued between Zenoh and the local stream; when full, the oldest is dropped
    /// (default 8).
    pub queue: usize,
    /// Options of a stream it creates (mode, volatile, huge pages, …).
    pub stream: StreamOptions,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        Self { slots: 8, queue: 8, stream: StreamOptions::new() }
    }
}

/// Writes the frames published on `key` into the local stream `obj` until `context.stop` is
/// raised. Fails when the local stream cannot be made or written, or Zenoh fails; a message
/// that does not decode is refused ([`Event::Refused`]) and counted, not fatal.
pub fn subscribe(
    session: &zenoh::Session,
    key: &str,
    obj: impl Into<Id>,
    options: &SubscribeOptions,
    context: &Context<'_>,
) -> Result<(), BridgeError> {
    let samples = session
        .declare_subscriber(key.to_owned())
        .with(RingChannel::new(options.queue.max(1)))
        .wait()
        .map_err(|error| BridgeError::zenoh("declare a subscriber", key, &error))?;
    let (presence_tx, presence) = mpsc::channel();
    let _presence = session
        .liveliness()
        .declare_subscriber(key.to_owned())
        .history(true)
        .callback(move |sample| {
            // The receiver lives as long as this subscriber: a send cannot fail while it matters.
            let _ = presence_tx.send(sample.kind() == SampleKind::Put);
        })
        .wait()
        .map_err(|error| BridgeError::zenoh("declare a liveliness subscriber", key, &error))?;
    let mut local = Local { obj: obj.into(), options: options.clone(), writer: None, last_serial: 0 };
    let mut publishers = Publishers::default();
    while !context.stopped() {
        publishers.update(&presence, context);
        match samples.recv_timeout(POLL) {
            Ok(Some(sample)) => {
                publishers.last_frame = Instant::now();
                local.write(&sample.payload().to_bytes(), context)?;
            }
            Ok(None) => {}
            Err(error) => return Err(BridgeError::zenoh("receive", key, &error)),
        }
        if publishers.all_gone() && local.writer.is_some() {
            local.writer = None; // closes the stream: its readers get WriterGone
            publishers.left_at = None;
            context.event(&Event::PublisherGone);
        }
    }
    Ok(())
}

/// What the subscriber knows of the remote publishers.
struct Publishers {
    /// Liveliness tokens present on the key expression.
    alive: usize,
    /// When the last token went, if it did and none came since.
    left_at: Option<Instant>,
    /// When the last frame came.
    last_frame: Instant,
}

impl Default for Publishers {
    fn default() -> Self {
        Self { alive: 0, left_at: None, last_frame: Instant::now() }
    }
}

impl Publishers {
    fn update(&mut self, presence: &mpsc::Receiver<bool>, context: &Context<'_>) {
        for appeared in presence.try_iter() {
            if appeared {
                self.alive += 1;
                self.left_at = None;
                if self.alive == 1 {
                    context.event(&Event::PublisherAlive);
                }
            } else {
                self.alive = self.alive.saturating_sub(1);
                if self.alive == 0 {
                    self.left_at = Some(Instant::now());
                }
            }
        }
    }

    /// The last publisher went at least [`GRACE`] ago, and no frame came in that time.
    fn all_gone(&self) -> bool {
        self.left_at.is_some_and(|left| left.elapsed() >= GRACE && self.last_frame.elapsed() >= GRACE)
    }
}

/// The local stream and its writer.
struct Local {
    obj: Id,
    options: SubscribeOptions,
    writer: Option<RawWriter>,
    /// The serial of the last frame written, kept when the writer closes: a repeat of it (the
    /// publisher repeats a stream's last frame) is ignored.
    last_serial: u64,
}

impl Local {
    /// Writes one message's frame under its serial.
    fn write(&mut self, payload: &[u8], context: &Context<'_>) -> Result<(), BridgeError> {
        let message = match decode(payload) {
            Ok(message) => message,
            Err(error) => {
                context.stats.refuse();
                context.event(&Event::Refused(error));
                return Ok(());
            }
        };
        let header = &message.header;
        if header.serial == self.last_serial {
            return Ok(()); // a repeat
        }
        let writer = self.writer_for(header, context)?;
        let lost = header.serial - writer.last_serial() - 1;
        writer.publish_with_serial(header.serial, header.acquired_ns, message.frame)?;
        self.last_serial = header.serial;
        context.stats.record(message.frame.len(), lost);
        Ok(())
    }

    /// The writer of a local stream that can take this frame: the current one, the existing
    /// stream taken over, or a stream made (anew).
    fn writer_for(&mut self, header: &FrameHeader, context: &Context<'_>) -> Result<&mut RawWriter, BridgeError> {
        if let Some(reason) = self.writer.as_ref().and_then(|writer| misfit(writer, header)) {
            self.writer = None; // closed first, so that the new stream replaces it
            self.writer = Some(self.create(header)?);
            context.event(&Event::StreamRecreated { reason });
        }
        if self.writer.is_none() {
            let writer = match self.options.stream.attach_raw(self.obj.clone()) {
                Ok(writer) => match misfit(&writer, header) {
                    None => {
                        context.event(&ready("attached to the existing stream", header));
                        writer
                    }
                    Some(reason) => {
                        drop(writer);
                        let writer = self.create(header)?;
                        context.event(&Event::StreamRecreated { reason });
                        writer
                    }
                },
                Err(Error::NotFound { .. }) => {
                    let writer = self.create(header)?;
                    context.event(&ready("created", header));
                    writer
                }
                Err(error) => return Err(error.into()),
            };
            self.writer = Some(writer);
        }
        Ok(self.writer.as_mut().expect("a writer was just set"))
    }

    fn create(&self, header: &FrameHeader) -> ipcmem::Result<RawWriter> {
        self.options.stream.create_raw(self.obj.clone(), header.element, &header.dims, self.options.slots)
    }
}

fn ready(how: &'static str, header: &FrameHeader) -> Event {
    Event::StreamReady { how, element: header.element, dims: header.dims.clone() }
}

/// Why `writer`'s stream cannot take this frame, if it cannot.
fn misfit(writer: &RawWriter, header: &FrameHeader) -> Option<String> {
    let geometry = writer.geometry();
    if geometry.element() != header.element || geometry.frame_dims() != header.dims.as_slice() {
        return Some(format!(
            "remote frames are {} {}, the local stream's {} {}",
            header.element,
            crate::dims_text(&header.dims),
            geometry.element(),
            crate::dims_text(geometry.frame_dims())
        ));
    }
    if header.serial <= writer.last_serial() {
        return Some(format!(
            "remote serial {} is not above the local stream's last {} (the remote stream restarted)",
            header.serial,
            writer.last_serial()
        ));
    }
    None
}
