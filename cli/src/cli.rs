//! The command line: every command, its arguments and its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use ipcmem::array::ElementType;

use crate::args::{self, Mode, NewObject, Object, Target};
use crate::array::{self, Dims};
use crate::stream::{self, StreamTarget};
use crate::{data, demo, inspect, manage};

/// Shared memory of both kinds, POSIX objects (/dev/shm) and System V segments, in one tool.
#[derive(Debug, Parser)]
#[command(name = "ipcmem", version, after_help = args::OBJECT_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Make a new object (exclusive); print its name, or id:N for System V.
    #[command(after_help = manage::CREATE_HELP)]
    Create {
        /// /name, key:N, or private (a new System V segment without a key).
        #[arg(value_name = "OBJ", value_parser = args::parse_new_object)]
        object: NewObject,
        /// Bytes, or with a suffix KiB, MiB, GiB (also k, m, g).
        #[arg(value_name = "SIZE", value_parser = args::parse_size)]
        size: usize,
        /// The permission bits, octal (0640 or 640).
        #[arg(long, value_name = "MODE", value_parser = args::parse_mode, default_value = "0600")]
        mode: Mode,
        /// Destroy the object when no one holds it any more (needs --hold).
        #[arg(long, requires = "hold")]
        volatile: bool,
        /// Keep the object open until SIGINT or SIGTERM.
        #[arg(long)]
        hold: bool,
    },
    /// Open an existing object and hold it until SIGINT or SIGTERM.
    #[command(after_help = manage::HOLD_HELP)]
    Hold {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = args::parse_object)]
        object: Object,
    },
    /// List every object of both kinds, and the named semaphores.
    #[command(after_help = inspect::LIST_HELP)]
    List {
        /// POSIX objects only (no semaphores).
        #[arg(long, conflicts_with_all = ["sysv", "sem"])]
        posix: bool,
        /// System V segments only.
        #[arg(long, conflicts_with = "sem")]
        sysv: bool,
        /// Named POSIX semaphores only (/dev/shm/sem.*).
        #[arg(long)]
        sem: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Show all that is known of one object.
    #[command(after_help = inspect::INFO_HELP)]
    Info {
        // The help is an attribute: clippy takes `sem:/name` in a doc comment for a bare URL.
        #[arg(
            value_name = "OBJ",
            value_parser = args::parse_target,
            help = "/name, key:N, id:N, or sem:/name (a named semaphore)",
        )]
        object: Target,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Remove objects (a System V segment goes at its last detach).
    #[command(after_help = manage::RM_HELP)]
    Rm {
        #[arg(
            value_name = "OBJ",
            required = true,
            value_parser = args::parse_target,
            help = "/name, key:N, id:N or sem:/name, one or more",
        )]
        objects: Vec<Target>,
        /// A missing object is not an error.
        #[arg(long, short)]
        force: bool,
    },
    /// Copy an object's bytes to stdout.
    #[command(after_help = data::READ_HELP)]
    Read {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = args::parse_object)]
        object: Object,
        /// Where to start, in bytes (suffixes as for sizes).
        #[arg(long, value_name = "N", value_parser = args::parse_count, default_value = "0")]
        offset: usize,
        /// How many bytes. Default: up to the end.
        #[arg(long, value_name = "N", value_parser = args::parse_count)]
        length: Option<usize>,
    },
    /// Copy stdin into an object; input that would run past the end is refused whole.
    #[command(after_help = data::WRITE_HELP)]
    Write {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = args::parse_object)]
        object: Object,
        /// Where to start, in bytes (suffixes as for sizes).
        #[arg(long, value_name = "N", value_parser = args::parse_count, default_value = "0")]
        offset: usize,
    },
    /// Change the permission bits of an object or named semaphore.
    #[command(after_help = manage::CHMOD_HELP)]
    Chmod {
        #[arg(
            value_name = "OBJ",
            value_parser = args::parse_target,
            help = "/name, key:N, id:N or sem:/name",
        )]
        object: Target,
        /// Octal, as 0640 or 640.
        #[arg(value_name = "MODE", value_parser = args::parse_mode)]
        mode: Mode,
    },
    /// Print the System V key that ftok(3) derives from a file and a project number.
    #[command(after_help = manage::KEY_HELP)]
    Key {
        /// An existing file.
        path: PathBuf,
        /// The project number, 1 to 255.
        #[arg(value_parser = clap::value_parser!(u8).range(1..=255))]
        proj: u8,
    },
    /// Remove the volatile objects that no process holds any more.
    #[command(after_help = manage::GC_HELP)]
    Gc {
        /// Only list what would be removed.
        #[arg(long)]
        dry_run: bool,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Typed N-dimensional arrays, readable from Julia and Python too: make one, show its values.
    #[command(subcommand, after_help = array::ARRAY_HELP)]
    Array(ArrayCommand),
    /// Frame streams: a ring of frames with serials and timestamps, no torn frame, every loss
    /// counted. Make one, publish test frames, watch them arrive, show where it stands.
    #[command(subcommand, after_help = stream::STREAM_HELP)]
    Stream(StreamCommand),
    /// Two processes share a POSIX object and a System V segment, step by step.
    #[command(after_help = demo::DEMO_HELP)]
    Demo,
    /// The second process of `demo`.
    #[command(hide = true)]
    DemoChild {
        #[arg(value_parser = args::parse_object)]
        posix: Object,
        #[arg(value_parser = args::parse_object)]
        sysv: Object,
        #[arg(value_parser = args::parse_object)]
        stream: Object,
    },
}

