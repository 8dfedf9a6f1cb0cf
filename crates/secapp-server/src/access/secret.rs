//! Token secrets: generated from the system's random source, shown once,
//! kept only as a SHA-256 hash.
//!
//! A token carries 256 random bits, so a plain SHA-256 is enough to make the
//! stored hash useless to whoever reads the database: there is no password
//! to guess. A slow password hash (argon2, bcrypt) would only cost time on
//! every request.

use std::fmt;

use sha2::{Digest as _, Sha256};

/// Every issued token starts with this, so secret scanners and people can
/// recognise one.
pub const TOKEN_PREFIX: &str = "secapp_";

/// Random bytes in a token (256 bits).
const SECRET_BYTES: usize = 32;

/// Random bytes in a token id (64 bits: ids must not collide, not stay secret).
const ID_BYTES: usize = 8;

/// A freshly issued token. `Debug` shows only that it is redacted.
pub struct Secret(String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl Secret {
    /// A new random token: the prefix and 64 hex digits.
    ///
    /// # Errors
    /// When the system's random source fails.
    pub fn generate() -> Result<Self, getrandom::Error> {
        Ok(Self(format!(
            "{TOKEN_PREFIX}{}",
            random_hex::<SECRET_BYTES>()?
        )))
    }

    /// The token, to show once.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its hash, the only form that is stored.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        hash(self.0.as_bytes())
    }
}

/// SHA-256 of an offered token.
#[must_use]
pub fn hash(token: &[u8]) -> [u8; 32] {
    Sha256::digest(token).into()
}

/// A new token id: `tok_` and 16 hex digits.
///
/// # Errors
/// When the system's random source fails.
pub fn new_token_id() -> Result<String, getrandom::Error> {
    Ok(format!("tok_{}", random_hex::<ID_BYTES>()?))
}

fn random_hex<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_prefixed_256_bit_hex_and_never_repeats() {
        let a = Secret::generate().unwrap();
        let b = Secret::generate().unwrap();
        let hex = a.expose().strip_prefix(TOKEN_PREFIX).unwrap();
        assert_eq!(hex.len(), 64);
        assert!(hex.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(format!("{a:?}"), "Secret(<redacted>)");
    }

    #[test]
    fn the_hash_is_sha256_of_the_token_text() {
        // SHA-256("abc") from FIPS 180-2, appendix B.1.
        let expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        let got: String = hash(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
        let secret = Secret::generate().unwrap();
        assert_eq!(secret.hash(), hash(secret.expose().as_bytes()));
    }

    #[test]
    fn ids_are_prefixed_hex() {
        let id = new_token_id().unwrap();
        assert_eq!(id.len(), 4 + 16);
        assert!(id.starts_with("tok_"));
    }
}
