//! The `http` node's SSRF guard: which hosts and addresses a request may reach.
//!
//! Two layers. The process-wide [`HttpPolicy`] is chosen by whoever builds the node registry
//! (the worker pool denies private networks by default, embedded `baton run` allows them); a
//! node's `allowed_hosts` / `denied_hosts` parameters can only narrow it. Host names are checked
//! before sending and on every redirect; addresses are checked after DNS resolution by
//! [`GuardedResolver`] (so a name resolving to 127.0.0.1 is caught) and for literal-IP URLs,
//! which never reach a resolver.
//!
//! Limitation: when an HTTP(S) proxy is configured (`HTTPS_PROXY` etc.), the proxy resolves
//! the target, so only the name rules apply to it; the address checks then cover the proxy.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use baton_engine::UsedCredential;
use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect::Policy;

/// The default (and default ceiling) of the `max_response_bytes` parameter: 10 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 10 * 1024 * 1024;

/// The process-wide limits every `http` node of a registry obeys, whatever its parameters say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpPolicy {
    /// Whether requests may reach loopback, private (RFC 1918, CGNAT), link-local (including
    /// the 169.254.169.254 cloud metadata service), unique-local and unspecified addresses.
    pub allow_private_networks: bool,
    /// Ceiling of the `max_response_bytes` parameter: larger values are lowered to this.
    pub max_response_bytes: usize,
}

impl HttpPolicy {
    /// Production (the worker pool): private networks denied.
    pub fn production() -> Self {
        Self {
            allow_private_networks: false,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
        }
    }

    /// Embedded runs and tests on one machine: private networks allowed.
    pub fn embedded() -> Self {
        Self {
            allow_private_networks: true,
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

/// One entry of `allowed_hosts` / `denied_hosts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostRule {
    /// `api.example.com`: exactly this name (case-insensitive, trailing dot ignored).
    Exact(String),
    /// `*.example.com`: any name ending in `.example.com` (not `example.com` itself).
    Suffix(String),
    /// `10.0.0.0/8`, `::1` or `127.0.0.1`: these addresses, resolved or literal.
    Net(IpNet),
}

impl HostRule {
    /// Parses one rule; the error says what was expected.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_end_matches('.').to_ascii_lowercase();
        if t.is_empty() {
            return Err("an empty host rule".into());
        }
        if t.contains('/') {
            return t
                .parse::<IpNet>()
                .map(|net| HostRule::Net(net.trunc()))
                .map_err(|_| format!("{text:?} is not a valid CIDR range"));
        }
        let bare = t.trim_start_matches('[').trim_end_matches(']');
        if let Ok(ip) = bare.parse::<IpAddr>() {
            return Ok(HostRule::Net(IpNet::from(canonical_ip(ip))));
        }
        if let Some(rest) = t.strip_prefix("*.") {
            if rest.is_empty() || rest.contains('*') {
                return Err(format!("{text:?} is not a valid `*.suffix` wildcard"));
            }
            return Ok(HostRule::Suffix(format!(".{rest}")));
        }
        if t.contains('*') || t.contains(':') || t.contains(char::is_whitespace) {
            return Err(format!(
                "{text:?} is not a host name, `*.suffix` wildcard, IP address or CIDR range"
            ));
        }
        Ok(HostRule::Exact(t))
    }

    fn matches_name(&self, name: &str) -> bool {
        match self {
            HostRule::Exact(exact) => name == exact,
            HostRule::Suffix(suffix) => name.ends_with(suffix.as_str()),
            HostRule::Net(_) => false,
        }
    }

    fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, HostRule::Net(net) if net.contains(&ip))
    }
}

/// A request refused by the guard. Never retryable: the same request is refused again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDenied {
    pub host: String,
    pub reason: String,
}

impl fmt::Display for HostDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "host `{}` is denied: {}", self.host, self.reason)
    }
}

impl std::error::Error for HostDenied {}

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

/// What one client enforces: the process policy plus one node's host lists.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guard {
    pub allow_private_networks: bool,
    pub allowed: Vec<HostRule>,
    pub denied: Vec<HostRule>,
}

