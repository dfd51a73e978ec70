//! Delivers signed callbacks from the outbox: SEP-12 customer callbacks now, SEP-31
//! transaction callbacks later. Each is POSTed with the SEP-12/SEP-31 signature
//! (`Signature: t=<ts>, s=<base64 ed25519 signature of "<ts>.<host>.<body>">`, made with the
//! stellar.toml SIGNING_KEY), retried with exponential backoff, and kept in the database
//! until it is delivered or given up on, so a restart loses none.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use stellar::Keypair;
use tokio::sync::watch;

use crate::anchor::AppState;
use crate::kyc::callbacks;
use crate::store::{OutboxRow, unix_now};

/// Attempts before a callback is given up on: about five hours of retries.
pub const MAX_ATTEMPTS: i64 = 15;
const MAX_BACKOFF_SECS: i64 = 3600;
const BATCH: i64 = 20;
const SEND_TIMEOUT_SECS: u64 = 10;
const SEND_TIMEOUT: Duration = Duration::from_secs(SEND_TIMEOUT_SECS);
/// How long a sender may hold a callback before another replica may take it over (and so
/// how late a callback held by a process that died goes out). The callbacks of a batch are
/// sent at the same time, so the lease must outlast one send that times out and the
/// recording of its outcome; a shorter one would let another replica send it a second time.
const LEASE_SECS: i64 = SEND_TIMEOUT_SECS as i64 + 20;
/// Between looks at the outbox when nothing wakes the loop.
const POLL: Duration = Duration::from_secs(1);
/// Between checks of every callback registration for status changes.
const RECHECK: Duration = Duration::from_secs(30);

/// The `Signature` header value for `body` sent to `url` at unix time `ts`. The signed
/// host is the callback URL's host, with its port when the URL names one (SEP-12 v1.9.1).
pub fn signature_header(key: &Keypair, url: &url::Url, body: &str, ts: i64) -> String {
    let host = signed_host(url);
    let payload = format!("{ts}.{host}.{body}");
    let signature = key.sign(payload.as_bytes());
    format!("t={ts}, s={}", STANDARD.encode(signature))
}

pub fn signed_host(url: &url::Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// Which callback URLs clients may register, from the configuration: https only on the
/// public network; loopback, private and link-local hosts only with
/// `callbacks.allow_private` (the default on test networks, never on the public network
/// unless configured); and never this server itself, so a client cannot make the anchor
/// POST to its own endpoints or into its own network. A name that resolves to such an
/// address passes this check, but not the sender: without `allow_private` it connects only
/// to the public addresses a name resolves to ([`PublicOnly`]).
#[derive(Debug, Clone)]
pub struct CallbackPolicy {
    pub https_only: bool,
    pub allow_private: bool,
    /// `host[:port]` this server answers on (`base_url`'s, the listen address).
    pub own_hosts: Vec<String>,
    /// The port it listens on: any loopback host with this port is the server itself.
    pub own_port: Option<u16>,
}

impl CallbackPolicy {
    pub fn from_config(config: &crate::config::Config) -> CallbackPolicy {
        CallbackPolicy {
            https_only: config.network.is_public(),
            allow_private: config.callbacks_allow_private,
            own_hosts: vec![
                config.web_auth_domain.to_ascii_lowercase(),
                config.listen.to_string(),
            ],
            own_port: Some(config.listen.port()),
        }
    }

    pub fn check(&self, url: &str) -> Result<url::Url, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("url {url:?} is not a URL: {e}"))?;
        let scheme_ok =
            parsed.scheme() == "https" || (parsed.scheme() == "http" && !self.https_only);
        if !scheme_ok || parsed.host().is_none() {
            return Err(if self.https_only {
                "url must be an https URL".into()
            } else {
                "url must be an http(s) URL".into()
            });
        }
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => {
                ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
            }
            Some(url::Host::Domain(name)) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                name == "localhost" || name.ends_with(".localhost")
            }
            None => false,
        };
        let host = signed_host(&parsed).to_ascii_lowercase();
        let port = parsed.port_or_known_default();
        if self.own_hosts.contains(&host) || (loopback && port.is_some() && port == self.own_port) {
            return Err("url must not point at this server itself".into());
        }
        if !self.allow_private && (loopback || internal_host(&parsed)) {
            return Err(
                "url must name a public host, not a loopback or private address (callbacks.allow_private is off)"
                    .into(),
            );
        }
        Ok(parsed)
    }
}

fn internal_host(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => internal_ip(IpAddr::V4(ip)),
        Some(url::Host::Ipv6(ip)) => internal_ip(IpAddr::V6(ip)),
        Some(url::Host::Domain(_)) => false,
        None => true,
    }
}

/// Loopback, private, link-local, unspecified or carrier-grade NAT: an address inside the
/// anchor's own network rather than on the internet.
fn internal_ip(ip: IpAddr) -> bool {
    let v4 = |ip: Ipv4Addr| {
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || ip.is_broadcast()
            // 100.64.0.0/10, carrier-grade NAT: not reachable from the internet either.
            || (ip.octets()[0] == 100 && (ip.octets()[1] & 0xc0) == 64)
    };
    match ip {
        IpAddr::V4(ip) => v4(ip),
        IpAddr::V6(ip) => {
            ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_unique_local()
                || ip.is_unicast_link_local()
                || ip.to_ipv4_mapped().is_some_and(v4)
        }
    }
}

