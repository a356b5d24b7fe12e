//! The egress guard: the one place that decides where a node may connect to, used by every
//! connector (the `http` node through its DNS resolver and redirect policy, the `smtp` node
//! through [`Guard::connect`], any later connector the same way).
//!
//! The guard resolves names itself, checks every resolved address and connects only to a
//! checked address (no second resolution between check and use). Denied by default, unless
//! the process policy says otherwise: loopback, this-host and cloud metadata addresses
//! ([`ranges::Class::Strict`], lifted only by the development switch
//! `BATON_EGRESS_ALLOW_PRIVATE`) and every other non-public range ([`ranges::Class::Internal`],
//! lifted per range or host name by `BATON_EGRESS_ALLOW`). A denial names the setting that
//! would allow the target. A connection that fails (refused, closed, filtered, timed out) is
//! reported as one error without the operating system's reason, so a workflow cannot use a
//! connector as a port scanner; the reason goes to the worker's debug log.

pub mod ranges;
pub mod rules;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::net::TcpStream;

use ranges::{Class, METADATA_NAMES, classify};
pub use rules::HostRule;
use rules::{normalize_host, parse_ip};

/// The worker setting that allows internal ranges and hosts.
pub const ALLOW_SETTING: &str = "BATON_EGRESS_ALLOW";
/// The development switch that allows everything, loopback and metadata included.
pub const ALLOW_PRIVATE_SETTING: &str = "BATON_EGRESS_ALLOW_PRIVATE";
/// How long one connection attempt may take by default.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many resolved addresses are tried per connection.
const MAX_ADDRESSES_TRIED: usize = 4;

/// Where the nodes of one process may connect: chosen by whoever builds the node registry
/// (the worker pool from its settings, embedded `baton run` allows everything).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EgressPolicy {
    /// Development switch: every address may be reached, loopback and metadata included.
    pub allow_private: bool,
    /// Internal ranges and host names that may be reached (`BATON_EGRESS_ALLOW`). Loopback,
    /// this-host and metadata addresses stay denied whatever this says.
    pub allow: Vec<HostRule>,
    /// Bound of one connection attempt.
    pub connect_timeout: Duration,
}

impl EgressPolicy {
    /// Production (the worker pool): only public addresses.
    pub fn production() -> Self {
        Self {
            allow_private: false,
            allow: Vec::new(),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// Embedded runs and tests on one machine: everything allowed.
    pub fn embedded() -> Self {
        Self {
            allow_private: true,
            ..Self::production()
        }
    }

    /// Production plus the `BATON_EGRESS_ALLOW` list, e.g. `10.0.0.0/8,*.svc.cluster.local`.
    pub fn allowing(list: &str) -> Result<Self, String> {
        Ok(Self {
            allow: HostRule::parse_list(list)?,
            ..Self::production()
        })
    }
}

impl Default for EgressPolicy {
    /// The safe choice: [`EgressPolicy::production`].
    fn default() -> Self {
        Self::production()
    }
}

/// A target refused by the guard. Never retryable: the same target is refused again.
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

/// Why [`Guard::connect`] produced no connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EgressError {
    /// The guard refused the target; nothing was sent.
    Denied(HostDenied),
    /// The name does not resolve.
    Unresolved { host: String },
    /// Every allowed address refused, reset, dropped or timed out: one error for all.
    ConnectFailed { host: String, port: u16 },
}

impl fmt::Display for EgressError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Denied(denied) => denied.fmt(f),
            Self::Unresolved { host } => write!(f, "could not resolve host `{host}`"),
            Self::ConnectFailed { host, port } => write!(f, "could not connect to {host}:{port}"),
        }
    }
}

impl std::error::Error for EgressError {}

/// What the host name alone decided.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct NameCheck {
    /// The node's own allow list names the host (its addresses need not be listed).
    pub node_listed: bool,
    /// `BATON_EGRESS_ALLOW` names the host: its internal addresses may be reached.
    pub operator_listed: bool,
}

/// What one connection obeys: the process policy plus a node's own lists, which can only
/// narrow it (the `http` node's `allowed_hosts` / `denied_hosts`; empty for other nodes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Guard {
    pub policy: EgressPolicy,
    pub allowed: Vec<HostRule>,
    pub denied: Vec<HostRule>,
}

impl Guard {
    /// The process policy alone.
    pub fn new(policy: EgressPolicy) -> Self {
        Self {
            policy,
            allowed: Vec::new(),
            denied: Vec::new(),
        }
    }

    pub(crate) fn deny(host: &str, reason: impl Into<String>) -> HostDenied {
        HostDenied {
            host: host.to_string(),
            reason: reason.into(),
        }
    }

