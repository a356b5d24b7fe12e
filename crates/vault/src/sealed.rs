//! Sealing one secret that is not a credential (a webhook's signing secret): bytes ↔
//! `v1.<base64(nonce ‖ XChaCha20-Poly1305 ciphertext)>` under the vault key, with a fresh random
//! nonce per seal. The caller's label (e.g. `webhook:<workflow id>`) is the associated data, so
//! a sealed value copied to another label fails to open. Labels live in their own namespace
//! (`baton-sealed\0…`): no sealed secret opens as a credential, nor the reverse.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::{Aead, AeadCore, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use zeroize::Zeroizing;

use crate::key::VaultKey;

const FORMAT: &str = "v1.";
const NONCE_LEN: usize = 24;

/// A sealed secret that does not open. Never carries the secret or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    /// Another key sealed it (a different `BATON_CREDENTIALS_KEY`), or it was altered or moved
    /// to another label.
    #[error(
        "a sealed secret does not open: it was sealed with another BATON_CREDENTIALS_KEY, or \
         altered"
    )]
    Unreadable,
    /// Not the output of [`seal_secret`].
    #[error("a sealed secret is not in the vault's format: {0}")]
    Format(&'static str),
}

fn associated_data(label: &str) -> Vec<u8> {
    format!("baton-sealed\0{label}").into_bytes()
}

/// Encrypts `secret` for `label`.
pub fn seal_secret(key: &VaultKey, label: &str, secret: &[u8]) -> String {
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = associated_data(label);
    // Encryption fails only for a message over 256 GiB; a secret is a few bytes.
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: secret,
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    format!("{FORMAT}{}", STANDARD.encode(sealed))
}

/// Decrypts what [`seal_secret`] produced for the same label and key.
pub fn open_secret(
    key: &VaultKey,
    label: &str,
    sealed: &str,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let body = sealed
        .strip_prefix(FORMAT)
        .ok_or(OpenError::Format("unknown format (expected `v1.`)"))?;
    let bytes = STANDARD
        .decode(body)
        .map_err(|_| OpenError::Format("not base64"))?;
    if bytes.len() <= NONCE_LEN {
        return Err(OpenError::Format("shorter than its nonce"));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let aad = associated_data(label);
    key.cipher()
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| OpenError::Unreadable)
}

/// `N` bytes from the operating system's generator (new secrets).
pub fn random_bytes<const N: usize>() -> Zeroizing<[u8; N]> {
    let mut bytes = Zeroizing::new([0u8; N]);
    OsRng.fill_bytes(bytes.as_mut());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_secret_opens_only_under_its_label_and_key() {
        let key = VaultKey::generate();
        let sealed = seal_secret(&key, "webhook:orders", b"whsec_abc");
        assert!(!sealed.contains("whsec_abc"));
        assert_ne!(
            sealed,
            seal_secret(&key, "webhook:orders", b"whsec_abc"),
            "a fresh nonce per seal"
        );
        assert_eq!(
            open_secret(&key, "webhook:orders", &sealed)
                .unwrap()
                .as_slice(),
            b"whsec_abc"
        );
        assert_eq!(
            open_secret(&key, "webhook:other", &sealed).unwrap_err(),
            OpenError::Unreadable
        );
        assert_eq!(
            open_secret(&VaultKey::generate(), "webhook:orders", &sealed).unwrap_err(),
            OpenError::Unreadable
        );
        assert!(matches!(
            open_secret(&key, "webhook:orders", "whsec_abc"),
            Err(OpenError::Format(_))
        ));
    }

    #[test]
    fn a_sealed_secret_never_opens_as_a_credential() {
        let key = VaultKey::generate();
        let sealed = seal_secret(&key, "cred_1\0token", br#"{"token":"x"}"#);
        let err = crate::seal::open(&key, "cred_1", "token", None, &sealed).unwrap_err();
        assert!(matches!(err, crate::VaultError::Decrypt { .. }), "{err}");
    }

    #[test]
    fn random_bytes_differ_between_calls() {
        assert_ne!(*random_bytes::<32>(), *random_bytes::<32>());
    }
}
