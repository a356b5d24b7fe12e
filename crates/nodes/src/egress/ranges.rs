//! Which addresses a node may not reach by default, and why.
//!
//! Two classes. [`Class::Strict`]: loopback, unspecified (`0.0.0.0` reaches this host) and
//! cloud metadata addresses; only the development switch `BATON_EGRESS_ALLOW_PRIVATE` lifts
//! them. [`Class::Internal`]: every other non-public range (private, shared, link-local,
//! unique- and site-local, documentation, benchmarking, multicast, reserved, Teredo…); an
//! operator may allow parts of them with `BATON_EGRESS_ALLOW`. IPv6 forms that embed an IPv4
//! address (mapped, compatible, SIIT, NAT64, 6to4) are judged by the embedded address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// How an address is classified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// A public address.
    Public,
    /// Private-like; `BATON_EGRESS_ALLOW` may allow it. The text says what it is.
    Internal(&'static str),
    /// Loopback, this host or cloud metadata; only the development switch allows it.
    Strict(&'static str),
}

const METADATA: &str = "a cloud metadata address";
const LOOPBACK: &str = "a loopback address";
const THIS_HOST: &str = "an unspecified (this-host) address";

/// Cloud metadata services: AWS/GCP/Azure/OpenStack, AWS ECS task metadata, Alibaba, Azure's
/// wire server, AWS over IPv6.
const METADATA_V4: [Ipv4Addr; 5] = [
    Ipv4Addr::new(169, 254, 169, 254),
    Ipv4Addr::new(169, 254, 170, 2),
    Ipv4Addr::new(169, 254, 170, 23),
    Ipv4Addr::new(100, 100, 100, 200),
    Ipv4Addr::new(168, 63, 129, 16),
];
const METADATA_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254);

/// Host names of metadata services, denied before any DNS query.
pub const METADATA_NAMES: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

fn in_v4(ip: Ipv4Addr, net: [u8; 4], prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - prefix)
    };
    u32::from(ip) & mask == u32::from(Ipv4Addr::from(net)) & mask
}

/// Classifies an IPv4 address.
pub fn classify_v4(ip: Ipv4Addr) -> Class {
    let internal = |net: [u8; 4], prefix: u32| in_v4(ip, net, prefix);
    if METADATA_V4.contains(&ip) {
        Class::Strict(METADATA)
    } else if internal([127, 0, 0, 0], 8) {
        Class::Strict(LOOPBACK)
    } else if internal([0, 0, 0, 0], 8) {
        Class::Strict(THIS_HOST)
    } else if internal([10, 0, 0, 0], 8)
        || internal([172, 16, 0, 0], 12)
        || internal([192, 168, 0, 0], 16)
    {
        Class::Internal("a private network address")
    } else if internal([100, 64, 0, 0], 10) {
        Class::Internal("a shared (CGNAT) address")
    } else if internal([169, 254, 0, 0], 16) {
        Class::Internal("a link-local address")
    } else if internal([192, 0, 0, 0], 24) {
        Class::Internal("an IETF protocol assignment address")
    } else if internal([192, 0, 2, 0], 24)
        || internal([198, 51, 100, 0], 24)
        || internal([203, 0, 113, 0], 24)
    {
        Class::Internal("a documentation address")
    } else if internal([198, 18, 0, 0], 15) {
        Class::Internal("a benchmarking address")
    } else if internal([192, 88, 99, 0], 24) {
        Class::Internal("a 6to4 relay anycast address")
    } else if internal([224, 0, 0, 0], 4) {
        Class::Internal("a multicast address")
    } else if ip.is_broadcast() {
        Class::Internal("the broadcast address")
    } else if internal([240, 0, 0, 0], 4) {
        Class::Internal("a reserved address")
    } else {
        Class::Public
    }
}

/// The IPv4 address in the last 32 bits.
fn low_v4(ip: Ipv6Addr) -> Ipv4Addr {
    let s = ip.segments();
    Ipv4Addr::from((u32::from(s[6]) << 16) | u32::from(s[7]))
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, prefix: u32) -> bool {
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - prefix)
    };
    u128::from(ip) & mask == u128::from(net) & mask
}