/// The callback sender's resolver when private hosts are not allowed: it connects only to
/// the public addresses a name resolves to. The URL check at registration sees only the
/// name; this catches a name that resolves into the anchor's network, then or later (DNS
/// rebinding), at the moment of connecting.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let public = public_addrs(&host, resolved.collect())?;
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

fn public_addrs(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    let public: Vec<SocketAddr> = addrs.into_iter().filter(|a| !internal_ip(a.ip())).collect();
    if public.is_empty() {
        return Err(format!(
            "{host} resolves only to loopback, private or link-local addresses (callbacks.allow_private is off)"
        ));
    }
    Ok(public)
}

/// The delay before attempt `attempts + 1`, after `attempts` failures.
pub fn backoff_secs(attempts: i64) -> i64 {
    1_i64
        .checked_shl(attempts.clamp(0, 30) as u32)
        .unwrap_or(MAX_BACKOFF_SECS)
        .min(MAX_BACKOFF_SECS)
}

/// The delivery loop. It sends what is due, sleeps until woken or a second passes, and
/// now and then looks for customer status changes no request reported.
pub async fn run(anchor: AppState, mut stopped: watch::Receiver<bool>) {
    let mut builder = reqwest::Client::builder()
        .user_agent(concat!("capstan/", env!("CARGO_PKG_VERSION")))
        .timeout(SEND_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none());
    if !anchor.config.callbacks_allow_private {
        builder = builder.dns_resolver(PublicOnly);
    }
    let http = match builder.build() {
        Ok(http) => http,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the callback HTTP client; callbacks are not sent");
            return;
        }
    };
    let mut next_recheck = tokio::time::Instant::now();
    loop {
        // Run to completion, never raced against a timer: a send cut off half-way would be
        // delivered but not recorded, and sent again.
        if tokio::time::Instant::now() >= next_recheck {
            callbacks::check_all(&anchor).await;
            next_recheck = tokio::time::Instant::now() + RECHECK;
        }
        deliver_due(&anchor, &http).await;
        if *stopped.borrow() {
            return;
        }
        tokio::select! {
            _ = anchor.outbox_wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = stopped.changed() => return,
        }
    }
}

async fn deliver_due(anchor: &AppState, http: &reqwest::Client) {
    let due = match anchor.store.claim_due_callbacks(BATCH, LEASE_SECS).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the callback outbox");
            return;
        }
    };
    // One claim holds at most one callback per subject, so sending them together keeps
    // each subject's order.
    // Checked again before each send: a URL registered under an earlier, looser
    // configuration is not called once the policy refuses it.
    let policy = &CallbackPolicy::from_config(&anchor.config);
    let sends = due.into_iter().map(|callback| async move {
        let (outcome, refused) = match policy.check(&callback.url) {
            Ok(_) => (send(&anchor.signing_key, http, &callback).await, false),
            Err(reason) => (Err(format!("not sent: {reason}")), true),
        };
        let recorded = match outcome {
            Ok(()) => anchor.store.callback_delivered(callback.id).await,
            Err(error) => {
                let attempts = callback.attempts + 1;
                let retry_at = (attempts < MAX_ATTEMPTS && !refused)
                    .then(|| unix_now() + backoff_secs(attempts));
                if retry_at.is_none() {
                    tracing::error!(subject = %callback.subject, %error, attempts, "giving up on a callback");
                } else {
                    tracing::warn!(subject = %callback.subject, %error, attempts, "callback not delivered; will retry");
                }
                anchor
                    .store
                    .callback_failed(callback.id, &error, retry_at)
                    .await
            }
        };
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "cannot record a callback attempt; it will be sent again");
        }
    });
    futures_util::future::join_all(sends).await;
}

