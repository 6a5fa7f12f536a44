//! Failed operations: one line `ipcmem: OBJ: cause` on stderr (with a hint where one helps),
//! and exit status 1.

use std::fmt;
use std::io;
use std::process::ExitCode;

/// What a command returns.
pub type Outcome = Result<(), Failure>;

/// Why a command failed.
#[derive(Debug)]
pub enum Failure {
    /// One error, to print.
    Error(String),
    /// Errors already printed, one per object (as `rm` does for each object it could not remove).
    Reported,
}

impl Failure {
    /// A failure about `object`: `object: cause`.
    pub fn about(object: impl fmt::Display, cause: impl fmt::Display) -> Failure {
        Failure::Error(format!("{object}: {cause}"))
    }

    /// A failure to read or write a stream (`stdin`, `stdout`).
    pub fn io(stream: &str, error: &io::Error) -> Failure {
        Failure::about(stream, error)
    }
}

impl From<ipcmem::Error> for Failure {
    fn from(error: ipcmem::Error) -> Failure {
        Failure::Error(describe(&error))
    }
}

/// The message of a library error, with a hint where one helps.
pub fn describe(error: &ipcmem::Error) -> String {
    let hint = match error {
        ipcmem::Error::PermissionDenied { object, .. } => Some(format!(
            "hint: `ipcmem info {object}` shows its owner and mode, which the owner (or root) may change with `ipcmem chmod`"
        )),
        ipcmem::Error::NotFound { object, hint: None } if object.starts_with('/') => {
            Some("hint: `ipcmem list` shows the objects that exist".to_owned())
        }
        ipcmem::Error::LimitExceeded { limit: ipcmem::Limit::NoSpace, .. } => {
            Some("hint: `df -h /dev/shm` shows the space; `ipcmem gc` removes abandoned volatile objects".to_owned())
        }
        _ => None,
    };
    match hint {
        Some(hint) => format!("{error}; {hint}"),
        None => error.to_string(),
    }
}

/// Prints a failure and gives the exit status of an outcome.
pub fn exit_code(outcome: Outcome) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Reported) => ExitCode::FAILURE,
        Err(Failure::Error(message)) => {
            report(&message);
            ExitCode::FAILURE
        }
    }
}

/// Prints `ipcmem: message` on stderr, one line: a name in it with a newline or a terminal
/// escape is shown escaped.
pub fn report(message: &str) {
    eprintln!("ipcmem: {}", crate::escape::escaped(message.as_bytes()));
}
