//! Sealing: a credential's secret fields ↔ `v1.<base64(nonce ‖ ciphertext)>`. Each seal uses a
//! fresh random 24-byte nonce; the credential id, type and scope are the associated data, so a
//! ciphertext copied to another credential (or relabelled with another type, or given a wider
//! scope in Redis) fails to open. Records written before scopes existed have no scope in their
//! associated data; they open with an empty scope (sent nowhere).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chacha20poly1305::aead::{Aead, AeadCore, OsRng, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use baton_engine::CredentialScope;
use baton_engine::ports::{CredentialMeta, RevealedCredential};

use crate::VaultError;
use crate::key::VaultKey;

const FORMAT: &str = "v1.";
const NONCE_LEN: usize = 24;

fn associated_data(credential_id: &str, type_name: &str, scope: Option<&str>) -> Vec<u8> {
    // NUL cannot occur in any part's meaning, so the parts are unambiguous.
    let mut aad = format!("baton-credential\0{credential_id}\0{type_name}");
    if let Some(scope) = scope {
        aad.push('\0');
        aad.push_str(scope);
    }
    aad.into_bytes()
}

/// The scope as stored next to the ciphertext (and bound into it).
pub(crate) fn scope_text(scope: &CredentialScope) -> Result<String, VaultError> {
    serde_json::to_string(scope).map_err(|e| VaultError::Other(format!("serialize scope: {e}")))
}

/// The stored scope text back; `None` (a record from before scopes): the empty scope.
pub(crate) fn parse_scope(
    credential_id: &str,
    text: Option<&str>,
) -> Result<CredentialScope, VaultError> {
    match text {
        None => Ok(CredentialScope::default()),
        Some(t) => serde_json::from_str(t).map_err(|_| VaultError::Corrupt {
            credential_id: credential_id.to_string(),
            problem: "its scope is not valid JSON".into(),
        }),
    }
}

/// A new credential's metadata and its sealed fields: what every vault's `put` stores.
pub(crate) fn new_credential(
    key: &VaultKey,
    name: &str,
    type_name: &str,
    data: &Map<String, Value>,
    scope: &CredentialScope,
) -> Result<(CredentialMeta, String, String), VaultError> {
    if name.trim().is_empty() {
        return Err(VaultError::EmptyName);
    }
    scope.validate().map_err(VaultError::Scope)?;
    let meta = CredentialMeta {
        credential_id: crate::new_credential_id(),
        name: name.to_string(),
        type_name: type_name.to_string(),
        created_at: crate::now_rfc3339(),
        scope: scope.clone(),
    };
    let scope = scope_text(scope)?;
    let sealed = seal(key, &meta.credential_id, type_name, Some(&scope), data)?;
    Ok((meta, sealed, scope))
}

/// What every vault's `reveal` returns for a stored credential: its opened fields, with its
/// type, and its scope (`scope`: the stored text, `None` for a record from before scopes).
pub(crate) fn reveal(
    key: &VaultKey,
    credential_id: &str,
    type_name: String,
    scope: Option<&str>,
    sealed: &str,
) -> Result<RevealedCredential, VaultError> {
    let fields = open(key, credential_id, &type_name, scope, sealed)?;
    Ok(RevealedCredential {
        fields: crate::with_type(fields, type_name),
        scope: parse_scope(credential_id, scope)?,
    })
}

/// Encrypts `data` for `credential_id`.
pub(crate) fn seal(
    key: &VaultKey,
    credential_id: &str,
    type_name: &str,
    scope: Option<&str>,
    data: &Map<String, Value>,
) -> Result<String, VaultError> {
    let plaintext = Zeroizing::new(
        serde_json::to_vec(data).map_err(|e| VaultError::Other(format!("serialize: {e}")))?,
    );
    let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
    let aad = associated_data(credential_id, type_name, scope);
    let ciphertext = key
        .cipher()
        .encrypt(
            &nonce,
            Payload {
                msg: &plaintext,
                aad: &aad,
            },
        )
        .map_err(|_| VaultError::Other("encryption failed".into()))?;
    let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
    sealed.extend_from_slice(&nonce);
    sealed.extend_from_slice(&ciphertext);
    Ok(format!("{FORMAT}{}", STANDARD.encode(sealed)))
}