/// Classifies an IPv6 address; forms embedding an IPv4 address are judged by it.
pub fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    let within =
        |a: u16, b: u16, prefix: u32| in_v6(ip, Ipv6Addr::new(a, b, 0, 0, 0, 0, 0, 0), prefix);
    if ip.is_loopback() {
        return Class::Strict(LOOPBACK);
    }
    if ip.is_unspecified() {
        return Class::Strict(THIS_HOST);
    }
    if ip == METADATA_V6 {
        return Class::Strict(METADATA);
    }
    // ::a.b.c.d (IPv4-compatible), ::ffff:a.b.c.d (mapped), ::ffff:0:a.b.c.d (SIIT).
    if s[..5] == [0; 5] && matches!(s[5], 0 | 0xffff) {
        return classify_v4(low_v4(ip));
    }
    if s[..4] == [0, 0, 0, 0] && s[4] == 0xffff && s[5] == 0 {
        return classify_v4(low_v4(ip));
    }
    // NAT64, well-known prefix 64:ff9b::/96: the embedded address is the target.
    if in_v6(ip, Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
        return classify_v4(low_v4(ip));
    }
    // Local-use NAT64 (RFC 8215): a local network's translator.
    if s[..3] == [0x64, 0xff9b, 1] {
        return match classify_v4(low_v4(ip)) {
            Class::Public => Class::Internal("a local-use NAT64 address"),
            other => other,
        };
    }
    // 6to4: the IPv4 address in bits 16..48.
    if within(0x2002, 0, 16) {
        let v4 = Ipv4Addr::from((u32::from(s[1]) << 16) | u32::from(s[2]));
        return classify_v4(v4);
    }
    if within(0x2001, 0xdb8, 32) || within(0x3fff, 0, 20) {
        return Class::Internal("a documentation address");
    }
    if within(0x2001, 0, 32) {
        return Class::Internal("a Teredo address");
    }
    if within(0x0100, 0, 64) {
        return Class::Internal("a discard-only address");
    }
    if within(0xfc00, 0, 7) {
        return Class::Internal("a unique-local address");
    }
    if within(0xfe80, 0, 10) {
        return Class::Internal("a link-local address");
    }
    if within(0xfec0, 0, 10) {
        return Class::Internal("a site-local address");
    }
    if within(0xff00, 0, 8) {
        return Class::Internal("a multicast address");
    }
    Class::Public
}

/// Classifies an address.
pub fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(text: &str) -> Class {
        classify(text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
    }

    #[test]
    fn loopback_this_host_and_metadata_are_strict_in_every_encoding() {
        for ip in [
            "127.0.0.1",
            "127.255.0.9",
            "0.0.0.0",
            "0.1.2.3",
            "169.254.169.254",
            "169.254.170.2",
            "100.100.100.200",
            "168.63.129.16",
            "::1",
            "::",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::ffff:0:127.0.0.1",
            "64:ff9b::7f00:1",
            "64:ff9b::169.254.169.254",
            "64:ff9b:1::127.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
        ] {
            assert!(
                matches!(class(ip), Class::Strict(_)),
                "{ip}: {:?}",
                class(ip)
            );
        }
    }

    #[test]
    fn private_reserved_and_special_ranges_are_internal() {
        for ip in [
            "10.0.0.1",
            "172.16.5.4",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.254",
            "169.254.1.1",
            "192.0.0.8",
            "192.0.2.1",
            "198.51.100.7",
            "203.0.113.9",
            "198.18.0.1",
            "198.19.255.255",
            "192.88.99.1",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "ff05::1:3",
            "2001:db8::1",
            "2001::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "100::1",
            "::ffff:10.0.0.1",
            "::10.0.0.1",
            "64:ff9b::10.0.0.1",
            "64:ff9b::c0a8:101",
            "64:ff9b:1::8.8.8.8",
            "2002:c0a8:101::1",
            "2002:0a00:0001::",
        ] {
            assert!(
                matches!(class(ip), Class::Internal(_)),
                "{ip}: {:?}",
                class(ip)
            );
        }
    }

    #[test]
    fn public_addresses_pass_including_nat64_and_6to4_of_public_ones() {
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "100.128.0.1",
            "100.63.255.255",
            "172.32.0.1",
            "172.15.255.255",
            "198.20.0.1",
            "223.255.255.255",
            "2606:4700::1111",
            "2a00:1450:4001::200e",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
            "::ffff:8.8.8.8",
        ] {
            assert_eq!(class(ip), Class::Public, "{ip}");
        }
    }
}
