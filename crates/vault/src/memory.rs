//! `MemoryVault`: the in-process vault for the embedded runtime (`baton dev`) and tests. It
//! encrypts exactly like the Redis vault, so a heap dump holds ciphertext, not secrets.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use baton_engine::CredentialScope;
use baton_engine::ports::{
    CredentialMeta, CredentialVault, PortError, RevealError, RevealedCredential,
};
use serde_json::{Map, Value};

use crate::key::VaultKey;
use crate::seal;

struct Record {
    meta: CredentialMeta,
    /// The scope as bound into `sealed`; `None` for a record written without one.
    scope: Option<String>,
    sealed: String,
}

/// Credentials in memory, sealed with `key`, listed in creation order.
pub struct MemoryVault {
    key: VaultKey,
    records: Mutex<BTreeMap<String, Record>>,
}

impl std::fmt::Debug for MemoryVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryVault").finish_non_exhaustive()
    }
}

impl MemoryVault {
    pub fn new(key: VaultKey) -> Self {
        Self {
            key,
            records: Mutex::new(BTreeMap::new()),
        }
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Record>> {
        // Every update is one insert or remove: a poisoned lock still guards consistent data.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The stored ciphertext of a credential (what a memory dump would show).
    pub fn sealed(&self, credential_id: &str) -> Option<String> {
        self.locked().get(credential_id).map(|r| r.sealed.clone())
    }

    /// Replaces the stored ciphertext (to simulate tampering in tests); false if unknown.
    pub fn replace_sealed(&self, credential_id: &str, sealed: String) -> bool {
        match self.locked().get_mut(credential_id) {
            Some(r) => {
                r.sealed = sealed;
                true
            }
            None => false,
        }
    }
}

#[async_trait]
impl CredentialVault for MemoryVault {
    async fn put(
        &self,
        name: &str,
        type_name: &str,
        data: &Map<String, Value>,
        scope: &CredentialScope,
    ) -> Result<CredentialMeta, PortError> {
        let (meta, sealed, scope) = seal::new_credential(&self.key, name, type_name, data, scope)?;
        self.locked().insert(
            meta.credential_id.clone(),
            Record {
                meta: meta.clone(),
                scope: Some(scope),
                sealed,
            },
        );
        Ok(meta)
    }

    async fn list(&self) -> Result<Vec<CredentialMeta>, PortError> {
        Ok(self.locked().values().map(|r| r.meta.clone()).collect())
    }

    async fn delete(&self, credential_id: &str) -> Result<bool, PortError> {
        Ok(self.locked().remove(credential_id).is_some())
    }

    async fn reveal(&self, credential_id: &str) -> Result<Option<RevealedCredential>, RevealError> {
        let Some((type_name, scope, sealed)) = self
            .locked()
            .get(credential_id)
            .map(|r| (r.meta.type_name.clone(), r.scope.clone(), r.sealed.clone()))
        else {
            return Ok(None);
        };
        Ok(Some(seal::reveal(
            &self.key,
            credential_id,
            type_name,
            scope.as_deref(),
            &sealed,
        )?))
    }
}