/// `::ffff:127.0.0.1` is 127.0.0.1 as far as reachability goes.
fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

fn private_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254) {
        Some("the cloud metadata address")
    } else if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_private() {
        Some("a private network address")
    } else if ip.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (CGNAT) address")
    } else if ip.is_unspecified() || a == 0 {
        Some("an unspecified (this-host) address")
    } else if ip.is_broadcast() {
        Some("the broadcast address")
    } else {
        None
    }
}

fn private_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    if ip.is_loopback() {
        Some("a loopback address")
    } else if ip.is_unspecified() {
        Some("an unspecified (this-host) address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a unique-local address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else {
        None
    }
}

/// Why `ip` counts as private, or `None` for a public address.
pub fn private_reason(ip: IpAddr) -> Option<&'static str> {
    match canonical_ip(ip) {
        IpAddr::V4(v4) => private_v4(v4),
        IpAddr::V6(v6) => private_v6(v6),
    }
}

impl Guard {
    fn deny(host: &str, reason: impl Into<String>) -> HostDenied {
        HostDenied {
            host: host.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks a host name before resolution. `Ok(true)`: the allow list names it, so its
    /// addresses need not be in an allowed range.
    fn check_name(&self, name: &str) -> Result<bool, HostDenied> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if self.denied.iter().any(|r| r.matches_name(&name)) {
            return Err(Self::deny(&name, "it matches `denied_hosts`"));
        }
        if self.allowed.is_empty() {
            return Ok(true);
        }
        if self.allowed.iter().any(|r| r.matches_name(&name)) {
            return Ok(true);
        }
        if self.allowed.iter().any(|r| matches!(r, HostRule::Net(_))) {
            // An allowed address range may still contain what the name resolves to.
            return Ok(false);
        }
        Err(Self::deny(&name, "it is not in `allowed_hosts`"))
    }

    /// Checks one address; `name_allowed` says whether the allow list already named the host.
    fn check_ip(&self, host: &str, ip: IpAddr, name_allowed: bool) -> Result<(), HostDenied> {
        let ip = canonical_ip(ip);
        if !self.allow_private_networks
            && let Some(reason) = private_reason(ip)
        {
            return Err(Self::deny(
                host,
                format!("{ip} is {reason} and private networks are not allowed here"),
            ));
        }
        if self.denied.iter().any(|r| r.matches_ip(ip)) {
            return Err(Self::deny(host, format!("{ip} matches `denied_hosts`")));
        }
        let listed = self.allowed.is_empty() || self.allowed.iter().any(|r| r.matches_ip(ip));
        if !name_allowed && !listed {
            return Err(Self::deny(host, format!("{ip} is not in `allowed_hosts`")));
        }
        Ok(())
    }

    /// Checks a URL's scheme and host (a literal IP completely; a name as far as names go).
    pub fn check_url(&self, url: &Url) -> Result<(), HostDenied> {
        let shown = url.host_str().unwrap_or_default();
        if !matches!(url.scheme(), "http" | "https") {
            return Err(Self::deny(
                shown,
                format!("scheme `{}` is not http or https", url.scheme()),
            ));
        }
        let bare = shown.trim_start_matches('[').trim_end_matches(']');
        if bare.is_empty() {
            return Err(Self::deny(shown, "the URL has no host"));
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(shown, ip, false),
            Err(_) => self.check_name(bare).map(|_| ()),
        }
    }

    /// The redirect policy of a client: `follow` off returns 3xx responses as they are;
    /// otherwise at most `max` redirects, each target checked like the original URL and, when
    /// the request carries a vault `credential`, against the credential's `hosts`.
    pub fn redirect_policy(
        self: &Arc<Self>,
        follow: bool,
        max: usize,
        credential: Option<UsedCredential>,
    ) -> Policy {
        if !follow {
            return Policy::none();
        }
        let guard = Arc::clone(self);
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
            match guard.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(denied) => attempt.error(denied),
            }
        })
    }
}

