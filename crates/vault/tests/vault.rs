//! The vault contract, run against both implementations, and what only Redis can show: the
//! value at rest, tampering in place, a second process with another key.

use std::sync::Arc;

use baton_engine::CredentialScope;
use baton_engine::ports::CredentialVault;
use baton_vault::{MemoryVault, RedisVault, VaultKey};
use serde_json::{Map, Value, json};

const SECRET: &str = "hunter2-very-secret-token";

fn redis_url() -> String {
    std::env::var("BATON_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into())
}

fn fields(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap()
}

/// Deletes every key under a test's prefix when dropped.
struct Prefix(String);

impl Prefix {
    fn new() -> Self {
        Self(format!("test-vault-{}", uuid::Uuid::new_v4()))
    }
}

impl Drop for Prefix {
    fn drop(&mut self) {
        if let Ok(client) = redis::Client::open(redis_url())
            && let Ok(mut conn) = client.get_connection()
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{}:*", self.0))
                .query(&mut conn)
                .unwrap_or_default();
            for k in keys {
                let _: Result<(), _> = redis::cmd("DEL").arg(k).query(&mut conn);
            }
        }
    }
}

async fn connection() -> baton_redis::RedisConnection {
    let target = baton_redis::RedisTarget::parse(&redis_url(), false).unwrap();
    baton_redis::connect(&target, baton_redis::Timeouts::default())
        .await
        .unwrap()
}

