//! The exit codes of the `secapp` commands, and the failure that carries one.
//!
//! | code | meaning |
//! |------|---------|
//! | 0 | done |
//! | 1 | no answer: the server could not be reached, timed out, was unavailable or rate limited (try again later); or the command could not run at all |
//! | 2 | bad arguments (the message says which) |
//! | 3 | refused: the token is unknown, expired or revoked, or may not do this |
//! | 4 | the server found the request invalid (the message says why) |
//! | 5 | `secapp simulate`: an invariant was violated |

use std::process::ExitCode;

use secapp_client::Error;

/// No answer (try again later), or the command could not run at all.
pub const UNAVAILABLE: u8 = 1;
/// Bad arguments (clap exits with this too).
pub const USAGE: u8 = 2;
/// Refused: credentials or roles.
pub const REFUSED: u8 = 3;
/// The server found the request invalid.
pub const INVALID: u8 = 4;
/// The simulator saw an invariant violated.
pub const VIOLATION: u8 = 5;

/// Why a command failed, and the code it exits with.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub code: u8,
    /// What to tell the person.
    pub message: String,
}

impl Failure {
    /// A failure with this code.
    pub fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The failure a client error is.
    pub fn client(e: &Error) -> Self {
        let code = match e {
            Error::Unauthorized { .. } | Error::Forbidden { .. } => REFUSED,
            Error::Invalid { .. } => INVALID,
            Error::RateLimited { .. }
            | Error::Unavailable { .. }
            | Error::Timeout
            | Error::Transport(_) => UNAVAILABLE,
        };
        Self::new(code, e.to_string())
    }

    /// Prints the message and answers the exit code.
    pub fn exit(self) -> ExitCode {
        eprintln!("secapp: {}", self.message);
        ExitCode::from(self.code)
    }
}
