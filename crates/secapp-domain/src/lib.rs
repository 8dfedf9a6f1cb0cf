//! The secapp domain: what a criticality level is, which change is the
//! current state, and who has been told it. Plain Rust, no I/O, no clock:
//! callers pass the time in, so every rule here is tested in microseconds.
//!
//! - [`level`]: [`Level`] and the configured [`LevelRange`] it must lie in.
//! - [`app`]: [`AppName`], the validated name of a publishing or polling application.
//! - [`time`]: [`ChangedAt`], a parsed, UTC-normalised `Change_at` and the future-skew guard.
//! - [`ledger`]: [`Change`], [`Head`], [`Version`] and the ordering rule in [`Ledger::apply`].
//! - [`cursor`]: [`Cursor`], what one application has been told, and when it must be told again.
//! - [`role`]: [`Role`] and [`Roles`], what an application may do.
//! - [`consumer`]: [`Consumer`], one application's cursor and [`Knowledge`]: the newest state it was sent and acknowledged.

pub mod app;
pub mod consumer;
pub mod cursor;
pub mod ledger;
pub mod level;
pub mod role;
pub mod time;

pub use app::{AppName, AppNameError};
pub use consumer::{Consumer, Knowledge, Mode, Sighting};
pub use cursor::Cursor;
pub use ledger::{Change, ChangeId, Head, Ledger, Outcome, Version};
pub use level::{Level, LevelError, LevelRange};
pub use role::{Role, RoleError, Roles};
pub use time::{ChangedAt, TimestampError, earliest, in_range, latest, shown};
