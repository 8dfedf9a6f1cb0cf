//! How the level commands print: a sentence (the level in colour) on a
//! terminal, `key=value` words when piped, JSON lines with `--json`.
//! `NO_COLOR` turns colour off.

use std::io::{IsTerminal, Write};

use secapp_client::State;
use serde_json::json;

/// Where and how to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// One JSON object per line, as the API answers.
    Json,
    /// For people: sentences, colour unless `NO_COLOR`.
    Terminal {
        /// Whether to colour the level.
        colour: bool,
    },
    /// For pipes: `level=4 id=17 changed_at=…`.
    Plain,
}

impl Output {
    /// JSON when asked, else as stdout is a terminal or not.
    pub fn detect(json: bool) -> Self {
        if json {
            Self::Json
        } else if std::io::stdout().is_terminal() {
            Self::Terminal {
                colour: std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
            }
        } else {
            Self::Plain
        }
    }

    /// A publish's answer.
    pub fn published(self, level: i64, id: i64) {
        line(&match self {
            Self::Json => json!({"processed_id": id}).to_string(),
            Self::Terminal { colour } => {
                format!("published level {} as change {id}", paint(level, colour))
            }
            Self::Plain => format!("processed_id={id}"),
        });
    }

    /// A state, or `none` said when there is none.
    pub fn state(self, state: Option<&State>, none: &str) {
        match (self, state) {
            (_, Some(state)) => line(&self.format(state)),
            (Self::Json, None) => line("{}"),
            (Self::Terminal { .. }, None) => line(none),
            // Piped: nothing on stdout, so `[ -z "$(secapp poll)" ]` works.
            (Self::Plain, None) => {}
        }
    }

    /// One state as a line.
    pub fn format(self, state: &State) -> String {
        match self {
            Self::Json => json!({
                "current_status": state.level,
                "status_change_id": state.id,
                "Change_at": state.changed_at,
            })
            .to_string(),
            Self::Terminal { colour } => format!(
                "level {} since {} (change {})",
                paint(state.level, colour),
                state.changed_at,
                state.id
            ),
            Self::Plain => format!(
                "level={} id={} changed_at={}",
                state.level, state.id, state.changed_at
            ),
        }
    }
}

/// Prints a line and flushes it at once, so a pipe reader sees each change
/// as it happens.
pub fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    // A closed pipe is the reader's choice; nothing more to tell it.
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

/// The level, bold and coloured from green (1) to red (5 and above).
fn paint(level: i64, colour: bool) -> String {
    if !colour {
        return level.to_string();
    }
    let code = match level {
        ..=1 => 32,
        2 => 36,
        3 => 33,
        4 => 35,
        _ => 31,
    };
    format!("\x1b[1;{code}m{level}\x1b[0m")
}

#[cfg(test)]
mod tests {
    use secapp_client::State;

    use super::Output;

    #[test]
    fn each_output_says_the_same_state() {
        let state = State {
            level: 4,
            id: 17,
            changed_at: "2026-03-01T12:05:00Z".to_owned(),
        };
        assert_eq!(
            Output::Json.format(&state),
            r#"{"Change_at":"2026-03-01T12:05:00Z","current_status":4,"status_change_id":17}"#
        );
        assert_eq!(
            Output::Plain.format(&state),
            "level=4 id=17 changed_at=2026-03-01T12:05:00Z"
        );
        assert_eq!(
            Output::Terminal { colour: false }.format(&state),
            "level 4 since 2026-03-01T12:05:00Z (change 17)"
        );
        assert!(
            Output::Terminal { colour: true }
                .format(&state)
                .contains("\x1b[1;35m4\x1b[0m")
        );
    }
}
