//! The `http` node's side of the egress guard ([`crate::egress`]): the process-wide
//! [`HttpPolicy`], URL checks, the redirect policy and the DNS resolver that plug the guard
//! into the HTTP client.
//!
//! Host names are checked before sending and on every redirect; addresses are checked after
//! DNS resolution by [`GuardedResolver`] (so a name resolving to 127.0.0.1 is caught, and the
//! client connects only to the addresses it returns) and for literal-IP URLs, which never reach
//! a resolver (`http://2130706433/` and `http://0x7f.1/` are parsed to 127.0.0.1 first).
//!
//! Limitation: when an HTTP(S) proxy is configured (`HTTPS_PROXY` etc.), the proxy resolves
//! the target, so only the name rules apply to it; the address checks then cover the proxy.

use std::fmt;
use std::sync::Arc;

use baton_engine::UsedCredential;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

use crate::egress::{EgressError, EgressPolicy, Guard, HostDenied};

/// The default (and default ceiling) of the `max_response_bytes` parameter: 10 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// The process-wide limits every `http` node of a registry obeys, whatever its parameters say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Where nodes may connect (shared with every other connector of the registry).
    pub egress: EgressPolicy,
    /// Ceiling of the `max_response_bytes` parameter: larger values are lowered to this.
    pub max_response_bytes: usize,
}

impl HttpPolicy {
    /// Production (the worker pool): private networks denied.
    pub fn production() -> Self {
        Self {
            egress: EgressPolicy::production(),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Embedded runs and tests on one machine: private networks allowed.
    pub fn embedded() -> Self {
        Self {
            egress: EgressPolicy::embedded(),
            ..Self::production()
        }
    }
}

impl Default for HttpPolicy {
    /// The safe choice: [`HttpPolicy::production`].
    fn default() -> Self {
        Self::production()
    }
}

/// More redirects than `max_redirects` allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooManyRedirects {
    pub max: usize,
}

impl fmt::Display for TooManyRedirects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "more than {} redirects (`max_redirects`)", self.max)
    }
}

impl std::error::Error for TooManyRedirects {}

/// Checks a URL's scheme and host (a literal IP completely; a name as far as names go).
pub fn check_url(guard: &Guard, url: &Url) -> Result<(), HostDenied> {
    let shown = url.host_str().unwrap_or_default();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Guard::deny(
            shown,
            format!("scheme `{}` is not http or https", url.scheme()),
        ));
    }
    if shown
        .trim_start_matches('[')
        .trim_end_matches(']')
        .is_empty()
    {
        return Err(Guard::deny(shown, "the URL has no host"));
    }
    match guard.check_literal(shown) {
        Some(checked) => checked.map(|_| ()),
        None => guard.check_name(shown).map(|_| ()),
    }
}

/// The redirect policy of a client: `follow` off returns 3xx responses as they are;
/// otherwise at most `max` redirects, each target checked like the original URL and, when
/// the request carries a vault `credential`, against the credential's `hosts`.
pub fn redirect_policy(
    guard: &Arc<Guard>,
    follow: bool,
    max: usize,
    credential: Option<UsedCredential>,
) -> Policy {
    if !follow {
        return Policy::none();
    }
    let guard = Arc::clone(guard);
    Policy::custom(move |attempt| {
        // `previous` holds the original URL and every URL redirected from.
        if attempt.previous().len() > max {
            return attempt.error(TooManyRedirects { max });
        }
        if let Some(used) = &credential
            && let Err(denied) = used.check_host(attempt.url().host_str().unwrap_or_default())
        {
            return attempt.error(denied);
        }
        match check_url(&guard, attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(denied) => attempt.error(denied),
        }
    })
}

/// Resolution through the guard: only the addresses it allows reach the client; a name left
/// with none fails with [`HostDenied`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_string();
        Box::pin(async move {
            match guard.resolve(&host, 0).await {
                Ok(kept) => Ok(Box::new(kept.into_iter()) as Addrs),
                Err(EgressError::Denied(denied)) => {
                    Err(Box::new(denied) as Box<dyn std::error::Error + Send + Sync>)
                }
                Err(other) => Err(Box::new(other) as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::egress::HostRule;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn strict() -> Guard {
        Guard::new(EgressPolicy::production())
    }

    #[test]
    fn literal_private_urls_are_denied_in_every_encoding_unless_the_policy_allows_them() {
        let guard = strict();
        for text in [
            "http://169.254.169.254/latest/meta-data",
            "http://[::ffff:7f00:1]:80/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://0x7f.1/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::7f00:1]/",
            "http://[2002:7f00:1::]/",
            "http://0/",
        ] {
            let e = check_url(&guard, &url(text));
            assert!(
                e.as_ref()
                    .is_err_and(|e| e.reason.contains("private networks are not allowed")),
                "{text}: {e:?}"
            );
        }
        assert!(check_url(&guard, &url("http://93.184.216.34/")).is_ok());
        let open = Guard::new(EgressPolicy::embedded());
        assert!(check_url(&open, &url("http://127.0.0.1:8080/")).is_ok());
    }

    #[test]
    fn allow_and_deny_lists_match_names_wildcards_and_ranges() {
        let rules = |list: &str| HostRule::parse_list(list).unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard {
            policy: EgressPolicy::embedded(),
            allowed: rules("api.example.com,*.trusted.org,10.0.0.0/8"),
            denied: rules("bad.trusted.org"),
        };
        assert!(check_url(&guard, &url("https://api.example.com/x")).is_ok());
        assert!(check_url(&guard, &url("https://a.b.trusted.org/")).is_ok());
        assert!(check_url(&guard, &url("https://bad.trusted.org/")).is_err());
        assert!(check_url(&guard, &url("http://10.2.3.4/")).is_ok());
        assert!(check_url(&guard, &url("http://11.2.3.4/")).is_err());
        let names_only = Guard {
            allowed: rules("api.example.com"),
            ..guard
        };
        assert!(check_url(&names_only, &url("https://trusted.org/")).is_err());
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_allowed_addresses_of_a_name() {
        let guard = strict();
        let e = guard.resolve("localhost", 0).await;
        assert!(
            matches!(&e, Err(EgressError::Denied(d)) if d.reason.contains("loopback")),
            "{e:?}"
        );
        let open = Guard::new(EgressPolicy::embedded());
        let kept = open.resolve("localhost", 25).await;
        assert!(kept.is_ok_and(|k| !k.is_empty() && k.iter().all(|a| a.port() == 25)));
    }
}
