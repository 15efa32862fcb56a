//! Admission of new sockets: open sockets per client IP and per user.
//!
//! Owns: the counts of open sockets per client address and per user, the
//! caps `hub.connections_per_ip_max` and `hub.connections_per_user_max`,
//! and [`Admission`], which holds one count of each and gives it back when
//! dropped (the socket ended, whatever way, or its upgrade never finished).
//! Must not: decide who the client is (http does, from the peer address or
//! the trusted proxy header) or count anything but open sockets.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use dashmap::DashMap;

use crate::error::{Error, ErrorCode, Result};

/// Open sockets per client address and per user, with their caps.
pub struct ConnCaps {
    per_ip: DashMap<IpAddr, usize, foldhash::fast::RandomState>,
    per_user: DashMap<Box<str>, usize, foldhash::fast::RandomState>,
    ip_max: usize,
    user_max: usize,
}

/// One admitted socket's share of the counts; dropping it gives them back.
pub struct Admission {
    caps: Arc<ConnCaps>,
    ip: IpAddr,
    user: Box<str>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.caps.release_ip(self.ip);
        self.caps.release_user(&self.user);
    }
}

/// The address a cap counts: an IPv4 address (IPv4-mapped IPv6 included),
/// or an IPv6 /64, which one subscriber usually holds whole.
pub fn cap_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl ConnCaps {
    /// Empty counts with these caps.
    pub fn new(ip_max: usize, user_max: usize) -> Arc<ConnCaps> {
        Arc::new(ConnCaps {
            per_ip: DashMap::default(),
            per_user: DashMap::default(),
            ip_max,
            user_max,
        })
    }

    /// Count one more socket for `ip` and `user`, or `rate_limited` when
    /// either is at its cap (then nothing is counted).
    pub fn admit(self: &Arc<Self>, ip: IpAddr, user: &str) -> Result<Admission> {
        let ip = cap_key(ip);
        {
            let mut n = self.per_ip.entry(ip).or_insert(0);
            if *n >= self.ip_max {
                drop(n);
                self.release_ip_if_zero(ip);
                return Err(Error::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many sockets from this address (hub.connections_per_ip_max = {})",
                        self.ip_max
                    ),
                ));
            }
            *n += 1;
        }
        {
            let mut n = self.per_user.entry(user.into()).or_insert(0);
            if *n >= self.user_max {
                drop(n);
                self.release_user_if_zero(user);
                self.release_ip(ip);
                return Err(Error::new(
                    ErrorCode::RateLimited,
                    format!(
                        "too many sockets for this user (hub.connections_per_user_max = {})",
                        self.user_max
                    ),
                ));
            }
            *n += 1;
        }
        Ok(Admission {
            caps: self.clone(),
            ip,
            user: user.into(),
        })
    }

    /// Open sockets counted for `ip` (tests and metrics).
    pub fn ip_count(&self, ip: IpAddr) -> usize {
        self.per_ip.get(&cap_key(ip)).map(|n| *n).unwrap_or(0)
    }

    /// Open sockets counted for `user`.
    pub fn user_count(&self, user: &str) -> usize {
        self.per_user.get(user).map(|n| *n).unwrap_or(0)
    }

    fn release_ip(&self, ip: IpAddr) {
        if let Some(mut n) = self.per_ip.get_mut(&ip) {
            *n = n.saturating_sub(1);
        }
        self.release_ip_if_zero(ip);
    }

    fn release_user(&self, user: &str) {
        if let Some(mut n) = self.per_user.get_mut(user) {
            *n = n.saturating_sub(1);
        }
        self.release_user_if_zero(user);
    }

    fn release_ip_if_zero(&self, ip: IpAddr) {
        self.per_ip.remove_if(&ip, |_, n| *n == 0);
    }

    fn release_user_if_zero(&self, user: &str) {
        self.per_user.remove_if(user, |_, n| *n == 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_count_and_release_exactly() {
        let caps = ConnCaps::new(2, 3);
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let a = caps.admit(ip, "u").unwrap();
        let b = caps.admit(ip, "v").unwrap();
        let e = caps.admit(ip, "w").err().unwrap();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert_eq!(caps.user_count("w"), 0, "a refused socket counts nothing");
        drop(a);
        assert_eq!(caps.ip_count(ip), 1);
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let c = caps.admit(other, "v").unwrap();
        let d = caps.admit("10.0.0.3".parse().unwrap(), "v").unwrap();
        let e = caps.admit("10.0.0.4".parse().unwrap(), "v").err().unwrap();
        assert!(e.message.contains("connections_per_user_max"));
        assert_eq!(caps.ip_count("10.0.0.4".parse().unwrap()), 0);
        drop((b, c, d));
        assert!(caps.per_ip.is_empty() && caps.per_user.is_empty());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_v4_as_v4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::9".parse().unwrap();
        assert_eq!(cap_key(a), cap_key(b));
        let m: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        assert_eq!(cap_key(m), "10.1.2.3".parse::<IpAddr>().unwrap());
    }
}
