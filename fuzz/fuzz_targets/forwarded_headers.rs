//! The client's address behind trusted proxies (`TRUSTED_PROXIES`, `Forwarded`,
//! `X-Forwarded-For`): never a panic; an untrusted peer is always the client; only a trusted
//! peer can hand over to an address from the headers; a parsed proxy list reads back the same.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use axum::http::{HeaderMap, HeaderValue};
use billfold::{
    config::{parse_trusted_proxies, ProxyHeader},
    web::client::client_ip,
};
use libfuzzer_sys::{arbitrary::Unstructured, fuzz_target};

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let (Ok(proxies), Ok(v6), Ok(peer_bits), Ok(forwarded), Ok(xff)) = (
        u.arbitrary::<String>(),
        u.arbitrary::<bool>(),
        u.arbitrary::<u128>(),
        u.arbitrary::<Vec<u8>>(),
        u.arbitrary::<Vec<u8>>(),
    ) else {
        return;
    };
    let Ok(trusted) = parse_trusted_proxies(&proxies) else {
        return;
    };
    let listed = proxies
        .split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .count();
    assert_eq!(trusted.len(), listed, "{proxies:?}");
    let written: Vec<String> = trusted.iter().map(ToString::to_string).collect();
    assert_eq!(
        parse_trusted_proxies(&written.join(", ")),
        Ok(trusted.clone()),
        "{proxies:?}"
    );

    let peer = if v6 {
        IpAddr::V6(Ipv6Addr::from(peer_bits))
    } else {
        IpAddr::V4(Ipv4Addr::from(peer_bits as u32))
    };
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_bytes(&forwarded) {
        headers.insert("forwarded", v);
    }
    if let Ok(v) = HeaderValue::from_bytes(&xff) {
        headers.insert("x-forwarded-for", v);
    }
    let peer = peer.to_canonical();
    for header in [ProxyHeader::Forwarded, ProxyHeader::XForwardedFor] {
        let client = client_ip(peer, &headers, &trusted, Some(header));
        let peer_trusted = trusted.iter().any(|net| net.contains(&peer));
        if !peer_trusted {
            assert_eq!(client, peer, "an untrusted peer's headers were believed");
        }
        assert_eq!(client_ip(peer, &headers, &[], Some(header)), peer);
        assert_eq!(client_ip(peer, &HeaderMap::new(), &trusted, Some(header)), peer);
    }
    assert_eq!(client_ip(peer, &headers, &trusted, None), peer);
});