/// What every vault must do.
async fn vault_contract(vault: &dyn CredentialVault) {
    assert!(vault.list().await.unwrap().is_empty());
    let data = fields(json!({"token": SECRET, "extra": {"n": 1}}));
    let a = vault
        .put(
            "github",
            "token",
            &data,
            &CredentialScope::hosts(["api.github.com"]),
        )
        .await
        .unwrap();
    let b = vault
        .put(
            "smtp",
            "basic_auth",
            &fields(json!({"username": "u", "password": "p"})),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    assert_ne!(a.credential_id, b.credential_id);
    assert_eq!((a.name.as_str(), a.type_name.as_str()), ("github", "token"));
    assert!(!a.created_at.is_empty());

    // Round trip: the fields come back, plus the credential's type for the nodes.
    let mut expected = data.clone();
    expected.insert("type".into(), json!("token"));
    let revealed = vault.reveal(&a.credential_id).await.unwrap().unwrap();
    assert_eq!(revealed.fields, expected);
    assert_eq!(revealed.scope, CredentialScope::hosts(["api.github.com"]));
    assert_eq!(a.scope, revealed.scope);

    // Listing shows what is stored, in creation order, and never the data.
    let listed = vault.list().await.unwrap();
    assert_eq!(listed, vec![a.clone(), b.clone()]);
    let listed_json = serde_json::to_string(&listed).unwrap();
    assert!(!listed_json.contains(SECRET), "{listed_json}");

    assert_eq!(vault.reveal("cred_unknown").await.unwrap(), None);
    assert!(
        vault
            .put(" ", "token", &data, &CredentialScope::any())
            .await
            .is_err(),
        "a name is required"
    );

    assert!(vault.delete(&a.credential_id).await.unwrap());
    assert!(!vault.delete(&a.credential_id).await.unwrap());
    assert_eq!(vault.reveal(&a.credential_id).await.unwrap(), None);
    assert_eq!(vault.list().await.unwrap(), vec![b]);
}

#[tokio::test]
async fn memory_vault_meets_the_contract() {
    vault_contract(&MemoryVault::new(VaultKey::generate())).await;
}

#[tokio::test]
async fn redis_vault_meets_the_contract() {
    let prefix = Prefix::new();
    let vault = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    vault_contract(&vault).await;
}

#[tokio::test]
async fn the_value_at_rest_in_redis_is_ciphertext_without_the_secret() {
    let prefix = Prefix::new();
    let vault = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    let meta = vault
        .put(
            "api",
            "header",
            &fields(json!({"field": "X-Key", "value": SECRET})),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    let mut conn = connection().await;
    let raw: Vec<(String, String)> = redis::cmd("HGETALL")
        .arg(vault.record_key(&meta.credential_id))
        .query_async(&mut conn)
        .await
        .unwrap();
    let dump = format!("{raw:?}");
    assert!(dump.contains("v1."), "{dump}");
    assert!(dump.contains("\"api\""), "metadata is in clear: {dump}");
    assert!(!dump.contains(SECRET), "{dump}");
    assert!(!dump.contains("X-Key"), "every field is encrypted: {dump}");
}

#[tokio::test]
async fn a_tampered_or_moved_ciphertext_in_redis_fails_to_decrypt() {
    let prefix = Prefix::new();
    let vault = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    let data = fields(json!({"token": SECRET}));
    let a = vault
        .put("a", "token", &data, &CredentialScope::any())
        .await
        .unwrap();
    let b = vault
        .put("b", "token", &data, &CredentialScope::any())
        .await
        .unwrap();
    let mut conn = connection().await;
    let sealed: String = redis::cmd("HGET")
        .arg(vault.record_key(&a.credential_id))
        .arg("data")
        .query_async(&mut conn)
        .await
        .unwrap();

    // Moved: a's ciphertext under b's id.
    let _: () = redis::cmd("HSET")
        .arg(vault.record_key(&b.credential_id))
        .arg("data")
        .arg(&sealed)
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = vault
        .reveal(&b.credential_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&b.credential_id) && err.contains("cannot be decrypted"),
        "{err}"
    );

    // Altered in place: one character of the ciphertext changed.
    let mut altered: Vec<char> = sealed.chars().collect();
    let i = altered.len() / 2;
    altered[i] = if altered[i] == 'A' { 'B' } else { 'A' };
    let _: () = redis::cmd("HSET")
        .arg(vault.record_key(&a.credential_id))
        .arg("data")
        .arg(altered.into_iter().collect::<String>())
        .query_async(&mut conn)
        .await
        .unwrap();
    let err = vault
        .reveal(&a.credential_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot be decrypted"), "{err}");
    assert!(!err.contains(SECRET));
}

#[tokio::test]
async fn a_vault_with_another_key_cannot_reveal_but_still_lists() {
    let prefix = Prefix::new();
    let writer = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    let reader = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    let meta = writer
        .put(
            "db",
            "token",
            &fields(json!({"token": SECRET})),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    let err = reader
        .reveal(&meta.credential_id)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("BATON_CREDENTIALS_KEY"), "{err}");
    assert_eq!(reader.list().await.unwrap(), vec![meta]);
}

#[tokio::test]
async fn a_tampered_ciphertext_in_memory_fails_to_decrypt() {
    let vault = Arc::new(MemoryVault::new(VaultKey::generate()));
    let meta = vault
        .put(
            "x",
            "token",
            &fields(json!({"token": SECRET})),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    let sealed = vault.sealed(&meta.credential_id).unwrap();
    assert!(!sealed.contains(SECRET));
    let mut altered: Vec<char> = sealed.chars().collect();
    let i = altered.len() - 5;
    altered[i] = if altered[i] == 'A' { 'B' } else { 'A' };
    assert!(vault.replace_sealed(&meta.credential_id, altered.into_iter().collect()));
    let err = vault.reveal(&meta.credential_id).await.unwrap_err();
    assert!(err.to_string().contains("cannot be decrypted"), "{err}");
}

#[tokio::test]
async fn the_first_process_records_the_key_id_and_a_process_with_another_key_is_refused() {
    let prefix = Prefix::new();
    let key = VaultKey::generate();
    let first = RedisVault::new(connection().await, &prefix.0, key.clone());
    assert_eq!(first.check_key().await.unwrap(), key.key_id());
    let again = RedisVault::new(connection().await, &prefix.0, key.clone());
    assert_eq!(
        again.check_key().await.unwrap(),
        key.key_id(),
        "same key: ok"
    );

    let other = VaultKey::generate();
    let wrong = RedisVault::new(connection().await, &prefix.0, other.clone());
    let err = wrong.check_key().await.unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "credentials key does not match the vault (key id {}, vault has {}): set \
             BATON_CREDENTIALS_KEY to the key the master and the other workers use",
            other.key_id(),
            key.key_id()
        )
    );
}

#[tokio::test]
async fn a_vault_from_before_key_ids_is_checked_against_its_oldest_credential() {
    let prefix = Prefix::new();
    let key = VaultKey::generate();
    let writer = RedisVault::new(connection().await, &prefix.0, key.clone());
    writer
        .put(
            "db",
            "token",
            &fields(json!({"token": SECRET})),
            &CredentialScope::any(),
        )
        .await
        .unwrap();
    // No key id recorded yet (the record predates it): a wrong key is refused, records nothing.
    let wrong = RedisVault::new(connection().await, &prefix.0, VaultKey::generate());
    let err = wrong.check_key().await.unwrap_err().to_string();
    assert!(err.contains("do not open with this key"), "{err}");
    let mut conn = connection().await;
    let recorded: Option<String> = redis::cmd("GET")
        .arg(writer.key_id_key())
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(recorded, None);
    // The right key opens it and records its id.
    assert_eq!(writer.check_key().await.unwrap(), key.key_id());
}
