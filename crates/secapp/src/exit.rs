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

use secapp_api::errors::{Class, ErrorCode};
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

    /// The failure a client error is: for a refusal the server named, the
    /// class its code has in the refusal table (`secapp_api::errors`); for a
    /// code this version does not know (another server, such as the
    /// prototype), the class of its status.
    pub fn client(e: &Error) -> Self {
        let class = match e {
            Error::Unauthorized { code, .. }
            | Error::Forbidden { code, .. }
            | Error::Invalid { code, .. } => {
                ErrorCode::from_code(code).map_or_else(|| status_class(e), ErrorCode::class)
            }
            _ => status_class(e),
        };
        let code = match class {
            Class::Refused => REFUSED,
            Class::Invalid => INVALID,
            Class::Retry | Class::Internal => UNAVAILABLE,
        };
        Self::new(code, e.to_string())
    }

    /// Prints the message and answers the exit code.
    pub fn exit(self) -> ExitCode {
        eprintln!("secapp: {}", self.message);
        ExitCode::from(self.code)
    }
}

/// The class of a client error by the status it came with.
fn status_class(e: &Error) -> Class {
    match e {
        Error::Unauthorized { .. } | Error::Forbidden { .. } => Class::Refused,
        Error::Invalid { .. } => Class::Invalid,
        Error::RateLimited { .. }
        | Error::Unavailable { .. }
        | Error::Timeout
        | Error::Transport(_) => Class::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(code: &str) -> Error {
        Error::Forbidden {
            code: code.to_owned(),
            detail: String::new(),
        }
    }

    #[test]
    fn a_refusal_exits_with_the_class_its_code_has_in_the_table() {
        let invalid = Error::Invalid {
            code: "level_out_of_range".to_owned(),
            detail: String::new(),
        };
        assert_eq!(Failure::client(&invalid).code, INVALID);
        assert_eq!(Failure::client(&refused("missing_role")).code, REFUSED);
        // A code the table does not know: the status decides.
        assert_eq!(Failure::client(&refused("prototype_said_no")).code, REFUSED);
        assert_eq!(Failure::client(&Error::Timeout).code, UNAVAILABLE);
    }
}
