//! Webhooks (RFC 0006 § Webhooks): what an enabled webhook stores, its signing secret
//! (`whsec_<base64>`, sealed with the vault key at rest) and the Standard Webhooks signature
//! check: `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature` (`v1,<base64
//! HMAC-SHA256 of "id.timestamp.body">`, a space-separated list), within a 5-minute tolerance
//! either way. A webhook is off until enabled; replays are refused by remembering message ids
//! (see `History::claim_webhook_message`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use baton_vault::VaultKey;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// How far a `webhook-timestamp` may be from the master's clock, either way.
pub const TOLERANCE_SECS: i64 = 300;
/// How long an accepted message id is remembered: a timestamp accepted now may be up to
/// [`TOLERANCE_SECS`] ahead, and stays acceptable for [`TOLERANCE_SECS`] after that.
pub const REMEMBER_SECS: u64 = 2 * TOLERANCE_SECS as u64;
/// Longest accepted `webhook-id`.
pub const MAX_ID_LEN: usize = 256;
/// Prefix of a secret's text form.
pub const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a generated secret; a given one must decode to 24–64 bytes.
const GENERATED_LEN: usize = 32;
const MIN_LEN: usize = 24;
const MAX_LEN: usize = 64;

/// How callers of an enabled webhook prove who they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookAuth {
    /// Standard Webhooks signature with the webhook's own secret.
    Signature,
    /// `Authorization: Bearer <token>` with one of the API's tokens (`BATON_API_TOKENS`).
    Bearer,
}

impl WebhookAuth {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Signature => "signature",
            Self::Bearer => "bearer",
        }
    }
}

/// An enabled webhook as the history stores it. The secret is sealed: only a master holding
/// the vault key opens it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookRecord {
    pub auth: WebhookAuth,
    /// `v1.<…>` from [`seal`] (`signature` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed_secret: Option<String>,
    /// RFC 3339.
    pub enabled_at: String,
}

/// A webhook's signing key: the bytes of `whsec_<base64>`. Wiped when dropped.
pub struct SigningSecret(Zeroizing<Vec<u8>>);

impl std::fmt::Debug for SigningSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningSecret(<redacted>)")
    }
}

impl SigningSecret {
    /// Parses `whsec_<base64>` (24 to 64 bytes once decoded).
    pub fn parse(text: &str) -> Result<Self, String> {
        let encoded = text.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("expected `{SECRET_PREFIX}` followed by base64 (24 to 64 random bytes)")
        })?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(encoded)
                .map_err(|_| format!("the part after `{SECRET_PREFIX}` is not base64"))?,
        );
        if !(MIN_LEN..=MAX_LEN).contains(&bytes.len()) {
            return Err(format!(
                "the secret decodes to {} bytes: expected 24 to 64",
                bytes.len()
            ));
        }
        Ok(Self(bytes))
    }

    /// A new random secret.
    pub fn generate() -> Self {
        Self(Zeroizing::new(
            baton_vault::random_bytes::<GENERATED_LEN>().to_vec(),
        ))
    }

    /// `whsec_<base64>`: what the sender configures.
    pub fn to_text(&self) -> Zeroizing<String> {
        Zeroizing::new(format!("{SECRET_PREFIX}{}", STANDARD.encode(&*self.0)))
    }

    /// The signature of one message: base64 of HMAC-SHA256 over `id.timestamp.body`.
    pub fn sign(&self, id: &str, timestamp: &str, body: &[u8]) -> String {
        STANDARD.encode(self.mac(id, timestamp, body))
    }

    fn mac(&self, id: &str, timestamp: &str, body: &[u8]) -> Vec<u8> {
        // HMAC accepts a key of any length.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(id.as_bytes());
        mac.update(b".");
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        mac.finalize().into_bytes().to_vec()
    }
}

fn label(workflow_id: &str) -> String {
    format!("webhook:{workflow_id}")
}

/// The secret sealed for one workflow's webhook (it opens for no other workflow).
pub fn seal(key: &VaultKey, workflow_id: &str, secret: &SigningSecret) -> String {
    baton_vault::seal_secret(key, &label(workflow_id), &secret.0)
}

