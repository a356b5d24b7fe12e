//! Where a vault credential may be used: the hosts it may be sent to and, optionally, the
//! workflows that may use it. The hop checks the workflow before revealing a credential;
//! nodes that send one (`http`, `smtp`, any later connector) check each target host with
//! [`UsedCredential::check_host`] — the first request and every redirect.
//!
//! A credential without `hosts` is sent nowhere: it must be created with the hosts it is for,
//! or with `["*"]` to allow any host explicitly.

use baton_core::ErrorCode;
use serde::{Deserialize, Serialize};

use crate::node::NodeError;

/// A credential's scope, stored with it (in clear, and bound to its ciphertext).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct CredentialScope {
    /// Host patterns the credential may be sent to: `api.example.com` (exactly, case
    /// insensitive), `*.example.com` (any subdomain, not the apex) or `*` (any host).
    /// Empty: nowhere.
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Workflow ids that may use the credential; `None`: any workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workflows: Option<Vec<String>>,
}

impl CredentialScope {
    /// Any host, any workflow (`{"hosts": ["*"]}`): for tests and explicit operator choice.
    pub fn any() -> Self {
        Self {
            hosts: vec!["*".into()],
            workflows: None,
        }
    }

    /// Only `hosts`, any workflow.
    pub fn hosts<I: IntoIterator<Item = S>, S: Into<String>>(hosts: I) -> Self {
        Self {
            hosts: hosts.into_iter().map(Into::into).collect(),
            workflows: None,
        }
    }

    /// Checks every pattern; the error says which one and what was expected.
    pub fn validate(&self) -> Result<(), String> {
        for pattern in &self.hosts {
            validate_pattern(pattern)?;
        }
        if let Some(workflows) = &self.workflows
            && workflows.iter().any(|w| w.trim().is_empty())
        {
            return Err("`workflows` holds an empty workflow id".into());
        }
        Ok(())
    }

    /// Whether `host` (a name or an IP literal, brackets allowed) matches a pattern.
    pub fn permits_host(&self, host: &str) -> bool {
        let host = normalize(host);
        !host.is_empty() && self.hosts.iter().any(|p| pattern_matches(p, &host))
    }

    /// Whether `workflow_id` may use the credential.
    pub fn permits_workflow(&self, workflow_id: &str) -> bool {
        self.workflows
            .as_ref()
            .is_none_or(|list| list.iter().any(|w| w == workflow_id))
    }
}

fn normalize(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn pattern_matches(pattern: &str, host: &str) -> bool {
    let pattern = normalize(pattern);
    if pattern == "*" {
        return true;
    }
    match pattern.strip_prefix("*.") {
        Some(suffix) => host.len() > suffix.len() + 1 && host.ends_with(&format!(".{suffix}")),
        None => pattern == host,
    }
}

fn validate_pattern(pattern: &str) -> Result<(), String> {
    let p = normalize(pattern);
    let bad = |why: &str| {
        Err(format!(
            "host pattern {pattern:?} {why}: expected a host name (`api.example.com`), a \
             `*.example.com` wildcard, an IP address or `*` for any host"
        ))
    };
    if p.is_empty() {
        return bad("is empty");
    }
    if p == "*" {
        return if pattern.trim() == "*" {
            Ok(())
        } else {
            bad("has a misplaced `*`")
        };
    }
    let rest = p.strip_prefix("*.").unwrap_or(&p);
    if rest.is_empty() || rest.contains('*') {
        return bad("has a misplaced `*`");
    }
    if rest.contains(['/', '@', '?', '#', ' ', '\t']) || rest.contains("://") {
        return bad("is not a bare host");
    }
    if rest.contains(':') && rest.parse::<std::net::Ipv6Addr>().is_err() {
        return bad("has a port or scheme (ports are not part of a host pattern)");
    }
    Ok(())
}

/// A vault credential revealed for one node run, with its id and scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UsedCredential {
    pub credential_id: String,
    pub scope: CredentialScope,
}

impl UsedCredential {
    /// `Ok` when the credential may be sent to `host`; otherwise the `CREDENTIAL_SCOPE`
    /// refusal naming the credential and the host.
    pub fn check_host(&self, host: &str) -> Result<(), ScopeDenied> {
        if self.scope.permits_host(host) {
            return Ok(());
        }
        let allowed = if self.scope.hosts.is_empty() {
            "it has no `hosts`, so it is sent nowhere (recreate it with the hosts it is for, \
             or `[\"*\"]` for any host)"
                .to_string()
        } else {
            format!("its `hosts` are {:?}", self.scope.hosts)
        };
        Err(ScopeDenied(format!(
            "credential `{}` may not be sent to host `{}`: {allowed}",
            self.credential_id,
            normalize(host)
        )))
    }
}

/// A use of a credential outside its scope. Never retryable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScopeDenied(pub String);

impl From<ScopeDenied> for NodeError {
    fn from(denied: ScopeDenied) -> Self {
        NodeError {
            message: denied.0,
            code: ErrorCode::CredentialScope,
            retryable: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn used(hosts: &[&str]) -> UsedCredential {
        UsedCredential {
            credential_id: "cred_1".into(),
            scope: CredentialScope::hosts(hosts.iter().copied()),
        }
    }

    #[test]
    fn exact_names_match_case_insensitively_and_wildcards_match_subdomains_only() {
        let c = used(&["api.example.com", "*.svc.example.org"]);
        assert!(c.check_host("API.Example.com.").is_ok());
        assert!(c.check_host("a.svc.example.org").is_ok());
        assert!(c.check_host("a.b.svc.example.org").is_ok());
        for other in [
            "svc.example.org",
            "evilsvc.example.org",
            "api.example.com.evil.net",
            "example.com",
            "",
        ] {
            let err = c.check_host(other).unwrap_err();
            assert!(err.0.contains("cred_1"), "{err}");
        }
    }

    #[test]
    fn a_credential_without_hosts_is_sent_nowhere_and_star_is_everywhere() {
        let err = used(&[]).check_host("api.example.com").unwrap_err();
        assert!(err.0.contains("no `hosts`"), "{err}");
        assert_eq!(NodeError::from(err).code, ErrorCode::CredentialScope);
        assert!(used(&["*"]).check_host("anything.example").is_ok());
        assert!(used(&["::1"]).check_host("[::1]").is_ok());
    }

    #[test]
    fn workflows_restrict_only_when_given() {
        let mut scope = CredentialScope::any();
        assert!(scope.permits_workflow("wf-a"));
        scope.workflows = Some(vec!["wf-a".into()]);
        assert!(scope.permits_workflow("wf-a"));
        assert!(!scope.permits_workflow("wf-b"));
    }

    #[test]
    fn malformed_patterns_are_refused_naming_the_pattern() {
        for bad in [
            "",
            "*example.com",
            "a.*.com",
            "https://api.example.com",
            "api.example.com:443",
            "api.example.com/path",
            "*.",
        ] {
            let err = CredentialScope::hosts([bad]).validate().unwrap_err();
            assert!(err.contains(&format!("{bad:?}")), "{err}");
        }
        assert!(
            CredentialScope::hosts(["*", "*.a.com", "b.com", "10.0.0.1", "::1"])
                .validate()
                .is_ok()
        );
    }
}