#[derive(Debug, Subcommand)]
pub enum ArrayCommand {
    /// Make a new array, its elements zero (exclusive); print its name, or id:N for System V.
    #[command(after_help = array::CREATE_HELP)]
    Create {
        /// /name, key:N, or private (a new System V segment without a key).
        #[arg(value_name = "OBJ", value_parser = args::parse_new_object)]
        object: NewObject,
        /// The element type: i8 i16 i32 i64 u8 u16 u32 u64 f32 f64, or c32 c64 (complex of two
        /// f32, of two f64).
        #[arg(value_name = "TYPE", value_parser = array::parse_element)]
        element: ElementType,
        /// The dimensions, the first varying fastest: 640x480, 10, 2x3x4.
        #[arg(value_name = "DIMS", value_parser = array::parse_dims)]
        dims: Dims,
        /// The permission bits, octal (0640 or 640).
        #[arg(long, value_name = "MODE", value_parser = args::parse_mode, default_value = "0600")]
        mode: Mode,
    },
    /// Print the values of an array in memory order (column-major).
    #[command(after_help = array::SHOW_HELP)]
    Show {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = args::parse_object)]
        object: Object,
        /// How many values to print, from the first: a number, or all.
        #[arg(long, value_name = "N", value_parser = array::parse_limit, default_value = "100")]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum StreamCommand {
    /// Make a new stream with no writer yet (exclusive); print its name, or id:N for System V.
    #[command(after_help = stream::CREATE_HELP)]
    Create {
        /// /name, key:N, or private (a new System V segment without a key).
        #[arg(value_name = "OBJ", value_parser = args::parse_new_object)]
        object: NewObject,
        /// The element type: i8 i16 i32 i64 u8 u16 u32 u64 f32 f64 c32 c64.
        #[arg(value_name = "TYPE", value_parser = array::parse_element)]
        element: ElementType,
        /// The dimensions of one frame, the first varying fastest: 512x512.
        #[arg(value_name = "DIMS", value_parser = array::parse_dims)]
        dims: Dims,
        /// The number of frames the ring holds.
        #[arg(long, value_name = "N", value_parser = stream::parse_slots)]
        slots: usize,
        /// The permission bits, octal (0644 lets every user watch).
        #[arg(long, value_name = "MODE", value_parser = args::parse_mode, default_value = "0600")]
        mode: Mode,
        /// Destroy the stream when no one holds it any more (needs --hold).
        #[arg(long, requires = "hold")]
        volatile: bool,
        /// Keep the stream open until SIGINT or SIGTERM.
        #[arg(long)]
        hold: bool,
    },
    /// Write test frames (every element of frame n equals n) as the stream's writer.
    #[command(after_help = stream::PUBLISH_HELP)]
    Publish {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = stream::parse_stream)]
        object: StreamTarget,
        /// Stop after N frames (default: run until SIGINT or SIGTERM).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// Frames per second (default: as fast as possible).
        #[arg(long, value_name = "HZ", value_parser = stream::parse_rate)]
        rate: Option<f64>,
        /// Make the stream if it does not exist, with this element type and frame dims.
        #[arg(long, num_args = 2, value_names = ["TYPE", "DIMS"], requires = "slots")]
        create: Option<Vec<String>>,
        /// The slots of a stream made by --create.
        #[arg(long, value_name = "N", value_parser = stream::parse_slots, requires = "create")]
        slots: Option<usize>,
        /// The permission bits of a stream made by --create, octal.
        #[arg(long, value_name = "MODE", value_parser = args::parse_mode, default_value = "0600", requires = "create")]
        mode: Mode,
    },
    /// Print each frame received (serial, lost, latency), then a summary.
    #[command(after_help = stream::WATCH_HELP)]
    Watch {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = stream::parse_stream)]
        object: StreamTarget,
        /// Stop after N frames (default: run until SIGINT or SIGTERM).
        #[arg(long, value_name = "N")]
        count: Option<u64>,
        /// How long to wait for the stream to appear and for each frame.
        #[arg(long, value_name = "SECONDS", value_parser = stream::parse_seconds, default_value = "10")]
        timeout: std::time::Duration,
        /// Verify the test pattern of `stream publish`; exit 1 on the first wrong frame.
        #[arg(long)]
        check: bool,
        /// One JSON object per line, the summary last.
        #[arg(long)]
        json: bool,
    },
    /// Show a stream: type, dims, slots, serial, last publication, rate, writer.
    #[command(after_help = stream::INFO_HELP)]
    Info {
        /// /name, key:N or id:N.
        #[arg(value_name = "OBJ", value_parser = stream::parse_stream)]
        object: StreamTarget,
        /// Print a JSON object.
        #[arg(long)]
        json: bool,
    },
}
