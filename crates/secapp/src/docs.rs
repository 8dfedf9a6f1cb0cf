//! `secapp completions SHELL` and `secapp man`: generated from the same clap
//! definition the binary parses, so they cannot drift from it.

use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::Cli;
use crate::exit::Failure;

/// The exit codes, for `--help` and the man page (see `exit.rs`).
pub const EXIT_CODES: &str = "\
Exit codes:
  0  done
  1  no answer: the server could not be reached, timed out, was unavailable or rate limited;
     or the command could not run at all
  2  bad arguments
  3  refused: the token is unknown, expired or revoked, or may not do this
  4  the server found the request invalid
  5  secapp simulate: an invariant was violated";

/// `secapp completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

/// Prints the completion script for the shell.
pub fn completions(args: &CompletionsArgs) -> Result<(), Failure> {
    let mut command = Cli::command();
    clap_complete::generate(args.shell, &mut command, "secapp", &mut std::io::stdout());
    Ok(())
}

/// Prints the man page.
pub fn man() -> Result<(), Failure> {
    clap_mangen::Man::new(Cli::command())
        .render(&mut std::io::stdout())
        .map_err(|e| {
            Failure::new(
                crate::exit::UNAVAILABLE,
                format!("cannot write the man page: {e}"),
            )
        })
}
