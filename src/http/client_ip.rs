//! Who is asking: the peer address, or, behind proxies the user trusts, the address the
//! nearest untrusted hop put in `X-Forwarded-For`. A header from anyone else is ignored,
//! so a client cannot claim an allowed address.

use ipnet::IpNet;
use std::net::IpAddr;

/// The client address for `peer`, given the `X-Forwarded-For` values and the trusted proxies.
pub fn client_ip(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    // Walk from the nearest hop outwards; the first address not ours is the client.
    let hops: Vec<IpAddr> = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        client = hop;
        if !is_trusted(&hop) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn forwarded_for_counts_only_from_trusted_hops() {
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let trusted = nets(&["127.0.0.1/32", "10.0.0.0/8"]);
        // Untrusted peer: its header is ignored.
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(stranger, &["10.1.1.1"], &trusted), stranger);
        // nginx on loopback: the client is the last untrusted address.
        assert_eq!(
            client_ip(local, &["198.51.100.7, 10.2.3.4"], &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // A client forging a header before it: the forged part is further out, not used.
        assert_eq!(
            client_ip(local, &["127.0.0.1, 198.51.100.7"], &trusted),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // No proxies configured: the peer, always.
        assert_eq!(client_ip(local, &["198.51.100.7"], &[]), local);
        // Garbage is skipped.
        assert_eq!(client_ip(local, &["nonsense"], &trusted), local);
    }
}
