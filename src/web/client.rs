//! The client's address: the TCP peer, unless that peer is a proxy the operator trusts
//! (`TRUSTED_PROXIES`), whose forwarding header is then believed: the one header the
//! operator named (`TRUSTED_PROXY_HEADER`), never whichever happens to be present. Proxies
//! append to their own header and pass the other through untouched, so the other one is
//! whatever the client wrote.
//!
//! The hops are read from the right, the side written by the proxies nearest to us: the
//! first hop that is not a trusted proxy is the client. Anything to its left was written by
//! the client itself and proves nothing. Hops are split on `,` in the raw bytes, before any
//! decoding, so garbage a client sends cannot hide the hop a proxy appended after it. A hop
//! that cannot be read stops the walk at the last proxy that can be.
//!
//! An IPv4 address written as IPv6 (`::ffff:192.0.2.1`) is the IPv4 address. For limits, an
//! IPv6 client is its /64 ([`limit_key`]): one host usually holds a whole /64.

use std::net::{IpAddr, Ipv6Addr};

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::ProxyHeader;

/// The client's address for a request that came from `peer`.
pub fn client_ip(
    peer: IpAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: Option<ProxyHeader>,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    let Some(header) = header else {
        return peer;
    };
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for hop in forwarded_hops(headers, header).iter().rev() {
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

/// What a client's limits are counted under: an IPv4 address itself, an IPv6 address's /64.
pub fn limit_key(ip: IpAddr) -> String {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & (u128::MAX << 64);
            format!("{}/64", Ipv6Addr::from(prefix))
        }
    }
}

/// The hops the named header lists, nearest last; `None` for one that is not an address
/// (`unknown`, an obfuscated name, garbage).
fn forwarded_hops(headers: &HeaderMap, header: ProxyHeader) -> Vec<Option<IpAddr>> {
    let name = match header {
        ProxyHeader::Forwarded => "forwarded",
        ProxyHeader::XForwardedFor => "x-forwarded-for",
    };
    headers
        .get_all(name)
        .iter()
        .flat_map(|value| value.as_bytes().split(|b| *b == b','))
        .map(|raw| {
            let hop = std::str::from_utf8(raw).ok()?.trim();
            match header {
                ProxyHeader::Forwarded => hop
                    .split(';')
                    .filter_map(|pair| pair.trim().split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .and_then(|(_, node)| parse_node(node.trim().trim_matches('"'))),
                ProxyHeader::XForwardedFor => parse_node(hop),
            }
        })
        .collect()
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let ip: Option<IpAddr> = if let Ok(ip) = node.parse() {
        Some(ip)
    } else if let Some(rest) = node.strip_prefix('[') {
        rest.split_once(']').and_then(|(ip, _)| ip.parse().ok())
    } else {
        node.rsplit_once(':')
            .and_then(|(ip, port)| port.parse::<u16>().ok().and(ip.parse().ok()))
    };
    ip.map(|ip| ip.to_canonical())
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

    const XFF: Option<ProxyHeader> = Some(ProxyHeader::XForwardedFor);
    const FWD: Option<ProxyHeader> = Some(ProxyHeader::Forwarded);

    fn proxies() -> Vec<IpNet> {
        crate::config::parse_trusted_proxies("10.0.0.0/8, 192.168.1.5 fd00::/8").expect("valid")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4"), ("forwarded", "for=5.6.7.8")]);
        assert_eq!(
            client_ip(ip("203.0.113.9"), &h, &proxies(), XFF),
            ip("203.0.113.9")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &[], XFF),
            ip("10.0.0.1"),
            "nothing trusted"
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        // The client forged the first entry; our proxies appended the rest.
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 198.51.100.7, 10.1.2.3")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("198.51.100.7")
        );
        // Split over two header lines, as some proxies do.
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ("x-forwarded-for", "192.168.1.5"),
        ]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn only_the_named_header_is_read_and_its_forms_are_parsed() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            (
                "forwarded",
                "for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.9.9.9:80",
            ),
        ]);
        assert_eq!(
            client_ip(ip("fd00::1"), &h, &proxies(), FWD),
            ip("2001:db8:cafe::17")
        );
        assert_eq!(client_ip(ip("fd00::1"), &h, &proxies(), XFF), ip("6.6.6.6"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), None),
            ip("10.0.0.1"),
            "no header named: the peer"
        );
    }

    #[test]
    fn a_clients_own_forwarded_header_changes_nothing_behind_an_x_forwarded_for_proxy() {
        // nginx appends the peer to X-Forwarded-For and passes the client's Forwarded on.
        for forged in ["for=1.1.1.1", "for=10.9.9.9", "for=\"[::1]\""] {
            let h = headers(&[("forwarded", forged), ("x-forwarded-for", "198.51.100.7")]);
            assert_eq!(
                client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
                ip("198.51.100.7"),
                "{forged}"
            );
        }
    }

    #[test]
    fn garbage_a_client_sends_cannot_hide_the_hop_the_proxy_appended() {
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes("1.2.3.4\u{e9}\u{ff}, 198.51.100.7".as_bytes())
                .expect("obs-text is allowed in a header value"),
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("198.51.100.7")
        );
        let mut h = HeaderMap::new();
        h.append(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe").expect("bytes"),
        );
        h.append("x-forwarded-for", HeaderValue::from_static("198.51.100.8"));
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("198.51.100.8")
        );
    }

    #[test]
    fn ipv4_written_as_ipv6_is_ipv4_and_ipv6_is_limited_per_64() {
        assert_eq!(
            client_ip(ip("::ffff:203.0.113.9"), &HeaderMap::new(), &[], None),
            ip("203.0.113.9")
        );
        let h = headers(&[("x-forwarded-for", "::ffff:198.51.100.7")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("198.51.100.7")
        );
        assert_eq!(limit_key(ip("198.51.100.7")), "198.51.100.7");
        assert_eq!(limit_key(ip("::ffff:198.51.100.7")), "198.51.100.7");
        assert_eq!(
            limit_key(ip("2001:db8:1:2:aaaa::1")),
            limit_key(ip("2001:db8:1:2:ffff:ffff:ffff:ffff"))
        );
        assert_eq!(limit_key(ip("2001:db8:1:2::7")), "2001:db8:1:2::/64");
        assert_ne!(
            limit_key(ip("2001:db8:1:2::1")),
            limit_key(ip("2001:db8:1:3::1"))
        );
    }

    #[test]
    fn an_unreadable_hop_stops_at_the_last_readable_proxy() {
        let h = headers(&[("x-forwarded-for", "198.51.100.7, unknown, 10.1.2.3")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("10.1.2.3")
        );
        let h = headers(&[("forwarded", "for=_hidden")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), FWD),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn only_proxies_in_the_chain_gives_the_left_most() {
        let h = headers(&[("x-forwarded-for", "10.3.3.3, 10.2.2.2")]);
        assert_eq!(
            client_ip(ip("10.0.0.1"), &h, &proxies(), XFF),
            ip("10.3.3.3")
        );
        assert_eq!(
            client_ip(ip("10.0.0.1"), &HeaderMap::new(), &proxies(), XFF),
            ip("10.0.0.1")
        );
    }
}
