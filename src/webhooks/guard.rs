//! Where a webhook may be sent: `http`/`https` URLs only, without user
//! info, whose host resolves only to public addresses (unless
//! `webhooks.allow_private`). The address checked is the address
//! connected to ([`resolve`] answers it), so DNS cannot change between the
//! check and the connection.
//!
//! Owns: URL parsing and the address rules. Must not: connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::http::Uri;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dest {
    /// `https` (else `http`).
    pub https: bool,
    /// Host name or IP literal (without brackets).
    pub host: String,
    /// Port (default 80 / 443).
    pub port: u16,
    /// `host[:port]` as written, for the `Host` header.
    pub authority: String,
    /// Path and query (`/` when empty).
    pub path: String,
}

/// Parse and check the form of a URL (not its addresses).
pub fn parse(url: &str, len_max: usize) -> Result<Dest, String> {
    if url.len() > len_max {
        return Err(format!("url longer than {len_max} bytes"));
    }
    let uri: Uri = url
        .parse()
        .map_err(|_| "url is not a valid URL".to_string())?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err("url must start with http:// or https://".into()),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| "url has no host".to_string())?;
    if authority.as_str().contains('@') {
        return Err("url must not hold a user name or password".into());
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("url has no host".into());
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".into());
    Ok(Dest {
        https,
        host: host.to_string(),
        port,
        authority: authority.as_str().to_string(),
        path,
    })
}

/// Whether an IPv4 address is public (not private, loopback, link-local,
/// CGNAT, unspecified, broadcast, multicast, reserved or documentation).
fn public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a >= 240
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b == 18 || b == 19)))
}

/// Whether an IPv6 address is public; addresses embedding an IPv4 one
/// (mapped, compatible, NAT64, 6to4) are judged by it.
fn public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return public_v4(v4);
    }
    let s = ip.segments();
    let embedded =
        |hi: u16, lo: u16| Ipv4Addr::new((hi >> 8) as u8, hi as u8, (lo >> 8) as u8, lo as u8);
    if s[..6] == [0, 0, 0, 0, 0, 0] {
        // `::`, `::1` and IPv4-compatible addresses.
        return !ip.is_unspecified() && !ip.is_loopback() && public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x64 && s[1] == 0xff9b {
        return public_v4(embedded(s[6], s[7]));
    }
    if s[0] == 0x2002 {
        return public_v4(embedded(s[1], s[2]));
    }
    !(ip.is_multicast()
        || (s[0] & 0xffc0) == 0xfe80 // link-local
        || (s[0] & 0xffc0) == 0xfec0 // site-local (deprecated)
        || (s[0] & 0xfe00) == 0xfc00 // unique-local
        || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        || (s[0] == 0x2001 && s[1] == 0) // Teredo
        || s[0] == 0x0100) // discard-only
}

/// Whether deliveries may go to `ip`.
pub fn ip_allowed(ip: IpAddr, allow_private: bool) -> bool {
    allow_private
        || match ip {
            IpAddr::V4(v4) => public_v4(v4),
            IpAddr::V6(v6) => public_v6(v6),
        }
}

/// Resolve the destination; every address it resolves to must be allowed
/// (one private answer refuses the URL). Answers the address to connect to.
pub async fn resolve(dest: &Dest, allow_private: bool) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = match dest.host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, dest.port)],
        Err(_) => tokio::net::lookup_host((dest.host.as_str(), dest.port))
            .await
            .map_err(|e| format!("host {} does not resolve: {e}", dest.host))?
            .collect(),
    };
    if addrs.is_empty() {
        return Err(format!("host {} does not resolve", dest.host));
    }
    if let Some(bad) = addrs.iter().find(|a| !ip_allowed(a.ip(), allow_private)) {
        return Err(format!(
            "host {} resolves to {}, a private, loopback, link-local or otherwise non-public address",
            dest.host,
            bad.ip()
        ));
    }
    Ok(addrs[0])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(s: &str) -> bool {
        ip_allowed(s.parse().unwrap(), false)
    }

    #[test]
    fn non_public_addresses_are_refused() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.255",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "fec0::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::10.0.0.1",
            "2002:0a00:0001::",
            "2001:db8::1",
            "2001::1",
        ] {
            assert!(!allowed(ip), "{ip} must be refused");
            assert!(
                ip_allowed(ip.parse().unwrap(), true),
                "{ip} allowed with allow_private"
            );
        }
    }

    #[test]
    fn public_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.0.1",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:0808:0808::",
        ] {
            assert!(allowed(ip), "{ip} must be allowed");
        }
    }

    #[test]
    fn urls_are_http_or_https_without_user_info() {
        let d = parse("https://example.com/hook?x=1", 100).unwrap();
        assert_eq!(
            (d.https, d.host.as_str(), d.port, d.path.as_str()),
            (true, "example.com", 443, "/hook?x=1")
        );
        let d = parse("http://[::1]:8080", 100).unwrap();
        assert_eq!(
            (d.host.as_str(), d.port, d.path.as_str()),
            ("::1", 8080, "/")
        );
        for bad in [
            "ftp://example.com/",
            "example.com/x",
            "http://user:pw@example.com/",
            "https:///x",
            "gopher://a",
        ] {
            assert!(parse(bad, 100).is_err(), "{bad}");
        }
        assert!(parse("https://example.com/aaaaaaaa", 20).is_err());
    }

    #[tokio::test]
    async fn resolve_refuses_private_literals_and_names() {
        let d = parse("http://127.0.0.1:9/x", 100).unwrap();
        assert!(resolve(&d, false).await.unwrap_err().contains("127.0.0.1"));
        assert_eq!(
            resolve(&d, true).await.unwrap(),
            "127.0.0.1:9".parse().unwrap()
        );
        let d = parse("http://localhost:9/x", 100).unwrap();
        assert!(resolve(&d, false).await.is_err());
    }
}
