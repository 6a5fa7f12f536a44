//! `ipcmem-bridge`: mirror an ipcmem frame stream between machines over Zenoh.
//!
//! ```text
//! ipcmem-bridge publish OBJ --key KEYEXPR [--connect ENDPOINT]… [--listen ENDPOINT]… [--no-multicast]
//! ipcmem-bridge subscribe KEYEXPR OBJ [same options] [--slots N] [--queue N] [--mode MODE]
//! ```
//!
//! Both print a status line every second to stderr, and stop cleanly on SIGINT, SIGTERM or
//! SIGHUP. Exit status: 0 when stopped by a signal, 1 on a failure (said on stderr), 2 on a
//! usage error.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ipcmem::key::Id;
use ipcmem::stream::{RawReader, StreamOptions};
use ipcmem_zenoh::status::report_every_second;
use ipcmem_zenoh::stop::on_stop_signals;
use ipcmem_zenoh::{Context, Event, FrameSource, SessionOptions, Stats, SubscribeOptions};

/// Mirror ipcmem frame streams between machines over Zenoh.
#[derive(Debug, Parser)]
#[command(name = "ipcmem-bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish the frames of a local stream on a Zenoh key expression.
    Publish {
        /// The local stream: /name, key:N or id:N, or isio:NAME (an ImageStreamIO stream of
        /// `$MILK_SHM_DIR`, default /milk/shm). Waited for if it does not exist yet.
        #[arg(value_parser = parse_source)]
        obj: SourceArg,
        /// The Zenoh key expression to publish on, e.g. lab/cam1.
        #[arg(long, value_parser = parse_key)]
        key: String,
        #[command(flatten)]
        zenoh: ZenohArgs,
    },
    /// Write the frames published on a Zenoh key expression into a local stream.
    Subscribe {
        /// The Zenoh key expression to subscribe to, e.g. lab/cam1.
        #[arg(value_parser = parse_key)]
        key: String,
        /// The local stream: /name, key:N or id:N. Made on the first frame, or taken over if it
        /// exists without a writer and matches in type and dims.
        obj: Id,
        /// Slots of the local stream, when it is made.
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        slots: u32,
        /// Messages queued between Zenoh and the local stream (the oldest is dropped when full).
        #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
        queue: u32,
        /// Permission bits of the local stream, when it is made (octal); readers need read
        /// permission only.
        #[arg(long, default_value = "600", value_parser = parse_mode)]
        mode: u32,
        #[command(flatten)]
        zenoh: ZenohArgs,
    },
}

/// How to join Zenoh.
#[derive(Debug, Args)]
struct ZenohArgs {
    /// A Zenoh endpoint to connect to, e.g. tcp/192.168.1.10:7447 (repeatable).
    #[arg(long = "connect", value_name = "ENDPOINT")]
    connect: Vec<String>,
    /// A Zenoh endpoint to listen on, e.g. tcp/0.0.0.0:7447 (repeatable).
    #[arg(long = "listen", value_name = "ENDPOINT")]
    listen: Vec<String>,
    /// Do not discover peers by UDP multicast: use only the endpoints given.
    #[arg(long)]
    no_multicast: bool,
    /// Join as a client of a Zenoh router instead of as a peer.
    #[arg(long)]
    client: bool,
}

impl ZenohArgs {
    fn options(&self) -> SessionOptions {
        SessionOptions {
            connect: self.connect.clone(),
            listen: self.listen.clone(),
            multicast: !self.no_multicast,
            client: self.client,
        }
    }
}

/// The stream `publish` reads, as the command line names it.
#[derive(Debug, Clone)]
enum SourceArg {
    /// An ipcmem stream.
    Stream(Id),
    /// An ImageStreamIO stream, by name.
    Isio(String),
}

impl std::fmt::Display for SourceArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SourceArg::Stream(id) => write!(f, "{id}"),
            SourceArg::Isio(name) => write!(f, "isio:{name}"),
        }
    }
}

