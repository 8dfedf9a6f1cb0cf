//! The shared API token of the prototype, kept for compatibility: a secret
//! that never reaches a log, compared in constant time, stored in the data
//! dir as `api-token` (mode 0600).
//!
//! Data dirs created before per-application tokens hold one; new data dirs
//! get one only when the compatibility mode is switched on.

use std::fmt;
use std::fs;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq as _;

/// File name of the generated token inside the data dir.
pub const TOKEN_FILE: &str = "api-token";

/// Random bytes in a generated token (256 bits).
const TOKEN_BYTES: usize = 32;

/// The shared API token. `Debug` shows only that it is redacted.
#[derive(Clone)]
pub struct ApiToken {
    value: String,
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(<redacted>)")
    }
}

impl ApiToken {
    /// Wraps a token; `None` when it is empty or holds spaces or non-printable
    /// bytes (it could not be sent in a header as given).
    #[must_use]
    pub fn new(value: String) -> Option<Self> {
        let usable = !value.is_empty() && value.bytes().all(|b| b.is_ascii_graphic());
        usable.then_some(Self { value })
    }

    /// Whether `offered` is this token, compared in constant time. Only the
    /// length can show through the timing, and a generated token's length
    /// (64 hex digits) is no secret.
    #[must_use]
    pub fn matches(&self, offered: &[u8]) -> bool {
        self.value.as_bytes().ct_eq(offered).into()
    }

    /// The token itself, for printing once at generation.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.value
    }
}

/// Where the token in force came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOrigin {
    /// From `SECAPP_API_TOKEN`.
    Environment,
    /// Read from the token file in the data dir.
    Stored(PathBuf),
    /// Generated now and written to the token file: print it once.
    Generated(PathBuf),
}

/// Why the token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Reading or writing the file failed.
    #[error("cannot use the token file {path}: {source}")]
    Io {
        /// The token file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The file exists but holds no usable token.
    #[error(
        "the token file {0} holds no usable token: delete it to have a new one generated, or set SECAPP_API_TOKEN"
    )]
    Unusable(PathBuf),
    /// The system's random source failed.
    #[error("cannot generate a token: the system random source failed: {0}")]
    Random(getrandom::Error),
}

/// Reads the token stored in `data_dir`; `None` when there is no token file.
///
/// # Errors
/// [`TokenError`] when the file cannot be read or is unusable.
pub fn load(data_dir: &Path) -> Result<Option<(ApiToken, TokenOrigin)>, TokenError> {
    let path = data_dir.join(TOKEN_FILE);
    match fs::read_to_string(&path) {
        Ok(text) => {
            warn_if_readable_by_others(&path);
            let token = ApiToken::new(text.trim().to_owned())
                .ok_or_else(|| TokenError::Unusable(path.clone()))?;
            Ok(Some((token, TokenOrigin::Stored(path))))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(TokenError::Io { path, source }),
    }
}

/// Reads the token stored in `data_dir`, or generates one there (mode 0600).
///
/// # Errors
/// [`TokenError`] when the file cannot be read or written, or is unusable.
pub fn load_or_generate(data_dir: &Path) -> Result<(ApiToken, TokenOrigin), TokenError> {
    if let Some(found) = load(data_dir)? {
        return Ok(found);
    }
    let path = data_dir.join(TOKEN_FILE);
    let io_err = |source| TokenError::Io {
        path: path.clone(),
        source,
    };
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes).map_err(TokenError::Random)?;
    let value: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .map_err(io_err)?;
    file.write_all(value.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io_err)?;
    let token = ApiToken::new(value).ok_or_else(|| TokenError::Unusable(path.clone()))?;
    Ok((token, TokenOrigin::Generated(path)))
}

fn warn_if_readable_by_others(path: &Path) {
    if let Ok(meta) = fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            path = %path.display(),
            "the token file is readable by other users; run chmod 600 on it"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_is_exact() {
        let token = ApiToken::new("abc123".into()).unwrap();
        assert!(token.matches(b"abc123"));
        for wrong in [&b""[..], b"abc12", b"abc1234", b"ABC123", b"abc124"] {
            assert!(!token.matches(wrong));
        }
    }

    #[test]
    fn unusable_tokens_are_refused() {
        for bad in ["", "has space", "tab\t", "é"] {
            assert!(ApiToken::new(bad.into()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_generated_token_is_private_long_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let (first, origin) = load_or_generate(dir.path()).unwrap();
        let path = dir.path().join(TOKEN_FILE);
        assert_eq!(origin, TokenOrigin::Generated(path.clone()));
        assert_eq!(first.expose().len(), 64);
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let (again, origin) = load_or_generate(dir.path()).unwrap();
        assert_eq!(origin, TokenOrigin::Stored(path));
        assert_eq!(again.expose(), first.expose());
    }

    #[test]
    fn an_empty_token_file_is_an_error_saying_what_to_do() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(TOKEN_FILE), "\n").unwrap();
        let err = load_or_generate(dir.path()).unwrap_err().to_string();
        assert!(err.contains("delete it"), "{err}");
    }
}
