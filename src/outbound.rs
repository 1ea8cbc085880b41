//! Where platform clients may connect (docs/DESIGN.md section 6).
//!
//! An ADMIN sets a platform's URL, and the gateway then sends the stored password there: without
//! a policy, that URL could point at the gateway's own host, the cloud metadata service or any
//! machine of the internal network. Platform URLs are therefore refused when they reach loopback,
//! private, link-local, unique-local, shared, multicast, reserved or unspecified addresses, unless
//! `ALLOWED_PLATFORM_NETWORKS` admits them. The check runs when a URL is saved (for literal
//! addresses, in every spelling the URL parser accepts: decimal, hex, IPv4-mapped IPv6) and again
//! at connect time on the addresses a name resolves to, so DNS rebinding cannot get around it.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// The networks and addresses platform clients may reach although they are internal.
#[derive(Clone, Debug, Default)]
pub struct NetworkPolicy {
    networks: Vec<IpNet>,
    sockets: Vec<SocketAddr>,
}

/// A platform address the policy refuses.
#[derive(Debug)]
pub struct AddressRefused(pub IpAddr);

impl std::fmt::Display for AddressRefused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is an internal address; admit its network with ALLOWED_PLATFORM_NETWORKS",
            self.0
        )
    }
}

impl std::error::Error for AddressRefused {}

impl NetworkPolicy {
    /// A policy admitting these CIDRs (e.g. `10.20.0.0/16`, `fd00::/8`, or one address).
    pub fn with_networks<S: AsRef<str>>(cidrs: &[S]) -> anyhow::Result<Self> {
        let mut networks = Vec::new();
        for cidr in cidrs {
            let text = cidr.as_ref().trim();
            if text.is_empty() {
                continue;
            }
            let net = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    anyhow::anyhow!("ALLOWED_PLATFORM_NETWORKS: {text:?} is not a CIDR")
                })?;
            networks.push(net.trunc());
        }
        Ok(NetworkPolicy {
            networks,
            sockets: Vec::new(),
        })
    }

    /// Also admits exactly this address and port (demo mode admits its own simulator).
    pub fn admit_socket(&mut self, addr: SocketAddr) {
        self.sockets.push(addr);
    }

    /// True when a client may connect to `ip` (at `port`, when known).
    pub fn permits(&self, ip: IpAddr, port: Option<u16>) -> bool {
        let ip = canonical(ip);
        if !is_internal(ip) || self.networks.iter().any(|n| n.contains(&ip)) {
            return true;
        }
        port.is_some_and(|port| {
            self.sockets
                .iter()
                .any(|s| canonical(s.ip()) == ip && s.port() == port)
        })
    }

    /// Checks a URL whose host is a literal address; names pass here and are checked on the
    /// addresses they resolve to, at connect time.
    pub fn check_url(&self, url: &url::Url) -> Result<(), AddressRefused> {
        let ip = match url.host() {
            Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip),
            Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip),
            _ => return Ok(()),
        };
        if self.permits(ip, url.port_or_known_default()) {
            Ok(())
        } else {
            Err(AddressRefused(canonical(ip)))
        }
    }

    /// A DNS resolver for reqwest that drops the addresses this policy refuses, and fails when
    /// none is left.
    pub fn resolver(self: &Arc<Self>) -> Arc<PolicyResolver> {
        Arc::new(PolicyResolver {
            policy: self.clone(),
        })
    }
}

/// IPv6 addresses that carry an IPv4 address are that IPv4 address: IPv4-mapped
/// (`::ffff:0:0/96`), IPv4-translated (`::ffff:0:0:0/96`), IPv4-compatible (`::/96`, deprecated),
/// NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`, the IPv4 address in bits 16–47).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return IpAddr::V4(v4);
            }
            let s = v6.segments();
            let v4 = |hi: u16, lo: u16| {
                IpAddr::V4(Ipv4Addr::new(
                    (hi >> 8) as u8,
                    hi as u8,
                    (lo >> 8) as u8,
                    lo as u8,
                ))
            };
            if (s[..6] == [0; 6] && v6 != Ipv6Addr::UNSPECIFIED && v6 != Ipv6Addr::LOCALHOST)
                || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
                || s[..6] == [0, 0, 0, 0, 0xffff, 0]
            {
                return v4(s[6], s[7]);
            }
            if s[0] == 0x2002 {
                return v4(s[1], s[2]);
            }
            IpAddr::V6(v6)
        }
        v4 => v4,
    }
}

