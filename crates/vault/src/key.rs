//! `VaultKey`: the 32-byte key credentials are encrypted with (`BATON_CREDENTIALS_KEY`,
//! base64). It never prints itself and is wiped from memory when dropped.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::OsRng;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::{KeyInit, XChaCha20Poly1305};
use zeroize::Zeroizing;

/// Number of bytes in a key.
pub const KEY_LEN: usize = 32;

/// The vault's encryption key.
#[derive(Clone)]
pub struct VaultKey(Zeroizing<[u8; KEY_LEN]>);

impl std::fmt::Debug for VaultKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VaultKey(<redacted>)")
    }
}

/// A configured key that cannot be used. Never contains the configured text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error(
        "BATON_CREDENTIALS_KEY is not valid base64: expected 32 random bytes encoded in base64 \
         (e.g. the output of `openssl rand -base64 32`)"
    )]
    Encoding,
    #[error(
        "BATON_CREDENTIALS_KEY decodes to {0} bytes: expected exactly 32 (base64 of 32 random \
         bytes, e.g. the output of `openssl rand -base64 32`)"
    )]
    Length(usize),
}

impl VaultKey {
    /// Parses a base64 key (standard or URL-safe alphabet, padded or not; surrounding
    /// whitespace ignored).
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or(KeyError::Encoding)?;
        let bytes: [u8; KEY_LEN] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::Length(decoded.len()))?;
        Ok(Self(Zeroizing::new(bytes)))
    }

    /// A new random key from the operating system's generator.
    pub fn generate() -> Self {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        OsRng.fill_bytes(bytes.as_mut());
        Self(bytes)
    }

    /// The key in standard base64, the form `from_base64` reads (to print a generated key
    /// once for an operator to store).
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    /// A short public fingerprint of the key (16 hex digits of SHA-256 over a domain label and
    /// the key): what the vault records so that a process holding another key can tell, at
    /// startup, that it cannot open the vault. It reveals nothing usable about the key.
    pub fn key_id(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::new()
            .chain_update(b"baton-vault-key-id\0")
            .chain_update(self.0.as_ref())
            .finalize();
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    pub(crate) fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(self.0.as_ref().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_round_trips_through_base64_and_accepts_url_safe_unpadded_text() {
        let key = VaultKey::generate();
        let text = key.to_base64();
        let again = VaultKey::from_base64(&text).unwrap();
        assert_eq!(again.0.as_ref(), key.0.as_ref());
        let url = URL_SAFE_NO_PAD.encode(key.0.as_ref());
        assert_eq!(
            VaultKey::from_base64(&format!(" {url}\n"))
                .unwrap()
                .0
                .as_ref(),
            key.0.as_ref()
        );
    }

    #[test]
    fn a_key_of_the_wrong_length_or_encoding_is_refused_with_a_clear_error() {
        let short = STANDARD.encode([7u8; 16]);
        let err = VaultKey::from_base64(&short).unwrap_err();
        assert_eq!(err, KeyError::Length(16));
        assert!(err.to_string().contains("exactly 32"), "{err}");
        let err = VaultKey::from_base64("not base64 at all!").unwrap_err();
        assert_eq!(err, KeyError::Encoding);
        assert!(!err.to_string().contains("not base64 at all"), "{err}");
    }

    #[test]
    fn the_key_id_is_stable_per_key_and_differs_between_keys() {
        let key = VaultKey::generate();
        let again = VaultKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(key.key_id(), again.key_id());
        assert_eq!(key.key_id().len(), 16);
        assert_ne!(key.key_id(), VaultKey::generate().key_id());
        assert!(!key.to_base64().contains(&key.key_id()));
    }

    #[test]
    fn debug_never_prints_the_key() {
        let key = VaultKey::generate();
        let shown = format!("{key:?}");
        assert_eq!(shown, "VaultKey(<redacted>)");
        assert!(!shown.contains(key.to_base64().as_str()));
    }
}