fn parse_source(text: &str) -> Result<SourceArg, String> {
    match text.strip_prefix("isio:") {
        Some(name) => ipcmem::isio::check_name(name).map(|()| SourceArg::Isio(name.to_owned())),
        None => text.parse().map(SourceArg::Stream),
    }
    .map_err(|error| error.to_string())
}

/// A key expression as Zenoh accepts it (checked before any wait or connection).
fn parse_key(text: &str) -> Result<String, String> {
    zenoh::key_expr::KeyExpr::try_from(text)
        .map(|_| text.to_owned())
        .map_err(|error| format!("{text:?} is not a Zenoh key expression: {}", ipcmem_zenoh::zenoh_reason(&error)))
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o777)
        .ok_or_else(|| format!("{text:?} is not a permission mode in octal, 0 to 777"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ipcmem-bridge: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> Result<(), String> {
    // Before any thread starts, so that Zenoh's threads inherit the blocked signals.
    let stop = on_stop_signals().map_err(|error| format!("cannot block the stop signals: {error}"))?;
    match command {
        Command::Publish { obj, key, zenoh } => {
            let label = format!("publish {obj} -> {key}");
            let Some(source) = open_source(&obj, &stop)? else { return Ok(()) };
            let session = zenoh.options().open().map_err(|error| error.to_string())?;
            bridge(&label, &stop, |context| ipcmem_zenoh::publish(source, &session, &key, context))
        }
        Command::Subscribe { key, obj, slots, queue, mode, zenoh } => {
            let label = format!("subscribe {key} -> {obj}");
            let options = SubscribeOptions {
                slots: slots as usize,
                queue: queue as usize,
                stream: StreamOptions::new().perms(mode),
            };
            let session = zenoh.options().open().map_err(|error| error.to_string())?;
            bridge(&label, &stop, |context| ipcmem_zenoh::subscribe(&session, &key, obj.clone(), &options, context))
        }
    }
}

/// Opens the local stream, waiting for it until a stop signal (None then).
fn open_source(obj: &SourceArg, stop: &AtomicBool) -> Result<Option<FrameSource>, String> {
    let mut said = false;
    while !stop.load(Ordering::Relaxed) {
        let opened = match obj {
            SourceArg::Stream(id) => {
                RawReader::open_wait(id.clone(), Duration::from_millis(200)).map(FrameSource::from)
            }
            SourceArg::Isio(name) => open_isio(name),
        };
        match opened {
            Ok(source) => return Ok(Some(source)),
            Err(ipcmem::Error::NotFound { .. }) => {
                if !said {
                    eprintln!("ipcmem-bridge: waiting for the stream {obj} to be created");
                    said = true;
                }
            }
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(None)
}

/// An ImageStreamIO stream of `$MILK_SHM_DIR`, followed through a claimed semaphore; waited for
/// 200 ms.
fn open_isio(name: &str) -> ipcmem::Result<FrameSource> {
    let stream = ipcmem::isio::Dir::from_env().open_wait(name, Duration::from_millis(200))?;
    Ok(ipcmem::isio::Follower::new(stream.reader()?).into())
}

/// Runs one half of a bridge with a status line every second, until it ends or a signal.
fn bridge(
    label: &str,
    stop: &AtomicBool,
    run: impl FnOnce(&Context<'_>) -> Result<(), ipcmem_zenoh::BridgeError>,
) -> Result<(), String> {
    let stats = Stats::default();
    let done = AtomicBool::new(false);
    let on_event = |event: &Event| eprintln!("ipcmem-bridge: {event}");
    std::thread::scope(|scope| {
        scope.spawn(|| report_every_second(label, &stats, stop, &done));
        let context = Context { stop, stats: &stats, on_event: &on_event };
        let ended = run(&context);
        done.store(true, Ordering::Relaxed);
        ended.map_err(|error| error.to_string())
    })
}