/// Addresses that are not on the public internet.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_multicast()
                || ip.is_broadcast()
                || ip.is_documentation()
                || a == 0 // "this network"
                || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
                || (a == 192 && b == 0 && ip.octets()[2] == 0) // IETF protocol assignments
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || (a == 192 && b == 88 && ip.octets()[2] == 99) // 6to4 relay anycast (deprecated)
                || a >= 240 // reserved
        }
        // What is left of IANA's IPv6 special-purpose registry once the IPv4-carrying ranges
        // are their IPv4 address (`canonical`).
        IpAddr::V6(ip) => {
            let s = ip.segments();
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || s[..4] == [0, 0, 0, 0] // the rest of ::/64 (IPv4-compatible and reserved)
                || (s[0] == 0x64 && s[1] == 0xff9b && s[2] == 1) // NAT64 local use 64:ff9b:1::/48
                || (s[0] == 0x64 && s[1] == 0xff9b) // the rest of 64:ff9b::/32
                || s[..4] == [0x100, 0, 0, 0] // discard-only 100::/64
                || (s[0] == 0x2001 && s[1] < 0x200) // IETF protocol assignments 2001::/23 (Teredo, ORCHID, benchmarking)
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation 2001:db8::/32
                || (s[0] & 0xfff0) == 0x3ff0 // documentation 3fff::/20
                || s[0] == 0x5f00 // SRv6 segment identifiers 5f00::/16
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated) fec0::/10
                || !(0x2000..0x4000).contains(&s[0]) // outside global unicast 2000::/3
        }
    }
}

/// reqwest's resolver under a [`NetworkPolicy`].
pub struct PolicyResolver {
    policy: Arc<NetworkPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> = found
                .iter()
                .copied()
                .filter(|a| policy.permits(a.ip(), None))
                .collect();
            match (allowed.is_empty(), found.first()) {
                (false, _) => Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs),
                (true, Some(first)) => Err(Box::new(AddressRefused(canonical(first.ip())))
                    as Box<dyn std::error::Error + Send + Sync>),
                (true, None) => Err(Box::new(std::io::Error::other("no address found"))
                    as Box<dyn std::error::Error + Send + Sync>),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(policy: &NetworkPolicy, url: &str) -> bool {
        policy.check_url(&url::Url::parse(url).unwrap()).is_err()
    }

    #[test]
    fn internal_addresses_are_refused_in_every_spelling() {
        let strict = NetworkPolicy::default();
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f000001/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[64:ff9b::a00:1]/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.0.10/",
            "http://100.64.0.1/",
            "http://0.0.0.0/",
            "http://[::]/",
            "http://224.0.0.1/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://255.255.255.255/",
            // IPv6 ranges that carry an internal IPv4 address, and special-purpose ones.
            "http://[64:ff9b:1::a00:1]/",   // NAT64 local use (10.0.0.1)
            "http://[64:ff9b:1:ffff::1]/",  // NAT64 local use, any spelling
            "http://[::ffff:0:127.0.0.1]/", // IPv4-translated loopback
            "http://[::ffff:0:a00:1]/",     // IPv4-translated 10.0.0.1
            "http://[2002:7f00:1::]/",      // 6to4 of loopback
            "http://[2002:a9fe:a9fe::1]/",  // 6to4 of the metadata address
            "http://[2002:c0a8:1::1]/",     // 6to4 of 192.168.0.1
            "http://[2001:0:4136:e378:8000:63bf:f5ff:fffe]/", // Teredo (client 10.0.0.1)
            "http://[2001::1]/",            // Teredo
            "http://[2001:2::1]/",          // benchmarking
            "http://[2001:20::1]/",         // ORCHIDv2
            "http://[100::1]/",             // discard-only
            "http://[2001:db8::1]/",        // documentation
            "http://[3fff::1]/",            // documentation
            "http://[5f00::1]/",            // SRv6 SIDs
            "http://[::2]/",                // reserved ::/64
            "http://[::a00:1]/",            // IPv4-compatible 10.0.0.1
            "http://[1::1]/",               // reserved by IETF
            "http://[4000::1]/",            // reserved by IETF
            "http://192.88.99.1/",          // 6to4 relay anycast
            "http://192.0.0.8/",            // IETF protocol assignments
            "http://198.18.0.1/",           // benchmarking
        ] {
            assert!(refused(&strict, url), "{url} was admitted");
        }
        for url in [
            "https://provedor.geosite.com.br/api",
            "http://8.8.8.8/",
            "http://[2606:4700::1111]/",
            "http://[64:ff9b::808:808]/", // NAT64 of 8.8.8.8
            "http://[2002:808:808::1]/",  // 6to4 of 8.8.8.8
            "http://[::ffff:0:808:808]/", // IPv4-translated 8.8.8.8
        ] {
            assert!(!refused(&strict, url), "{url} was refused");
        }
    }

    #[test]
    fn allowed_networks_and_sockets_admit() {
        let mut policy = NetworkPolicy::with_networks(&["10.20.0.0/16", "fd00::1"]).unwrap();
        assert!(!refused(&policy, "http://10.20.3.4:8080/"));
        assert!(refused(&policy, "http://10.21.0.1/"));
        assert!(!refused(&policy, "http://[fd00::1]/"));
        policy.admit_socket("127.0.0.1:9000".parse().unwrap());
        assert!(!refused(&policy, "http://127.0.0.1:9000/"));
        assert!(refused(&policy, "http://127.0.0.1:9001/"));
        assert!(NetworkPolicy::with_networks(&["not-a-cidr"]).is_err());
    }
}
