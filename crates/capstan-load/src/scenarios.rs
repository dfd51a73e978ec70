//! What one operation of each scenario is, the anchor's endpoints as a client discovers them,
//! and the accounts, customers and transactions prepared before the timed part.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicU64, Ordering};

use clap::ValueEnum;
use hyper::Method;
use serde_json::json;
use stellar::{Keypair, Network};

use crate::client::Conn;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// GET /health: the fastest the HTTP stack (and one `SELECT 1`) goes.
    Baseline,
    /// GET /.well-known/stellar.toml.
    Toml,
    /// SEP-31 GET /info with a token.
    Info,
    /// A full SEP-10 login: GET the challenge, sign it, POST it, read the token.
    Login,
    /// SEP-12 PUT of a new customer.
    Customer,
    /// SEP-31 POST of a new transaction, with accepted customers.
    Transaction,
    /// SEP-31 GET of one transaction.
    Get,
    /// A sending anchor's sequence: login, sender and receiver, POST, GET.
    Mixed,
    /// Every scenario above, baseline first.
    All,
    /// The payment watcher's benchmark: `capstan watch` matching `--payments` payments from
    /// a fake Horizon (needs `--spawn`; not part of `all`, and run on its own).
    Watcher,
    /// The payout executor's benchmark: `capstan execute` paying out `--payments`
    /// transactions with the simulated rails, one process and two (needs `--spawn`; not
    /// part of `all`, and run on its own).
    Executor,
}

impl Scenario {
    pub const EACH: [Scenario; 8] = [
        Scenario::Baseline,
        Scenario::Toml,
        Scenario::Info,
        Scenario::Login,
        Scenario::Customer,
        Scenario::Transaction,
        Scenario::Get,
        Scenario::Mixed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Scenario::Baseline => "baseline",
            Scenario::Toml => "toml",
            Scenario::Info => "info",
            Scenario::Login => "login",
            Scenario::Customer => "customer",
            Scenario::Transaction => "transaction",
            Scenario::Get => "get",
            Scenario::Mixed => "mixed",
            Scenario::All => "all",
            Scenario::Watcher => "watcher",
            Scenario::Executor => "executor",
        }
    }

    /// A benchmark of a background process, not of HTTP requests.
    pub fn is_process(self) -> bool {
        matches!(self, Scenario::Watcher | Scenario::Executor)
    }

    /// HTTP requests in one operation.
    pub fn requests(self) -> u64 {
        match self {
            Scenario::Login => 2,
            Scenario::Mixed => 6,
            _ => 1,
        }
    }

    /// Whether it needs each worker's logged-in sending anchor, customers and transaction.
    pub fn needs_fixtures(self) -> bool {
        matches!(
            self,
            Scenario::Info | Scenario::Customer | Scenario::Transaction | Scenario::Get
        )
    }
}

/// The anchor as its stellar.toml and `/info` describe it: paths of the endpoints on the
/// address the tool connects to, the network, and an asset and funding method to send.
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
    pub network: Network,
    auth: String,
    kyc: String,
    sep31: String,
    asset_code: String,
    funding_method: String,
    /// Memos of new customers: one number never used twice in a run.
    next_memo: AtomicU64,
}

