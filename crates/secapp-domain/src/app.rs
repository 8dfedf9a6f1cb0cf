//! Application names, as sent in the `App-name` header.

use std::borrow::Borrow;
use std::fmt;

/// The longest application name accepted, in bytes.
pub const MAX_APP_NAME_LEN: usize = 128;

/// The name of an application: non-empty, at most [`MAX_APP_NAME_LEN`] bytes of
/// printable ASCII (spaces allowed inside, not at either end).
///
/// Names are compared exactly: `Billing` and `billing` are two applications,
/// as they were in the prototype.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AppName(String);

/// Why an application name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AppNameError {
    /// The name is empty (or only spaces).
    #[error("the application name is empty")]
    Empty,
    /// The name is longer than [`MAX_APP_NAME_LEN`] bytes.
    #[error("the application name is longer than {MAX_APP_NAME_LEN} bytes")]
    TooLong,
    /// The name holds a control character, non-ASCII text or edge spaces.
    #[error("the application name must be printable ASCII without leading or trailing spaces")]
    NotPrintable,
}

impl AppName {
    /// Parses a name.
    ///
    /// # Errors
    /// See [`AppNameError`].
    pub fn parse(raw: &str) -> Result<Self, AppNameError> {
        if raw.trim().is_empty() {
            return Err(AppNameError::Empty);
        }
        if raw.len() > MAX_APP_NAME_LEN {
            return Err(AppNameError::TooLong);
        }
        let printable = raw.bytes().all(|b| (0x20..0x7f).contains(&b));
        if !printable || raw.starts_with(' ') || raw.ends_with(' ') {
            return Err(AppNameError::NotPrintable);
        }
        Ok(Self(raw.to_owned()))
    }

    /// The name as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for AppName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for AppName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AppName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names_are_accepted_as_they_are() {
        for name in ["billing", "Billing-API", "team a/svc.v2", "x", "a_b:c@d"] {
            assert_eq!(AppName::parse(name).unwrap().as_str(), name);
        }
        assert!(AppName::parse(&"a".repeat(MAX_APP_NAME_LEN)).is_ok());
    }

    #[test]
    fn empty_long_and_unprintable_names_are_refused() {
        assert_eq!(AppName::parse(""), Err(AppNameError::Empty));
        assert_eq!(AppName::parse("   "), Err(AppNameError::Empty));
        assert_eq!(
            AppName::parse(&"a".repeat(MAX_APP_NAME_LEN + 1)),
            Err(AppNameError::TooLong)
        );
        for bad in [" lead", "trail ", "tab\there", "nl\n", "del\x7f", "café"] {
            assert_eq!(
                AppName::parse(bad),
                Err(AppNameError::NotPrintable),
                "{bad:?}"
            );
        }
    }
}
