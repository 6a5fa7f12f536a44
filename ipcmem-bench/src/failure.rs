//! A failed run: one line `ipcmem-bench: cause` on stderr, and exit status 1.

use std::fmt;
use std::process::ExitCode;

/// What a measurement returns.
pub type Outcome = Result<(), Failure>;

/// Why a run failed: what to print.
#[derive(Debug)]
pub struct Failure(pub String);

impl From<ipcmem::Error> for Failure {
    fn from(error: ipcmem::Error) -> Failure {
        Failure(error.to_string())
    }
}

/// A failure of the benchmark itself (a system call that failed, a peer that did not answer).
pub fn failure(cause: impl fmt::Display) -> Failure {
    Failure(cause.to_string())
}

/// Prints a failure and gives the exit status of an outcome.
pub fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure(message)) => {
            eprintln!("ipcmem-bench: {message}");
            ExitCode::FAILURE
        }
    }
}
