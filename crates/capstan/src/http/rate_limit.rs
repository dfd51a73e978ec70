//! A per-client-IP limit on `/auth` (`server.auth_rate_limit_per_minute`): a token bucket
//! per address that holds a minute's worth of requests and refills at that rate, so a
//! client may burst up to the limit and then goes at the steady rate. The request after the
//! bucket is empty gets 429 with `Retry-After`.
//!
//! Written here rather than taken from `tower_governor`: it is a few dozen lines, adds no
//! dependency, and keys clients the way an anchor needs (an IPv6 client by its /64, which
//! one host usually holds whole; loopback clients, usually a reverse proxy on the same
//! host or local tools, left alone unless `server.auth_rate_limit_loopback` is set).
//!
//! The client is the TCP peer, unless the peer is one of `server.trusted_proxies`: then it is
//! the address that proxy appended to `X-Forwarded-For` (the last one not itself a trusted
//! proxy). A client can write anything into the header it sends, but not into what the
//! proxy appends after it, so only the trusted hops are read from the right.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiError;

/// Above this many tracked addresses, the buckets that have refilled are dropped.
const PRUNE_ABOVE: usize = 10_000;

pub struct RateLimiter {
    per_minute: u32,
    loopback: bool,
    trusted_proxies: Vec<IpAddr>,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl RateLimiter {
    /// `per_minute` requests per minute per client; 0: no limit. Behind `trusted_proxies`
    /// the client is read from `X-Forwarded-For`.
    pub fn new(per_minute: u32, loopback: bool, trusted_proxies: Vec<IpAddr>) -> Arc<RateLimiter> {
        Arc::new(RateLimiter {
            per_minute,
            loopback,
            trusted_proxies,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Who sent a request that reached this server from `peer`.
    fn client(&self, peer: IpAddr, forwarded_for: Option<&str>) -> IpAddr {
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let Some(header) = forwarded_for else {
            return peer;
        };
        let mut client = peer;
        for hop in header.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !self.trusted_proxies.contains(&ip) {
                        break;
                    }
                }
                // Not an address: what lies left of it cannot be trusted either.
                Err(_) => break,
            }
        }
        client
    }

    /// Takes one request from `ip`'s bucket: `Ok`, or `Err(seconds until one is left)`.
    fn take(&self, ip: IpAddr, now: Instant) -> Result<(), u64> {
        if self.per_minute == 0 || (ip.is_loopback() && !self.loopback) {
            return Ok(());
        }
        let capacity = f64::from(self.per_minute);
        let per_sec = capacity / 60.0;
        let key = client_key(ip);
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.saturating_duration_since(b.at).as_secs_f64() * per_sec < capacity
            });
        }
        let bucket = buckets.entry(key).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * per_sec).min(capacity);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - bucket.tokens) / per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// An IPv4 address as it is; an IPv6 address by its /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut octets = v6.octets();
                octets[8..].fill(0);
                IpAddr::from(octets)
            }
        },
    }
}

/// The middleware. Without the peer's address (a router served without connect info)
/// nothing is limited.
pub async fn limit(
    State(limiter): State<Arc<RateLimiter>>,
    request: Request,
    next: Next,
) -> Response {
    let extensions = request.extensions();
    let peer = extensions
        .get::<ConnectInfo<super::ClientAddr>>()
        .map(|ConnectInfo(client)| client.0.ip())
        .or_else(|| {
            extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(addr)| addr.ip())
        });
    let forwarded_for = request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok());
    if let Some(ip) = peer.map(|peer| limiter.client(peer, forwarded_for))
        && let Err(retry_after) = limiter.take(ip, Instant::now())
    {
        tracing::info!(%ip, "SEP-10 rate limit reached");
        return ApiError::TooManyRequests(
            format!(
                "too many authentication requests from this address; try again in {retry_after} s"
            ),
            retry_after,
        )
        .into_response();
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_bucket_holds_a_minute_and_refills_at_the_rate() {
        let limiter = RateLimiter::new(3, false, Vec::new());
        let ip: IpAddr = "203.0.113.7".parse().unwrap();
        let t = Instant::now();
        for _ in 0..3 {
            assert!(limiter.take(ip, t).is_ok());
        }
        assert_eq!(limiter.take(ip, t), Err(20));
        // Another client has its own bucket.
        assert!(limiter.take("203.0.113.8".parse().unwrap(), t).is_ok());
        // One request comes back every 20 s.
        assert!(limiter.take(ip, t + Duration::from_secs(20)).is_ok());
        assert!(limiter.take(ip, t + Duration::from_secs(20)).is_err());
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_address_it_appended() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let limiter = RateLimiter::new(1, false, vec![ip("127.0.0.1"), ip("10.0.0.2")]);
        // Proxy on loopback: the client it names is limited, not exempt as loopback.
        assert_eq!(
            limiter.client(ip("127.0.0.1"), Some("203.0.113.7")),
            ip("203.0.113.7")
        );
        // Two trusted hops; whatever the client wrote on the left is ignored.
        assert_eq!(
            limiter.client(ip("127.0.0.1"), Some("1.2.3.4, 198.51.100.9 , 10.0.0.2")),
            ip("198.51.100.9")
        );
        assert_eq!(
            limiter.client(ip("127.0.0.1"), Some("garbage, 198.51.100.9")),
            ip("198.51.100.9")
        );
        assert_eq!(
            limiter.client(ip("10.0.0.2"), Some("forged")),
            ip("10.0.0.2")
        );
        assert_eq!(limiter.client(ip("127.0.0.1"), None), ip("127.0.0.1"));
        // From anyone else the header is not read.
        assert_eq!(
            limiter.client(ip("203.0.113.50"), Some("198.51.100.9")),
            ip("203.0.113.50")
        );
        let t = Instant::now();
        let client = limiter.client(ip("127.0.0.1"), Some("203.0.113.7"));
        assert!(limiter.take(client, t).is_ok());
        assert!(limiter.take(client, t).is_err());
    }

    #[test]
    fn ipv6_clients_share_a_64_and_loopback_is_left_alone_unless_asked() {
        let limiter = RateLimiter::new(1, false, Vec::new());
        let t = Instant::now();
        assert!(limiter.take("2001:db8::1".parse().unwrap(), t).is_ok());
        assert!(limiter.take("2001:db8::2".parse().unwrap(), t).is_err());
        assert!(limiter.take("2001:db8:0:1::1".parse().unwrap(), t).is_ok());
        for _ in 0..5 {
            assert!(limiter.take("127.0.0.1".parse().unwrap(), t).is_ok());
        }
        let strict = RateLimiter::new(1, true, Vec::new());
        assert!(strict.take("127.0.0.1".parse().unwrap(), t).is_ok());
        assert!(strict.take("127.0.0.1".parse().unwrap(), t).is_err());
        assert!(
            RateLimiter::new(0, true, Vec::new())
                .take("::1".parse().unwrap(), t)
                .is_ok()
        );
    }
}