impl Target {
    pub async fn discover(base_url: &str) -> Result<Target, String> {
        let url = url::Url::parse(base_url).map_err(|e| format!("--url {base_url}: {e}"))?;
        let host = url
            .host_str()
            .ok_or_else(|| format!("--url {base_url}: no host"))?;
        let port = url.port_or_known_default().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()
            .map_err(|e| format!("{host}:{port}: {e}"))?
            .next()
            .ok_or_else(|| format!("{host}:{port}: no address"))?;
        let host = format!("{host}:{port}");
        let mut conn = Conn::new(addr, &host);

        let reply = conn
            .expect(Method::GET, "/.well-known/stellar.toml", None, None)
            .await?;
        let toml: toml::Table = String::from_utf8_lossy(&reply.body)
            .parse()
            .map_err(|e| format!("stellar.toml: {e}"))?;
        let entry = |key: &str| {
            toml.get(key)
                .and_then(|v| v.as_str())
                .ok_or_else(|| format!("stellar.toml has no {key}"))
        };
        let path_of = |key: &str| -> Result<String, String> {
            let endpoint = entry(key)?;
            let url = url::Url::parse(endpoint).map_err(|e| format!("{key} {endpoint}: {e}"))?;
            Ok(url.path().trim_end_matches('/').to_owned())
        };
        let network = Network::from_passphrase(entry("NETWORK_PASSPHRASE")?);
        let (auth, kyc, sep31) = (
            path_of("WEB_AUTH_ENDPOINT")?,
            path_of("KYC_SERVER")?,
            path_of("DIRECT_PAYMENT_SERVER")?,
        );

        let info = conn
            .expect(Method::GET, &format!("{sep31}/info"), None, None)
            .await?
            .json()?;
        let (asset_code, asset) = info["receive"]
            .as_object()
            .and_then(|r| r.iter().next())
            .ok_or_else(|| format!("GET {sep31}/info receives no asset: {info}"))?;
        let funding_method = asset["funding_methods"][0]
            .as_str()
            .ok_or_else(|| format!("GET {sep31}/info: {asset_code} has no funding method"))?;
        Ok(Target {
            addr,
            host,
            network,
            auth,
            kyc,
            sep31,
            asset_code: asset_code.clone(),
            funding_method: funding_method.to_owned(),
            next_memo: AtomicU64::new(1_000),
        })
    }

    fn memo(&self) -> u64 {
        self.next_memo.fetch_add(1, Ordering::Relaxed)
    }

    /// SEP-10: challenge, signature by `key`, token.
    pub async fn login(&self, conn: &mut Conn, key: &Keypair) -> Result<String, String> {
        let path = format!("{}?account={}", self.auth, key.public_key());
        let challenge = conn.expect(Method::GET, &path, None, None).await?.json()?;
        let xdr = challenge["transaction"]
            .as_str()
            .ok_or_else(|| format!("GET {}: no transaction in {challenge}", self.auth))?;
        let signed = stellar::sep10::sign_challenge(xdr, &self.network, &[key])
            .map_err(|e| format!("GET {}: the challenge cannot be signed: {e}", self.auth))?;
        let body = json!({ "transaction": signed });
        let token = conn
            .expect(Method::POST, &self.auth, None, Some(&body))
            .await?
            .json()?;
        token["token"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("POST {}: no token in {token}", self.auth))
    }