/// Decrypts what `seal` produced for the same id and type.
pub(crate) fn open(
    key: &VaultKey,
    credential_id: &str,
    type_name: &str,
    scope: Option<&str>,
    sealed: &str,
) -> Result<Map<String, Value>, VaultError> {
    let corrupt = |problem: &str| VaultError::Corrupt {
        credential_id: credential_id.to_string(),
        problem: problem.to_string(),
    };
    let body = sealed
        .strip_prefix(FORMAT)
        .ok_or_else(|| corrupt("unknown format (expected `v1.`)"))?;
    let bytes = STANDARD
        .decode(body)
        .map_err(|_| corrupt("ciphertext is not base64"))?;
    if bytes.len() < NONCE_LEN {
        return Err(corrupt("ciphertext is shorter than its nonce"));
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let aad = associated_data(credential_id, type_name, scope);
    let plaintext = Zeroizing::new(
        key.cipher()
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Decrypt {
                credential_id: credential_id.to_string(),
            })?,
    );
    serde_json::from_slice(&plaintext).map_err(|_| corrupt("decrypted data is not a JSON object"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn secret() -> Map<String, Value> {
        json!({"token": "s3cr3t-value"})
            .as_object()
            .cloned()
            .unwrap()
    }

    #[test]
    fn sealing_twice_gives_different_ciphertexts_that_both_open() {
        let key = VaultKey::generate();
        let a = seal(&key, "cred_1", "token", None, &secret()).unwrap();
        let b = seal(&key, "cred_1", "token", None, &secret()).unwrap();
        assert_ne!(a, b, "a fresh nonce per write");
        assert!(!a.contains("s3cr3t"));
        assert_eq!(open(&key, "cred_1", "token", None, &a).unwrap(), secret());
        assert_eq!(open(&key, "cred_1", "token", None, &b).unwrap(), secret());
    }

    #[test]
    fn a_ciphertext_opens_only_for_its_own_id_type_and_key() {
        let key = VaultKey::generate();
        let sealed = seal(&key, "cred_1", "token", None, &secret()).unwrap();
        for (id, ty, k) in [
            ("cred_2", "token", key.clone()),
            ("cred_1", "header", key.clone()),
            ("cred_1", "token", VaultKey::generate()),
        ] {
            let err = open(&k, id, ty, None, &sealed).unwrap_err();
            assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
        }
    }

    #[test]
    fn a_flipped_bit_is_detected() {
        let key = VaultKey::generate();
        let sealed = seal(&key, "cred_1", "token", None, &secret()).unwrap();
        let mut bytes = STANDARD.decode(&sealed[FORMAT.len()..]).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = format!("{FORMAT}{}", STANDARD.encode(bytes));
        let err = open(&key, "cred_1", "token", None, &tampered).unwrap_err();
        assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
        let err = open(&key, "cred_1", "token", None, "v9.abc").unwrap_err();
        assert!(err.to_string().contains("unknown format"), "{err}");
    }

    #[test]
    fn a_widened_scope_does_not_open() {
        let key = VaultKey::generate();
        let narrow = r#"{"hosts":["api.example.com"]}"#;
        let sealed = seal(&key, "cred_1", "token", Some(narrow), &secret()).unwrap();
        assert_eq!(
            open(&key, "cred_1", "token", Some(narrow), &sealed).unwrap(),
            secret()
        );
        for wider in [Some(r#"{"hosts":["*"]}"#), None] {
            let err = open(&key, "cred_1", "token", wider, &sealed).unwrap_err();
            assert!(matches!(err, VaultError::Decrypt { .. }), "{err}");
        }
    }
}
