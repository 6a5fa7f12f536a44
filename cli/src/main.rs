//! `ipcmem`: lists, inspects, creates, reads, writes and cleans shared memory of both kinds,
//! POSIX objects (`/dev/shm`) and System V segments, on top of the `ipcmem` library.
//!
//! Exit status: 0 success, 1 the operation failed (one line `ipcmem: OBJ: cause` on stderr),
//! 2 a usage error (clap's message).

mod args;
mod array;
mod cli;
mod data;
mod demo;
mod escape;
mod failure;
mod inspect;
mod manage;
mod report;
mod signals;
mod stream;
mod users;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::{ArrayCommand, Cli, Command, StreamCommand};
use crate::failure::Outcome;

fn main() -> ExitCode {
    signals::default_sigpipe();
    let cli = Cli::parse();
    failure::exit_code(run(cli.command))
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Create { object, size, mode, volatile, hold } => manage::create(&object, size, mode, volatile, hold),
        Command::Hold { object } => manage::hold(&object),
        Command::List { posix, sysv, sem, json } => inspect::list(args::filter(posix, sysv, sem), json),
        Command::Info { object, json } => inspect::info(&object, json),
        Command::Rm { objects, force } => manage::rm(&objects, force),
        Command::Read { object, offset, length } => data::read(&object, offset, length),
        Command::Write { object, offset } => data::write(&object, offset),
        Command::Chmod { object, mode } => manage::chmod(&object, mode),
        Command::Key { path, proj } => manage::key(&path, proj),
        Command::Gc { dry_run, json } => manage::gc(dry_run, json),
        Command::Array(ArrayCommand::Create { object, element, dims, mode }) => {
            array::create(&object, element, &dims, mode)
        }
        Command::Array(ArrayCommand::Show { object, limit }) => array::show(&object, limit),
        Command::Stream(command) => run_stream(command),
        Command::Demo => demo::run(),
        Command::DemoChild { posix, sysv, stream } => demo::child(&posix, &sysv, &stream),
    }
}

fn run_stream(command: StreamCommand) -> Outcome {
    match command {
        StreamCommand::Create { object, element, dims, slots, mode, volatile, hold } => {
            stream::create(&object, element, &dims, slots, mode, volatile, hold)
        }
        StreamCommand::Publish { object, count, rate, create, slots, mode } => {
            let create = match (create, slots) {
                (Some(spec), Some(slots)) => Some(stream::new_stream(&spec, slots)?),
                _ => None,
            };
            stream::publish(&object, count, rate, create.as_ref(), mode)
        }
        StreamCommand::Watch { object, count, timeout, check, json } => {
            stream::watch(&object, stream::WatchOptions { count, timeout, check, json })
        }
        StreamCommand::Info { object, json } => stream::info(&object, json),
    }
}
