//! The SSRF guard: which addresses herald may connect to. Checked on the
//! address a host name resolved to, by the client's own resolver (so DNS
//! names and rebinding cannot get around it), and on addresses written in a
//! URL, which reqwest connects to without resolving.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

use crate::base::config::Config;

/// Private LAN ranges, refused when `delivery.deny_private` is set.
const PRIVATE: &[&str] = &[
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "fc00::/7",
];

/// The networks herald may and may not send to (`delivery.deny_networks`,
/// `delivery.allow_networks`, `delivery.deny_private`).
#[derive(Debug, Clone, Default)]
pub struct NetworkGuard {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
    private: Vec<IpNet>,
}

/// An address the guard refused, with the key that refuses it; `Display`
/// is the sentence the event log shows.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// In `delivery.deny_networks`.
    #[error("{0} is in delivery.deny_networks; allow it with delivery.allow_networks")]
    Denied(IpAddr),
    /// A private address while `delivery.deny_private` is set.
    #[error(
        "{0} is a private address and delivery.deny_private is true; allow it with delivery.allow_networks"
    )]
    Private(IpAddr),
}

impl NetworkGuard {
    /// The guard the configuration asks for.
    pub fn from_config(config: &Config) -> NetworkGuard {
        NetworkGuard::new(
            config.deny_networks.clone(),
            config.allow_networks.clone(),
            config.deny_private,
        )
    }

    /// A guard refusing `deny` (and private ranges when `deny_private`)
    /// except for addresses in `allow`.
    pub fn new(deny: Vec<IpNet>, allow: Vec<IpNet>, deny_private: bool) -> NetworkGuard {
        let private = if deny_private {
            PRIVATE
                .iter()
                .map(|n| n.parse().expect("private ranges are valid CIDRs"))
                .collect()
        } else {
            Vec::new()
        };
        NetworkGuard {
            deny,
            allow,
            private,
        }
    }

    /// Whether herald may connect to `ip`. An IPv6 address that carries an
    /// IPv4 address — IPv4-mapped (`::ffff:127.0.0.1`), NAT64
    /// (`64:ff9b::/96`, `64:ff9b:1::/48`) or 6to4 (`2002::/16`) — is judged as
    /// the IPv4 address it reaches.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refused> {
        let ip = match ip {
            IpAddr::V6(v6) => embedded_ipv4(v6).map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        if self.deny.iter().any(|n| n.contains(&ip)) {
            return Err(Refused::Denied(ip));
        }
        if self.private.iter().any(|n| n.contains(&ip)) {
            return Err(Refused::Private(ip));
        }
        Ok(())
    }
}

/// The IPv4 address an IPv6 address reaches through a translator, if any.
fn embedded_ipv4(v6: std::net::Ipv6Addr) -> Option<std::net::Ipv4Addr> {
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = v6.segments();
    let last32 = |hi: u16, lo: u16| std::net::Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
    match s {
        // NAT64, well-known prefix (RFC 6052) and local-use prefix (RFC 8215).
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(last32(hi, lo)),
        [0x64, 0xff9b, 1, ..] => Some(last32(s[6], s[7])),
        // 6to4 (RFC 3056): 2002:AABB:CCDD::/48 reaches AA.BB.CC.DD.
        [0x2002, hi, lo, ..] => Some(last32(hi, lo)),
        _ => None,
    }
}

/// The client's resolver: the system's (getaddrinfo, as reqwest's default),
/// keeping only the addresses the guard allows. When it allows none, the
/// lookup fails with the first refusal, which the log then shows.
pub(super) struct GuardedResolver(pub(super) Arc<NetworkGuard>);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let guard = self.0.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refusal = None;
            let allowed: Vec<SocketAddr> = found
                .into_iter()
                .filter(|addr| match guard.check(addr.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refusal.get_or_insert(r);
                        false
                    }
                })
                .collect();
            match (allowed.is_empty(), refusal) {
                (true, Some(r)) => Err(Box::new(r) as Box<dyn std::error::Error + Send + Sync>),
                _ => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(items: &[&str]) -> Vec<IpNet> {
        items.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_default_deny_list_refuses_loopback_link_local_and_their_mapped_forms() {
        let guard = NetworkGuard::from_config(&Config::defaults());
        for refused in [
            "127.0.0.1",
            "127.9.9.9",
            "::1",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "fe80::1",
            "224.0.0.1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::7f00:1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            assert!(guard.check(ip(refused)).is_err(), "{refused} was allowed");
        }
        for allowed in [
            "192.168.1.10",
            "10.0.0.1",
            "fd00::1",
            "93.184.216.34",
            "2001:db8::1",
        ] {
            assert_eq!(guard.check(ip(allowed)), Ok(()), "{allowed}");
        }
    }

    #[test]
    fn allow_wins_over_deny_and_private_and_refusals_say_which_key() {
        let guard = NetworkGuard::new(
            nets(&["127.0.0.0/8"]),
            nets(&["127.0.0.1/32", "10.1.0.0/16"]),
            true,
        );
        assert_eq!(guard.check(ip("127.0.0.1")), Ok(()));
        assert_eq!(guard.check(ip("::ffff:127.0.0.1")), Ok(()));
        assert_eq!(guard.check(ip("10.1.2.3")), Ok(()));
        assert_eq!(
            guard.check(ip("127.0.0.2")).unwrap_err().to_string(),
            "127.0.0.2 is in delivery.deny_networks; allow it with delivery.allow_networks"
        );
        let private = guard.check(ip("10.2.0.1")).unwrap_err().to_string();
        assert!(
            private.contains("delivery.deny_private is true"),
            "{private}"
        );
        assert!(guard.check(ip("fd12::1")).is_err());
        assert!(guard.check(ip("100.64.0.1")).is_err());
        // A private address behind NAT64 is still private.
        assert!(guard.check(ip("64:ff9b::10.2.0.1")).is_err());
    }
}