/// Opens what [`seal`] stored for `workflow_id`.
pub fn open(
    key: &VaultKey,
    workflow_id: &str,
    sealed: &str,
) -> Result<SigningSecret, baton_vault::OpenError> {
    baton_vault::open_secret(key, &label(workflow_id), sealed).map(SigningSecret)
}

/// The three Standard Webhooks headers of a request, as sent.
#[derive(Debug, Clone, Copy, Default)]
pub struct Signed<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

/// Why a signed request is refused. The message tells the sender what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "this webhook needs the Standard Webhooks headers `webhook-id`, `webhook-timestamp` and \
         `webhook-signature` (missing: {0})"
    )]
    Missing(&'static str),
    #[error("`webhook-id` must be 1 to 256 printable ASCII characters without spaces or dots")]
    BadId,
    #[error("`webhook-timestamp` must be the unix time in seconds")]
    BadTimestamp,
    #[error(
        "`webhook-timestamp` is {0} s from the master's clock: more than the 300 s tolerance \
         (sign each request when it is sent)"
    )]
    Skewed(i64),
    #[error(
        "`webhook-signature` does not match: expected `v1,<base64 HMAC-SHA256 of \
         \"<webhook-id>.<webhook-timestamp>.<body>\">` with the webhook's secret"
    )]
    Mismatch,
}

