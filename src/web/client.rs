//! The client's address: the TCP peer, unless that peer is a proxy the operator trusts
//! (`TRUSTED_PROXIES`), whose forwarding headers are then believed.
//!
//! `Forwarded` (RFC 7239) wins over `X-Forwarded-For` when both are present. The hops are read
//! from the right, the side written by the proxies nearest to us: the first hop that is not a
//! trusted proxy is the client. Anything to its left was written by the client itself and
//! proves nothing. A hop that cannot be read stops the walk at the last proxy that can be.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// The client's address for a request that came from `peer`.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_hops(headers).iter().rev() {
        let Some(ip) = hop else {
            return client;
        };
        client = *ip;
        if !is_trusted(ip) {
            return client;
        }
    }
    client
}

/// The hops the forwarding headers list, nearest last; `None` for one that is not an address
/// (`unknown`, an obfuscated name, garbage).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name: &str| {
        headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{0}"))
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let forwarded = values("forwarded");
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, node)| parse_node(node.trim().trim_matches('"')))
            })
            .collect();
    }
    values("x-forwarded-for")
        .into_iter()
        .map(parse_node)
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']').and_then(|(ip, _)| ip.parse().ok());
    }
    node.rsplit_once(':')
        .and_then(|(ip, port)| port.parse::<u16>().ok().and(ip.parse().ok()))
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("an address")
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (name, value) in pairs {
            h.append(*name, HeaderValue::from_str(value).expect("a header value"));
        }
        h
    }

    fn proxies() -> Vec<IpNet> {
        crate::config::parse_trusted_proxies("10.0.0.0/8, 192.168.1.5 fd00::/8").expect("valid")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &proxies()),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &[]),
            ip("10.0.0.1"),
            "nothing trusted"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        // The client forged the first entry; our proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies()),
            ip("198.51.100.7")
        );
        // Split over two header lines, as some proxies do.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "192.168.1.5"),
        ]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies()),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_wins_and_its_forms_are_read() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.9.9.9:80",
            ),
        ]);
        assert_eq!(
            client_ip(ip("fd00::1"), &h, &proxies()),
            ip("2001:db8:cafe::17")
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_readable_proxy() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.1.2.3")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies()), ip("10.1.2.3"));
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies()), ip("10.0.0.1"));
    }

    #[test]
    fn only_proxies_in_the_chain_gives_the_left_most() {
        let h = headers(&[("x-forwarded-for", "10.3.3.3, 10.2.2.2")]);
        assert_eq!(client_ip(ip("10.0.0.1"), &h, &proxies()), ip("10.3.3.3"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &proxies()),
            ip("10.0.0.1")
        );
    }
}