async fn send(key: &Keypair, http: &reqwest::Client, callback: &OutboxRow) -> Result<(), String> {
    let url = url::Url::parse(&callback.url).map_err(|e| format!("bad URL: {e}"))?;
    let signature = signature_header(key, &url, &callback.body, unix_now());
    let response = http
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("Signature", &signature)
        // The header's older name, which some clients still read.
        .header("X-Stellar-Signature", &signature)
        // The same for every delivery of one callback: a receiver drops the repeats that
        // at-least-once delivery makes (a retry, or a sender that died before it recorded
        // the delivery).
        .header("Idempotency-Key", callback.id.to_string())
        .body(callback.body.clone())
        .send()
        .await
        // Without the URL: a callback URL may carry the client's secrets in its query.
        .map_err(|e| format!("request failed: {}", e.without_url()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("answered {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults of a network: https and public hosts only on the public network.
    fn check_callback_url(url: &str, public_network: bool) -> Result<url::Url, String> {
        CallbackPolicy {
            https_only: public_network,
            allow_private: !public_network,
            own_hosts: Vec::new(),
            own_port: None,
        }
        .check(url)
    }

    #[test]
    fn callback_urls_on_the_public_network_are_https_to_public_hosts() {
        for good in ["https://wallet.example/cb", "https://203.0.113.9:8443/x"] {
            assert!(check_callback_url(good, true).is_ok(), "{good}");
        }
        for bad in [
            "http://wallet.example/cb",
            "https://127.0.0.1/cb",
            "https://10.1.2.3/cb",
            "https://192.168.0.1/cb",
            "https://169.254.169.254/latest",
            "https://[::1]/cb",
            "https://[fd00::1]/cb",
            "https://[::ffff:127.0.0.1]/cb",
            "https://localhost/cb",
            "https://api.localhost./cb",
            "https://0.0.0.0/cb",
            "not a url",
            "mailto:x@example.com",
        ] {
            assert!(check_callback_url(bad, true).is_err(), "{bad}");
        }
        // Test networks allow plain http and loopback, for local development.
        assert!(check_callback_url("http://127.0.0.1:9000/cb", false).is_ok());
        assert!(check_callback_url("ftp://wallet.example/cb", false).is_err());
    }

    #[test]
    fn the_configured_policy_refuses_the_server_itself_and_private_hosts_when_asked() {
        let policy = CallbackPolicy {
            https_only: false,
            allow_private: true,
            own_hosts: vec!["anchor.example".into(), "127.0.0.1:8000".into()],
            own_port: Some(8000),
        };
        for own in [
            "https://anchor.example/kyc",
            "https://ANCHOR.example:443/x",
            "http://127.0.0.1:8000/cb",
            "http://localhost:8000/cb",
            "http://[::1]:8000/cb",
        ] {
            assert_eq!(
                policy.check(own).unwrap_err(),
                "url must not point at this server itself",
                "{own}"
            );
        }
        assert!(policy.check("http://127.0.0.1:9000/cb").is_ok());
        assert!(policy.check("https://anchor.example:8443/cb").is_ok());
        let strict = CallbackPolicy {
            allow_private: false,
            ..policy
        };
        for private in [
            "http://127.0.0.1:9000/cb",
            "http://100.64.1.1/cb",
            "http://172.31.255.255/cb",
            "http://[::ffff:0.0.0.0]/cb",
        ] {
            assert!(strict.check(private).is_err(), "{private}");
        }
        assert!(strict.check("http://100.128.0.1/cb").is_ok());
        assert!(strict.check("https://wallet.example/cb").is_ok());
    }

    #[test]
    fn only_public_addresses_of_a_name_are_connected_to() {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            public_addrs("x", vec![addr("10.0.0.5:0"), addr("203.0.113.9:0")]),
            Ok(vec![addr("203.0.113.9:0")])
        );
        for internal in [
            "127.0.0.1:0",
            "192.168.1.1:0",
            "169.254.169.254:0",
            "[::1]:0",
            "[fd12::1]:0",
            "[::ffff:10.0.0.1]:0",
        ] {
            let e = public_addrs("rebound.example", vec![addr(internal)]).unwrap_err();
            assert!(e.contains("rebound.example resolves only to"), "{e}");
        }
    }

    /// A name that resolves to this machine (here through /etc/hosts) is not connected to.
    #[tokio::test]
    async fn the_resolver_refuses_a_name_of_this_machine() {
        use reqwest::dns::Resolve;
        let name: reqwest::dns::Name = "localhost".parse().unwrap();
        let error = match PublicOnly.resolve(name).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(e) => e.to_string(),
        };
        assert!(error.contains("resolves only to"), "{error}");
    }

    #[test]
    fn backoff_doubles_up_to_an_hour() {
        assert_eq!(backoff_secs(1), 2);
        assert_eq!(backoff_secs(2), 4);
        assert_eq!(backoff_secs(11), 2048);
        assert_eq!(backoff_secs(12), 3600);
        assert_eq!(backoff_secs(100), 3600);
    }

    #[test]
    fn a_lease_outlasts_a_batch_of_sends_that_time_out() {
        // The callbacks of a batch are sent together: the batch lasts one send timeout.
        let batch = SEND_TIMEOUT.as_secs() as i64;
        assert!(
            LEASE_SECS >= batch + 15,
            "lease {LEASE_SECS}s, batch {batch}s"
        );
    }

    #[test]
    fn signature_covers_timestamp_host_with_port_and_body() {
        let key = Keypair::random();
        let url = url::Url::parse("https://wallet.example:8443/kyc?x=1").unwrap();
        let header = signature_header(&key, &url, r#"{"status":"ACCEPTED"}"#, 1700000000);
        let (t, s) = header.split_once(", ").unwrap();
        assert_eq!(t, "t=1700000000");
        let signature = STANDARD.decode(s.strip_prefix("s=").unwrap()).unwrap();
        let payload = br#"1700000000.wallet.example:8443.{"status":"ACCEPTED"}"#;
        assert!(key.public_key().verify(payload, &signature));
        assert!(
            !key.public_key()
                .verify(b"1700000000.wallet.example.{}", &signature)
        );
        let default_port = url::Url::parse("https://wallet.example/kyc").unwrap();
        assert_eq!(signed_host(&default_port), "wallet.example");
    }
}
