//! Who is on the other end of a request: the TCP peer, or, when the peer is a configured
//! trusted proxy, the client its `X-Forwarded-For` names. Only the socket decides what is
//! "local"; a forwarding header from anyone else is never believed.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use http::HeaderMap;

use crate::settings::TrustedProxy;

/// The client address a request is judged by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr {
    /// The address bans and logs use.
    pub ip: IpAddr,
    /// Loopback, and not relayed by a proxy on this machine for someone else.
    pub local: bool,
}

/// The client address of a request, from the connection the server recorded. `None` when
/// the request did not come through a socket (in-process calls): such a caller is not local.
pub fn client_addr(
    extensions: &http::Extensions,
    headers: &HeaderMap,
    trusted: &[TrustedProxy],
) -> Option<ClientAddr> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()?
        .0
        .ip()
        .to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|t| t.contains(ip));
    if !is_trusted(&peer) {
        // A loopback peer that forwards for someone (a local reverse proxy nobody listed in
        // `trusted-proxies`) is not a local client.
        let relayed = ["x-forwarded-for", "forwarded", "x-real-ip"]
            .iter()
            .any(|h| headers.contains_key(*h));
        return Some(ClientAddr {
            ip: peer,
            local: peer.is_loopback() && !relayed,
        });
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .collect();
    if hops.is_empty() {
        return Some(ClientAddr {
            ip: peer,
            local: peer.is_loopback(),
        });
    }
    // The rightmost hop not itself a trusted proxy is the client; everything left of it was
    // written by the client and proves nothing.
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if is_trusted(&ip) => continue,
            Ok(ip) => {
                return Some(ClientAddr {
                    ip,
                    local: ip.is_loopback(),
                });
            }
            Err(_) => break,
        }
    }
    Some(ClientAddr {
        ip: peer,
        local: false,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ext(peer: &str) -> http::Extensions {
        let mut e = http::Extensions::new();
        e.insert(ConnectInfo(SocketAddr::new(peer.parse().unwrap(), 4000)));
        e
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", v.parse().unwrap());
        h
    }

    fn trusted(nets: &[&str]) -> Vec<TrustedProxy> {
        nets.iter()
            .map(|n| TrustedProxy(n.parse().unwrap()))
            .collect()
    }

    #[test]
    fn the_socket_decides_without_trusted_proxies() {
        let local = client_addr(&ext("127.0.0.1"), &HeaderMap::new(), &[]).unwrap();
        assert!(local.local);
        let remote = client_addr(&ext("192.0.2.7"), &xff("127.0.0.1"), &[]).unwrap();
        assert_eq!(remote.ip.to_string(), "192.0.2.7");
        assert!(!remote.local);
        // A local proxy relaying someone else is not a local client.
        let relayed = client_addr(&ext("127.0.0.1"), &xff("203.0.113.9"), &[]).unwrap();
        assert!(!relayed.local);
        let v6 = client_addr(&ext("::ffff:127.0.0.1"), &HeaderMap::new(), &[]).unwrap();
        assert!(v6.local);
        assert!(client_addr(&http::Extensions::new(), &HeaderMap::new(), &[]).is_none());
    }

    #[test]
    fn trusted_proxies_name_the_client() {
        let t = trusted(&["10.0.0.0/8"]);
        let c = client_addr(
            &ext("10.1.1.1"),
            &xff("127.0.0.1, 198.51.100.4, 10.2.2.2"),
            &t,
        )
        .unwrap();
        assert_eq!(c.ip.to_string(), "198.51.100.4");
        assert!(!c.local);
        let c = client_addr(&ext("10.1.1.1"), &xff("127.0.0.1"), &t).unwrap();
        assert!(c.local);
        let c = client_addr(&ext("10.1.1.1"), &xff("garbage"), &t).unwrap();
        assert!(!c.local);
    }
}