    /// Checks a host name before resolution.
    pub(crate) fn check_name(&self, host: &str) -> Result<NameCheck, HostDenied> {
        let name = normalize_host(host);
        if self.denied.iter().any(|r| r.matches_name(&name)) {
            return Err(Self::deny(&name, "it matches `denied_hosts`"));
        }
        if !self.policy.allow_private && METADATA_NAMES.contains(&name.as_str()) {
            return Err(Self::deny(
                &name,
                format!(
                    "it is a cloud metadata host name, reachable only with {ALLOW_PRIVATE_SETTING}=true (development)"
                ),
            ));
        }
        let operator_listed = self.policy.allow.iter().any(|r| r.matches_name(&name));
        if self.allowed.is_empty() || self.allowed.iter().any(|r| r.matches_name(&name)) {
            return Ok(NameCheck {
                node_listed: true,
                operator_listed,
            });
        }
        if self.allowed.iter().any(|r| matches!(r, HostRule::Net(_))) {
            // An allowed address range may still contain what the name resolves to.
            return Ok(NameCheck {
                node_listed: false,
                operator_listed,
            });
        }
        Err(Self::deny(&name, "it is not in `allowed_hosts`"))
    }

    /// Checks one address of `host` (a name already checked as `names` says).
    pub(crate) fn check_ip(
        &self,
        host: &str,
        ip: IpAddr,
        names: NameCheck,
    ) -> Result<(), HostDenied> {
        if !self.policy.allow_private {
            match classify(ip) {
                Class::Public => {}
                Class::Strict(what) => {
                    return Err(Self::deny(
                        host,
                        format!(
                            "{ip} is {what} and private networks are not allowed here (only {ALLOW_PRIVATE_SETTING}=true, for development, allows it)"
                        ),
                    ));
                }
                Class::Internal(what) => {
                    let listed =
                        names.operator_listed || self.policy.allow.iter().any(|r| r.matches_ip(ip));
                    if !listed {
                        return Err(Self::deny(
                            host,
                            format!(
                                "{ip} is {what} and private networks are not allowed here (allow it on the worker with {ALLOW_SETTING}, a comma list of CIDR ranges and host names)"
                            ),
                        ));
                    }
                }
            }
        }
        if self.denied.iter().any(|r| r.matches_ip(ip)) {
            return Err(Self::deny(host, format!("{ip} matches `denied_hosts`")));
        }
        let listed = self.allowed.is_empty() || self.allowed.iter().any(|r| r.matches_ip(ip));
        if !names.node_listed && !listed {
            return Err(Self::deny(host, format!("{ip} is not in `allowed_hosts`")));
        }
        Ok(())
    }

    /// Checks a host that is written as a literal address (`10.0.0.1`, `[::1]`, `2130706433`),
    /// or `None` when `host` is a name.
    pub(crate) fn check_literal(&self, host: &str) -> Option<Result<IpAddr, HostDenied>> {
        let ip = parse_ip(host)?;
        Some(self.check_ip(host, ip, NameCheck::default()).map(|()| ip))
    }