/// System DNS resolution, keeping only the addresses the guard allows; a name left with none
/// fails with [`HostDenied`].
#[derive(Debug, Clone)]
pub struct GuardedResolver {
    pub guard: Arc<Guard>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = Arc::clone(&self.guard);
        let host = name.as_str().to_string();
        Box::pin(async move {
            let name_allowed = guard.check_name(&host)?;
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let mut kept: Vec<SocketAddr> = Vec::new();
            let mut first_denial = None;
            for addr in resolved {
                match guard.check_ip(&host, addr.ip(), name_allowed) {
                    Ok(()) => kept.push(addr),
                    Err(denied) => {
                        first_denial.get_or_insert(denied);
                    }
                }
            }
            if kept.is_empty() {
                let denied =
                    first_denial.unwrap_or_else(|| Guard::deny(&host, "it resolves to no address"));
                return Err(Box::new(denied) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(kept.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &[&str]) -> Vec<HostRule> {
        list.iter()
            .map(|t| HostRule::parse(t).unwrap_or_else(|e| panic!("{t}: {e}")))
            .collect()
    }

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn host_rules_parse_names_wildcards_addresses_and_ranges() {
        assert_eq!(
            HostRule::parse("API.Example.com."),
            Ok(HostRule::Exact("api.example.com".into()))
        );
        assert_eq!(
            HostRule::parse("*.example.com"),
            Ok(HostRule::Suffix(".example.com".into()))
        );
        assert!(
            matches!(HostRule::parse("10.1.2.3/8"), Ok(HostRule::Net(n)) if n.to_string() == "10.0.0.0/8")
        );
        assert!(
            matches!(HostRule::parse("[::1]"), Ok(HostRule::Net(n)) if n.to_string() == "::1/128")
        );
        for bad in ["", "*.", "a.*.com", "10.0.0.0/99", "two words", "*"] {
            assert!(HostRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn private_addresses_are_classified_including_mapped_ipv6_and_metadata() {
        for ip in [
            "127.0.0.1",
            "10.0.0.1",
            "172.16.5.4",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert!(private_reason(parsed).is_some(), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "2606:4700::1111",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            let parsed: IpAddr = ip.parse().unwrap_or_else(|e| panic!("{ip}: {e}"));
            assert_eq!(private_reason(parsed), None, "{ip}");
        }
    }

    #[test]
    fn literal_private_urls_are_denied_unless_the_policy_allows_them() {
        let strict = Guard {
            allow_private_networks: false,
            allowed: vec![],
            denied: vec![],
        };
        let err = strict.check_url(&url("http://169.254.169.254/latest/meta-data"));
        assert!(
            err.as_ref()
                .is_err_and(|e| e.reason.contains("cloud metadata")),
            "{err:?}"
        );
        assert!(
            strict
                .check_url(&url("http://[::ffff:7f00:1]:80/"))
                .is_err()
        );
        assert!(strict.check_url(&url("http://93.184.216.34/")).is_ok());
        let open = Guard {
            allow_private_networks: true,
            ..strict
        };
        assert!(open.check_url(&url("http://127.0.0.1:8080/")).is_ok());
    }

    #[test]
    fn allow_and_deny_lists_match_names_wildcards_and_ranges() {
        let guard = Guard {
            allow_private_networks: true,
            allowed: rules(&["api.example.com", "*.trusted.org", "10.0.0.0/8"]),
            denied: rules(&["bad.trusted.org"]),
        };
        assert!(guard.check_url(&url("https://api.example.com/x")).is_ok());
        assert!(guard.check_url(&url("https://a.b.trusted.org/")).is_ok());
        assert!(guard.check_url(&url("https://bad.trusted.org/")).is_err());
        assert!(guard.check_url(&url("http://10.2.3.4/")).is_ok());
        assert!(guard.check_url(&url("http://11.2.3.4/")).is_err());
        // Names not on the list may still resolve into an allowed range: decided after DNS.
        assert_eq!(guard.check_name("other.example.com"), Ok(false));
        let names_only = Guard {
            allowed: rules(&["api.example.com"]),
            ..guard
        };
        assert!(names_only.check_url(&url("https://trusted.org/")).is_err());
    }
}