/// Checks a signed request at `now_unix`; returns its message id.
pub fn verify<'a>(
    secret: &SigningSecret,
    signed: Signed<'a>,
    body: &[u8],
    now_unix: i64,
) -> Result<&'a str, Refusal> {
    let id = signed.id.ok_or(Refusal::Missing("webhook-id"))?;
    let timestamp = signed
        .timestamp
        .ok_or(Refusal::Missing("webhook-timestamp"))?;
    let signature = signed
        .signature
        .ok_or(Refusal::Missing("webhook-signature"))?;
    // A dot would make `id.timestamp.body` ambiguous (a replay under another id).
    let id_ok = (1..=MAX_ID_LEN).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_graphic() && b != b'.');
    if !id_ok {
        return Err(Refusal::BadId);
    }
    let sent: i64 = timestamp
        .bytes()
        .all(|b| b.is_ascii_digit())
        .then(|| timestamp.parse().ok())
        .flatten()
        .ok_or(Refusal::BadTimestamp)?;
    let skew = sent.saturating_sub(now_unix);
    if skew.abs() > TOLERANCE_SECS {
        return Err(Refusal::Skewed(skew));
    }
    let expected = secret.mac(id, timestamp, body);
    let mut matched = false;
    for candidate in signature.split_ascii_whitespace() {
        let Some(encoded) = candidate.strip_prefix("v1,") else {
            continue; // another scheme (e.g. `v1a,` asymmetric): not ours
        };
        if let Ok(bytes) = STANDARD.decode(encoded) {
            // Every candidate is compared, each in constant time.
            matched |= bool::from(bytes.ct_eq(&expected));
        }
    }
    if matched {
        Ok(id)
    } else {
        Err(Refusal::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_765_000_000;

    fn secret() -> SigningSecret {
        // The Standard Webhooks specification's example secret.
        SigningSecret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap()
    }

    fn signed<'a>(id: &'a str, ts: &'a str, sig: &'a str) -> Signed<'a> {
        Signed {
            id: Some(id),
            timestamp: Some(ts),
            signature: Some(sig),
        }
    }

    #[test]
    fn the_signature_matches_the_standard_webhooks_reference_vector() {
        // From the Standard Webhooks reference libraries' test suite.
        let sig = secret().sign(
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "1614265330",
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(sig, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn a_request_signed_now_with_the_secret_is_accepted_and_any_change_refused() {
        let s = secret();
        let ts = NOW.to_string();
        let body = br#"{"a":1}"#;
        let sig = format!("v1,{}", s.sign("msg_1", &ts, body));
        assert_eq!(
            verify(&s, signed("msg_1", &ts, &sig), body, NOW),
            Ok("msg_1")
        );
        // One of several signatures (secret rotation), other schemes ignored.
        let listed = format!("v1a,xyz v1,AAAA {sig}");
        assert_eq!(
            verify(&s, signed("msg_1", &ts, &listed), body, NOW),
            Ok("msg_1")
        );
        let refused = |id: &str, ts: &str, sig: &str, body: &[u8]| {
            verify(&s, signed(id, ts, sig), body, NOW).unwrap_err()
        };
        assert_eq!(refused("msg_2", &ts, &sig, body), Refusal::Mismatch);
        assert_eq!(
            refused("msg_1", &(NOW + 1).to_string(), &sig, body),
            Refusal::Mismatch
        );
        assert_eq!(
            refused("msg_1", &ts, &sig, br#"{"a":2}"#),
            Refusal::Mismatch
        );
        assert_eq!(refused("msg_1", &ts, "v1,???", body), Refusal::Mismatch);
        assert_eq!(
            refused("msg_1", &ts, &sig.replacen("v1", "v2", 1), body),
            Refusal::Mismatch
        );
        let other = SigningSecret::generate();
        assert_eq!(
            verify(&other, signed("msg_1", &ts, &sig), body, NOW),
            Err(Refusal::Mismatch)
        );
    }

    #[test]
    fn timestamps_beyond_five_minutes_either_way_are_refused() {
        let s = secret();
        let body = b"{}";
        for (offset, ok) in [
            (-300, true),
            (300, true),
            (-301, false),
            (301, false),
            (-360, false),
            (360, false),
        ] {
            let ts = (NOW + offset).to_string();
            let sig = format!("v1,{}", s.sign("m", &ts, body));
            let got = verify(&s, signed("m", &ts, &sig), body, NOW);
            if ok {
                assert_eq!(got, Ok("m"), "offset {offset}");
            } else {
                assert_eq!(got, Err(Refusal::Skewed(offset)), "offset {offset}");
            }
        }
        for bad in [
            "",
            "12.5",
            "+1765000000",
            " 1765000000",
            "1e9",
            "99999999999999999999",
        ] {
            let sig = format!("v1,{}", s.sign("m", bad, body));
            assert_eq!(
                verify(&s, signed("m", bad, &sig), body, NOW),
                Err(Refusal::BadTimestamp),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn missing_headers_and_ambiguous_ids_are_refused() {
        let s = secret();
        let ts = NOW.to_string();
        let sig = format!("v1,{}", s.sign("m", &ts, b"{}"));
        let mut partial = signed("m", &ts, &sig);
        partial.signature = None;
        assert_eq!(
            verify(&s, partial, b"{}", NOW),
            Err(Refusal::Missing("webhook-signature"))
        );
        assert_eq!(
            verify(&s, Signed::default(), b"{}", NOW),
            Err(Refusal::Missing("webhook-id"))
        );
        let long = "x".repeat(MAX_ID_LEN + 1);
        for id in ["", "a.b", "a b", long.as_str()] {
            assert_eq!(
                verify(&s, signed(id, &ts, &sig), b"{}", NOW),
                Err(Refusal::BadId),
                "{id:?}"
            );
        }
    }

    #[test]
    fn secrets_are_whsec_base64_of_24_to_64_bytes() {
        let generated = SigningSecret::generate();
        let text = generated.to_text();
        assert!(text.starts_with("whsec_"));
        assert_eq!(SigningSecret::parse(&text).unwrap().0, generated.0);
        assert_ne!(SigningSecret::generate().0, generated.0);
        for bad in [
            "s3cret",
            "whsec_not base64!",
            "whsec_c2hvcnQ=",
            "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        ] {
            assert!(SigningSecret::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(format!("{generated:?}"), "SigningSecret(<redacted>)");
    }

    #[test]
    fn a_sealed_secret_opens_only_for_its_own_workflow() {
        let key = VaultKey::generate();
        let s = secret();
        let sealed = seal(&key, "orders", &s);
        assert!(!sealed.contains("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"));
        assert_eq!(open(&key, "orders", &sealed).unwrap().0, s.0);
        assert!(open(&key, "billing", &sealed).is_err());
        assert!(open(&VaultKey::generate(), "orders", &sealed).is_err());
    }
}
