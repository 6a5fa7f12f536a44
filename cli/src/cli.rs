//! The command line: every command, its arguments and its help.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use ipcmem::array::ElementType;

use crate::args::{self, Mode, NewObject, Object, Target};
use crate::array::{self, Dims};
use crate::{bench, data, demo, inspect, manage};

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
    /// List every object of both kinds, the named semaphores and the ImageStreamIO streams.
    #[command(after_help = inspect::LIST_HELP)]
    List {
        /// POSIX objects only (no semaphores).
        #[arg(long, conflicts_with_all = ["sysv", "sem", "isio"])]
        posix: bool,
        /// System V segments only.
        #[arg(long, conflicts_with_all = ["sem", "isio"])]
        sysv: bool,
        /// Named POSIX semaphores only (/dev/shm/sem.*).
        #[arg(long, conflicts_with = "isio")]
        sem: bool,
        /// ImageStreamIO streams only (`$MILK_SHM_DIR/*.im.shm`, default /milk/shm).
        #[arg(long)]
        isio: bool,
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
            help = "/name, key:N, id:N, sem:/name (a named semaphore) or isio:NAME (an ImageStreamIO stream)",
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
            help = "/name, key:N, id:N, sem:/name or isio:NAME, one or more",
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
            help = "/name, key:N, id:N, sem:/name or isio:NAME",
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
    /// Two processes share a POSIX object and a System V segment, step by step.
    #[command(after_help = demo::DEMO_HELP)]
    Demo,
    /// Measure ipcmem against the raw system calls and its peers; print Markdown tables.
    #[command(after_help = bench::BENCH_HELP)]
    Bench(bench::BenchArgs),
    /// The second process of `bench --pingpong`.
    #[command(hide = true)]
    BenchPong(bench::PongArgs),
    /// The second process of `demo`.
    #[command(hide = true)]
    DemoChild {
        #[arg(value_parser = args::parse_object)]
        posix: Object,
        #[arg(value_parser = args::parse_object)]
        sysv: Object,
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
