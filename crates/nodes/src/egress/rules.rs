//! Host rules: the entries of `BATON_EGRESS_ALLOW` and of the `http` node's `allowed_hosts` /
//! `denied_hosts`: exact names, `*.suffix` wildcards, IP addresses and CIDR ranges.

use std::net::IpAddr;

use ipnet::IpNet;

/// One host rule.
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

    /// Parses a comma (or whitespace) separated list, e.g. `10.0.0.0/8,*.svc.cluster.local`.
    pub fn parse_list(text: &str) -> Result<Vec<Self>, String> {
        text.split(|c: char| c == ',' || c.is_whitespace())
            .filter(|t| !t.is_empty())
            .map(Self::parse)
            .collect()
    }

    /// Whether this rule names `name` (already lower-case, without a trailing dot).
    pub fn matches_name(&self, name: &str) -> bool {
        match self {
            HostRule::Exact(exact) => name == exact,
            HostRule::Suffix(suffix) => name.ends_with(suffix.as_str()),
            HostRule::Net(_) => false,
        }
    }

    /// Whether this rule's range contains `ip` (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address).
    pub fn matches_ip(&self, ip: IpAddr) -> bool {
        matches!(self, HostRule::Net(net) if net.contains(&canonical_ip(ip)))
    }
}

/// `::ffff:127.0.0.1` is 127.0.0.1 as far as reachability goes.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// `host` as an address: the standard forms, and the IPv4 shorthands `inet_aton` and URL
/// parsers accept (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`), which resolvers would
/// turn into an address without a DNS query. `None` for a name.
pub(crate) fn parse_ip(host: &str) -> Option<IpAddr> {
    let bare = normalize_host(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return Some(ip);
    }
    parse_ipv4_shorthand(&bare).map(IpAddr::V4)
}

/// `a`, `a.b`, `a.b.c` or `a.b.c.d` with decimal, octal (`0…`) or hex (`0x…`) parts; the last
/// part fills the remaining bytes.
fn parse_ipv4_shorthand(text: &str) -> Option<std::net::Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut numbers = Vec::with_capacity(parts.len());
    for part in &parts {
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        numbers.push(value);
    }
    let (last, leading) = numbers.split_last()?;
    if leading.iter().any(|n| *n > 255) {
        return None;
    }
    let shift = 8 * (4 - leading.len() as u32);
    if shift < 32 && u64::from(*last) >= 1u64 << shift {
        return None;
    }
    let mut value: u32 = *last;
    for (i, n) in leading.iter().enumerate() {
        value |= n << (24 - 8 * i as u32);
    }
    Some(std::net::Ipv4Addr::from(value))
}

/// A host name as rules compare it: lower-case, without brackets or a trailing dot.
pub(crate) fn normalize_host(host: &str) -> String {
    host.trim()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn a_list_is_split_on_commas_and_whitespace() {
        let list = HostRule::parse_list("10.0.0.0/8, *.svc.cluster.local,db.internal ");
        assert_eq!(list.map(|l| l.len()), Ok(3));
        assert_eq!(HostRule::parse_list(""), Ok(vec![]));
        assert!(HostRule::parse_list("10.0.0.0/8,10.0.0.0/99").is_err());
    }

    #[test]
    fn ipv4_shorthands_are_read_as_resolvers_read_them() {
        for (text, expected) in [
            ("2130706433", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0x7f000001", "127.0.0.1"),
            ("127.1", "127.0.0.1"),
            ("10.1.65535", "10.1.255.255"),
            ("0", "0.0.0.0"),
            ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
            ("169.254.169.254.", "169.254.169.254"),
        ] {
            let parsed = parse_ip(text).map(|ip| ip.to_string());
            assert_eq!(parsed.as_deref(), Some(expected), "{text}");
        }
        for name in [
            "example.com",
            "1.2.3.4.5",
            "256.1.1.1",
            "08.1.1.1",
            "1.2.3.256",
            "a1",
        ] {
            assert_eq!(parse_ip(name), None, "{name}");
        }
    }

    #[test]
    fn ranges_match_ipv4_mapped_addresses() {
        let rule = HostRule::parse("10.0.0.0/8").unwrap_or_else(|e| panic!("{e}"));
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap_or_else(|e| panic!("{e}"));
        assert!(rule.matches_ip(mapped));
    }
}