    /// Resolves `host` (a name or a literal address) and returns the addresses the guard
    /// allows; none left is a denial naming the first refused address.
    pub async fn resolve(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, EgressError> {
        if let Some(checked) = self.check_literal(host) {
            return checked
                .map(|ip| vec![SocketAddr::new(ip, port)])
                .map_err(EgressError::Denied);
        }
        let names = self.check_name(host).map_err(EgressError::Denied)?;
        let name = normalize_host(host);
        let looked_up = tokio::net::lookup_host((name.clone(), port)).await;
        let resolved = match looked_up {
            Ok(addrs) => addrs,
            Err(e) => {
                tracing::debug!(host = %name, error = %e, "egress: name does not resolve");
                return Err(EgressError::Unresolved { host: name });
            }
        };
        let mut kept: Vec<SocketAddr> = Vec::new();
        let mut first_denial = None;
        for addr in resolved {
            match self.check_ip(&name, addr.ip(), names) {
                Ok(()) => kept.push(addr),
                Err(denied) => {
                    first_denial.get_or_insert(denied);
                }
            }
        }
        if kept.is_empty() {
            return Err(match first_denial {
                Some(denied) => EgressError::Denied(denied),
                None => EgressError::Unresolved { host: name },
            });
        }
        Ok(kept)
    }

    /// Resolves and checks `host`, then opens a TCP connection to one of its allowed
    /// addresses, each attempt bounded by the policy's connect timeout (and `within`).
    pub async fn connect(
        &self,
        host: &str,
        port: u16,
        within: Duration,
    ) -> Result<TcpStream, EgressError> {
        let addrs = self.resolve(host, port).await?;
        let bound = self.policy.connect_timeout.min(within);
        let attempts = async {
            for addr in addrs.into_iter().take(MAX_ADDRESSES_TRIED) {
                match tokio::time::timeout(bound, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => return Some(stream),
                    Ok(Err(e)) => {
                        tracing::debug!(%addr, error = %e, "egress: connection failed");
                    }
                    Err(_elapsed) => {
                        tracing::debug!(%addr, timeout = ?bound, "egress: connection timed out");
                    }
                }
            }
            None
        };
        // `within` bounds every attempt together, so a caller's own deadline of the same
        // length never fires first with a different message.
        match tokio::time::timeout(within, attempts).await {
            Ok(Some(stream)) => Ok(stream),
            Ok(None) | Err(_) => Err(EgressError::ConnectFailed {
                host: normalize_host(host),
                port,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(list: &str) -> Vec<HostRule> {
        HostRule::parse_list(list).unwrap_or_else(|e| panic!("{list}: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    #[test]
    fn the_operator_allow_list_lifts_internal_ranges_but_never_loopback_or_metadata() {
        let guard = Guard::new(EgressPolicy {
            allow: rules("10.0.0.0/8,*.svc.cluster.local,127.0.0.0/8,169.254.0.0/16"),
            ..EgressPolicy::production()
        });
        let unnamed = NameCheck {
            node_listed: true,
            operator_listed: false,
        };
        assert!(guard.check_ip("h", ip("10.1.2.3"), unnamed).is_ok());
        assert!(guard.check_ip("h", ip("::ffff:10.1.2.3"), unnamed).is_ok());
        assert!(guard.check_ip("h", ip("169.254.1.1"), unnamed).is_ok());
        for strict in ["127.0.0.1", "169.254.169.254", "0.0.0.0"] {
            let e = guard.check_ip("h", ip(strict), unnamed).err();
            assert!(
                e.as_ref()
                    .is_some_and(|e| e.reason.contains(ALLOW_PRIVATE_SETTING)),
                "{strict}: {e:?}"
            );
        }
        let e = guard.check_ip("h", ip("192.168.1.1"), unnamed).err();
        assert!(
            e.as_ref().is_some_and(|e| e.reason.contains(ALLOW_SETTING)),
            "{e:?}"
        );
        let named = guard.check_name("redis.prod.svc.cluster.local");
        assert!(named.is_ok_and(|n| n.operator_listed));
        let named = NameCheck {
            node_listed: true,
            operator_listed: true,
        };
        assert!(guard.check_ip("h", ip("192.168.1.1"), named).is_ok());
        assert!(guard.check_ip("h", ip("127.0.0.1"), named).is_err());
    }

    #[test]
    fn metadata_host_names_are_denied_before_any_lookup() {
        let guard = Guard::new(EgressPolicy::production());
        for name in [
            "metadata.google.internal",
            "Metadata.Google.Internal.",
            "metadata",
        ] {
            assert!(guard.check_name(name).is_err(), "{name}");
        }
        let dev = Guard::new(EgressPolicy::embedded());
        assert!(dev.check_name("metadata.google.internal").is_ok());
    }

    #[test]
    fn the_development_switch_allows_everything() {
        let guard = Guard::new(EgressPolicy::embedded());
        for text in ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1"] {
            assert!(
                guard.check_ip("h", ip(text), NameCheck::default()).is_ok(),
                "{text}"
            );
        }
    }

    #[tokio::test]
    async fn a_timed_out_connection_reads_like_a_refused_one() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("{e}"));
        let guard = Guard::new(EgressPolicy {
            allow: rules("198.51.100.0/24"),
            ..EgressPolicy::embedded()
        });
        let refused = guard
            .connect("127.0.0.1", closed, DEFAULT_CONNECT_TIMEOUT)
            .await;
        // No time at all to connect: the attempt is abandoned as a timeout.
        let timed_out = guard.connect("198.51.100.7", closed, Duration::ZERO).await;
        let text = |r: Result<TcpStream, EgressError>, host: &str| match r {
            Ok(_) => panic!("{host}: connected"),
            Err(e) => e.to_string().replace(host, "HOST"),
        };
        assert_eq!(text(refused, "127.0.0.1"), text(timed_out, "198.51.100.7"));
    }

    #[test]
    fn node_lists_narrow_the_policy() {
        let guard = Guard {
            policy: EgressPolicy::embedded(),
            allowed: rules("api.example.com,*.trusted.org,10.0.0.0/8"),
            denied: rules("bad.trusted.org"),
        };
        assert!(
            guard
                .check_name("api.example.com")
                .is_ok_and(|n| n.node_listed)
        );
        assert!(
            guard
                .check_name("a.b.trusted.org")
                .is_ok_and(|n| n.node_listed)
        );
        assert!(guard.check_name("bad.trusted.org").is_err());
        assert!(
            guard
                .check_name("other.example.com")
                .is_ok_and(|n| !n.node_listed)
        );
        assert!(matches!(guard.check_literal("10.2.3.4"), Some(Ok(_))));
        assert!(matches!(guard.check_literal("11.2.3.4"), Some(Err(_))));
        assert!(guard.check_literal("api.example.com").is_none());
    }
}