    /// SEP-12 PUT of a new customer of the token's account, under a new memo; its id.
    pub async fn new_customer(
        &self,
        conn: &mut Conn,
        token: &str,
        receiver: bool,
    ) -> Result<String, String> {
        let memo = self.memo().to_string();
        let body = if receiver {
            json!({
                "memo": memo,
                "type": "sep31-receiver",
                "first_name": "Bruno",
                "last_name": "Costa",
                "email_address": "bruno@example.com",
                "bank_account_number": "12345678",
                "bank_number": "021000021",
            })
        } else {
            json!({
                "memo": memo,
                "type": "sep31-sender",
                "first_name": "Ana",
                "last_name": "Silva",
                "email_address": "ana@example.com",
            })
        };
        let path = format!("{}/customer", self.kyc);
        let put = conn
            .expect(Method::PUT, &path, Some(token), Some(&body))
            .await?
            .json()?;
        put["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("PUT {path}: no id in {put}"))
    }

    /// SEP-31 POST of a transaction for 100 of the asset; its id.
    pub async fn new_transaction(
        &self,
        conn: &mut Conn,
        token: &str,
        sender: &str,
        receiver: &str,
    ) -> Result<String, String> {
        let body = json!({
            "amount": "100",
            "asset_code": self.asset_code,
            "funding_method": self.funding_method,
            "sender_id": sender,
            "receiver_id": receiver,
        });
        let path = format!("{}/transactions", self.sep31);
        let created = conn
            .expect(Method::POST, &path, Some(token), Some(&body))
            .await?
            .json()?;
        created["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("POST {path}: no id in {created}"))
    }

    pub async fn get_transaction(
        &self,
        conn: &mut Conn,
        token: &str,
        id: &str,
    ) -> Result<(), String> {
        let path = format!("{}/transactions/{id}", self.sep31);
        conn.expect(Method::GET, &path, Some(token), None).await?;
        Ok(())
    }

    /// One operation of `scenario` by the worker that owns `fixture`.
    pub async fn run(
        &self,
        scenario: Scenario,
        conn: &mut Conn,
        fixture: &Fixture,
    ) -> Result<(), String> {
        match scenario {
            Scenario::Baseline => conn.expect(Method::GET, "/health", None, None).await?,
            Scenario::Toml => {
                conn.expect(Method::GET, "/.well-known/stellar.toml", None, None)
                    .await?
            }
            Scenario::Info => {
                let path = format!("{}/info", self.sep31);
                conn.expect(Method::GET, &path, Some(fixture.token()?), None)
                    .await?
            }
            Scenario::Login => {
                self.login(conn, &fixture.key).await?;
                return Ok(());
            }
            Scenario::Customer => {
                self.new_customer(conn, fixture.token()?, false).await?;
                return Ok(());
            }
            Scenario::Transaction => {
                let prepared = fixture.prepared()?;
                self.new_transaction(conn, &prepared.token, &prepared.sender, &prepared.receiver)
                    .await?;
                return Ok(());
            }
            Scenario::Get => {
                let prepared = fixture.prepared()?;
                return self
                    .get_transaction(conn, &prepared.token, &prepared.transaction)
                    .await;
            }
            Scenario::Mixed => {
                let token = self.login(conn, &fixture.key).await?;
                let sender = self.new_customer(conn, &token, false).await?;
                let receiver = self.new_customer(conn, &token, true).await?;
                let id = self
                    .new_transaction(conn, &token, &sender, &receiver)
                    .await?;
                return self.get_transaction(conn, &token, &id).await;
            }
            Scenario::All => return Err("`all` is not one scenario".into()),
            Scenario::Watcher | Scenario::Executor => {
                return Err(format!("`{}` is not an HTTP scenario", scenario.name()));
            }
        };
        Ok(())
    }
}

/// A worker's sending anchor: its key and, once prepared, its session, its two ACCEPTED
/// customers and one transaction.
pub struct Fixture {
    pub key: Keypair,
    pub prepared: Option<Prepared>,
}

pub struct Prepared {
    pub token: String,
    pub sender: String,
    pub receiver: String,
    pub transaction: String,
}

impl Fixture {
    pub fn new() -> Fixture {
        Fixture {
            key: Keypair::random(),
            prepared: None,
        }
    }

    fn prepared(&self) -> Result<&Prepared, String> {
        self.prepared
            .as_ref()
            .ok_or_else(|| "the worker's sending anchor was not prepared".to_owned())
    }

    fn token(&self) -> Result<&str, String> {
        Ok(&self.prepared()?.token)
    }

    /// Logs in and registers what the timed scenarios read and send.
    pub async fn prepare(&mut self, target: &Target) -> Result<(), String> {
        let mut conn = Conn::new(target.addr, &target.host);
        let token = target.login(&mut conn, &self.key).await?;
        let sender = target.new_customer(&mut conn, &token, false).await?;
        let receiver = target.new_customer(&mut conn, &token, true).await?;
        let transaction = target
            .new_transaction(&mut conn, &token, &sender, &receiver)
            .await?;
        self.prepared = Some(Prepared {
            token,
            sender,
            receiver,
            transaction,
        });
        Ok(())
    }
}
