//! A fake Stellar Horizon for black-box tests and benchmarks of a payment watcher.
//!
//! It serves `GET /accounts/{account}/payments` as a JSON page or, with
//! `Accept: text/event-stream`, as Horizon's Server-Sent Events stream, from transactions the test
//! [`submit`](FakeHorizon::submit)s or a client posts to `POST /transactions`, and it can
//! misbehave on demand (errors, dropped streams, downtime, failed transactions in a stream that
//! did not ask for them).
//!
//! `POST /transactions` takes a signed `TransactionEnvelope` as a real client SDK sends it (form
//! field `tx`, base64 XDR) and answers as Horizon does: the transaction resource, or a
//! `transaction_malformed` / `transaction_failed` problem. Its hash is the real one (see
//! [`FakeHorizon::set_network_passphrase`]), and so are the hashes in the records the streams then
//! carry. What it checks and what it cannot (signatures, balances, the order book) is described in
//! `submission.rs`.
//!
//! # What the wire format follows
//!
//! Everything below was checked against github.com/stellar/go: `protocols/` and
//! `support/render/` at `aab2ea4a`, and Horizon itself (`services/horizon/`, deleted from that
//! repository by `57c771a2`) at its parent `096f654e`. Only the wire format is matched; no code
//! is copied.
//!
//! - Records (`payment`, `path_payment_strict_receive`, `path_payment_strict_send`,
//!   `create_account`, `account_merge`) and the joined `transaction`: see `render.rs`
//!   (`protocols/horizon/operations/main.go`, `protocols/horizon/main.go`).
//! - Ids and paging tokens: `toid` (`(ledger << 32) | (application order << 12) | operation
//!   index`, the operation index and the application order 1-based). Every submitted transaction
//!   closes one new ledger, in which it is the only transaction (application order 1). The first
//!   ledger is [`FIRST_LEDGER`], so tokens are realistic in size (above 2^53).
//! - SSE (`services/horizon/internal/render/sse/{main,stream,stream_handler}.go`,
//!   `internal/httpx/handler.go`): headers `Content-Type: text/event-stream; charset=utf-8`,
//!   `Cache-Control: no-cache`, `Connection: keep-alive`, `Access-Control-Allow-Origin: *`; then
//!   the opening message `retry: 1000` / `event: open` / `data: "hello"`; then one message per
//!   record, `id: <paging_token>` / `data: <json>`; no heartbeat. Horizon ends a stream after
//!   `limit` records (default 10, at most 200) with `retry: 10` / `event: close` /
//!   `data: "byebye"` and closes the connection; a client must reconnect from its last id. The
//!   fake does the same (see [`FakeHorizon::keep_streams_open`] to turn that off).
//! - Cursors (`internal/actions/helpers.go`, `db2/page_query.go`): records strictly after the
//!   cursor; `now` is the first token after the latest ledger (only new records); no cursor on an
//!   ascending stream or page means from the start of history; a `Last-Event-ID` request header
//!   overrides `cursor`; a cursor that is not a non-negative integer is a 400.
//! - Failed transactions' operations appear only with `include_failed=true`
//!   (`db2/history/operation.go`); the payments endpoint lists `create_account`, `payment`, both
//!   path payments and `account_merge` of the operations whose participants (operation source
//!   and destination, `ingest/processors/operations_processor.go`) include the account.
//! - Errors are problem+json (`support/render/problem/problem.go`,
//!   `internal/render/problem/problem.go`): `Content-Type: application/problem+json;
//!   charset=utf-8`, body `{type, title, status, detail}` with `type` prefixed by
//!   `https://stellar.org/horizon-errors/` (`not_found`, `rate_limit_exceeded`, `server_error`,
//!   `service_unavailable`, ...). A 429 carries `X-RateLimit-*` headers and `Retry-After` as
//!   Horizon's rate limiter (github.com/stellar/throttled, `http.go`) sets them.
//!
//! - Transaction submission (`internal/actions/submit_transaction.go`, `internal/txsub/`,
//!   `internal/codes/`, `resourceadapter/transaction.go`): see `submission.rs`.
//!
//! Placeholders, for transactions added with [`FakeHorizon::submit`]: `envelope_xdr`,
//! `result_xdr` and `fee_meta_xdr` are valid base64 but not XDR, signatures are random-looking
//! base64 bytes, hashes are 64 hex characters derived from a counter, and `result_meta_xdr` and
//! `preconditions` are absent. Transactions posted to `POST /transactions` have their real
//! envelope, hashes, signatures, fees, sequence number and preconditions, and a real
//! `result_xdr`; their `result_meta_xdr` and `fee_meta_xdr` are valid XDR but empty (no ledger
//! changes).

mod render;
mod server;
mod submission;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::mpsc;

use render::{Address, RealTx};

/// The ledger of the first submitted transaction.
pub const FIRST_LEDGER: u32 = 50_000_001;

/// The network passphrase the fake hashes submitted transactions with unless told otherwise
/// ([`FakeHorizon::set_network_passphrase`]): the test network's.
pub const TESTNET_PASSPHRASE: &str = "Test SDF Network ; September 2015";

/// A fake Horizon server. Cheap to clone; the server stops when the last clone is dropped.
#[derive(Clone)]
pub struct FakeHorizon {
    handle: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.lock().close_streams();
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RequestLog {
    /// The URL path, without the query.
    pub path: String,
    /// The `cursor` query value, as sent (`Last-Event-ID`, which Horizon lets override it, is
    /// not reflected here).
    pub cursor: Option<String>,
    /// The HTTP status answered.
    pub status: u16,
}

/// A transaction to append to the fake ledger.
#[derive(Debug, Clone)]
pub struct Tx {
    /// `G...`, or `M...` for a muxed source.
    pub source: String,
    pub memo: Memo,
    /// `Some(fee source)` wraps the transaction in a fee-bump transaction.
    pub fee_bump: Option<String>,
    pub successful: bool,
    pub ops: Vec<Op>,
}

impl Tx {
    /// A successful transaction without fee bump.
    pub fn new(source: &str, memo: Memo, ops: Vec<Op>) -> Tx {
        Tx {
            source: source.to_string(),
            memo,
            fee_bump: None,
            successful: true,
            ops,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Memo {
    None,
    Id(u64),
    Text(String),
    Hash([u8; 32]),
    Return([u8; 32]),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Asset {
    Native,
    Credit { code: String, issuer: String },
}

impl Asset {
    pub fn credit(code: &str, issuer: &str) -> Asset {
        Asset::Credit {
            code: code.to_string(),
            issuer: issuer.to_string(),
        }
    }
}

/// An operation. `from: None` means the transaction's source; `from` and `to`/`into` may be
/// muxed `M...` addresses. Amounts are decimal strings, normalised to 7 decimals.
#[derive(Debug, Clone)]
pub enum Op {
    Payment {
        from: Option<String>,
        to: String,
        asset: Asset,
        amount: String,
    },
    PathPaymentStrictSend {
        from: Option<String>,
        to: String,
        send_asset: Asset,
        send_amount: String,
        dest_asset: Asset,
        dest_amount: String,
        dest_min: String,
    },
    PathPaymentStrictReceive {
        from: Option<String>,
        to: String,
        send_asset: Asset,
        send_max: String,
        send_amount: String,
        dest_asset: Asset,
        dest_amount: String,
    },
    CreateAccount {
        from: Option<String>,
        account: String,
        starting_balance: String,
    },
    AccountMerge {
        from: Option<String>,
        into: String,
    },
}

pub(crate) struct Shared {
    pub url: String,
    pub state: Mutex<State>,
    pub open_streams: Arc<AtomicUsize>,
}

impl Shared {
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub(crate) struct Record {
    pub token: i64,
    pub successful: bool,
    pub plain: Arc<str>,
    pub joined: Arc<str>,
}

pub(crate) enum Msg {
    Record(i64, Arc<str>),
    /// Sent after setting the stream's `closed` flag, to wake it.
    Wake,
}

/// An open stream, as the submitting side sees it.
pub(crate) struct Sub {
    pub tx: mpsc::UnboundedSender<Msg>,
    pub join: bool,
    pub include_failed: bool,
    pub closed: Arc<AtomicBool>,
}

pub(crate) struct Failure {
    pub remaining: usize,
    pub status: u16,
    pub retry_after: Option<u64>,
}

pub(crate) struct State {
    /// The latest closed ledger.
    pub ledger: u32,
    last_close: u64,
    counter: u64,
    sequences: HashMap<String, i64>,
    pub records: Vec<Record>,
    /// Indices into `records`, ascending, per participant account.
    by_account: HashMap<String, Vec<usize>>,
    pub subs: HashMap<String, Vec<Sub>>,
    pub failure: Option<Failure>,
    pub drop_after: Option<usize>,
    pub down: bool,
    pub send_failed_always: bool,
    pub keep_open: bool,
    pub requests: Vec<RequestLog>,
    /// SHA-256 of the network passphrase.
    pub network_id: [u8; 32],
    /// The sequence number of the latest transaction each account (base `G...`) submitted
    /// through `POST /transactions`.
    pub posted_sequences: HashMap<String, i64>,
    /// The answers to `POST /transactions` by hash (a fee bump is found by its inner hash too),
    /// for resubmissions.
    pub by_hash: HashMap<String, Arc<str>>,
    /// Hashes of the transactions that `POST /transactions` added to the ledger, in order.
    pub submitted: Vec<String>,
}

/// What appending one transaction produced.
pub(crate) struct Appended {
    /// The paging tokens of its operations.
    pub tokens: Vec<String>,
    /// For a submitted envelope: the transaction resource as `POST /transactions` answers it,
    /// by the hashes it can be found by (its own hash first, then a fee bump's inner hash).
    pub resources: Vec<(String, String)>,
}

impl State {
    fn new() -> State {
        State {
            ledger: FIRST_LEDGER - 1,
            last_close: 0,
            counter: 0,
            sequences: HashMap::new(),
            records: Vec::new(),
            by_account: HashMap::new(),
            subs: HashMap::new(),
            failure: None,
            drop_after: None,
            down: false,
            send_failed_always: false,
            keep_open: false,
            requests: Vec::new(),
            network_id: submission::network_id(TESTNET_PASSPHRASE),
            posted_sequences: HashMap::new(),
            by_hash: HashMap::new(),
            submitted: Vec::new(),
        }
    }

    /// Unix seconds of the next ledger close (never earlier than the previous one).
    pub fn close_time(&self) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.last_close.max(now)
    }

    pub fn close_streams(&mut self) {
        for sub in self.subs.drain().flat_map(|(_, subs)| subs) {
            sub.closed.store(true, Ordering::SeqCst);
            let _ = sub.tx.send(Msg::Wake);
        }
    }

    /// The records of `account` with a token strictly greater than `cursor`, ascending.
    pub fn after(&self, account: &str, cursor: i64) -> &[usize] {
        let Some(indices) = self.by_account.get(account) else {
            return &[];
        };
        let start = indices.partition_point(|&i| self.records[i].token <= cursor);
        &indices[start..]
    }

    /// The records of `account` with a token strictly smaller than `cursor`, ascending.
    pub fn before(&self, account: &str, cursor: i64) -> &[usize] {
        let Some(indices) = self.by_account.get(account) else {
            return &[];
        };
        let end = indices.partition_point(|&i| self.records[i].token < cursor);
        &indices[..end]
    }

    fn append(&mut self, url: &str, tx: Tx) -> Vec<String> {
        self.append_tx(url, tx, None).tokens
    }

    /// Appends `tx` in a new ledger; `real` carries the facts of a submitted envelope.
    pub(crate) fn append_tx(&mut self, url: &str, tx: Tx, real: Option<&RealTx>) -> Appended {
        self.ledger += 1;
        let ledger = self.ledger;
        self.last_close = self.close_time();
        let created_at = render::rfc3339(self.last_close);

        let source = Address::parse(&tx.source);
        let sequence = match real {
            Some(real) => real.sequence,
            None => {
                let sequence = self
                    .sequences
                    .entry(source.base.clone())
                    .or_insert(i64::from(FIRST_LEDGER) << 32);
                *sequence += 1;
                *sequence
            }
        };

        self.counter += 1;
        let seed = self.counter;
        let (hash, inner_hash) = match real {
            Some(real) => (
                real.hash.clone(),
                real.inner_hash.clone().unwrap_or_else(|| real.hash.clone()),
            ),
            None => {
                let inner = render::fake_hash(seed * 2);
                let outer = if tx.fee_bump.is_some() {
                    render::fake_hash(seed * 2 + 1)
                } else {
                    inner.clone()
                };
                (outer, inner)
            }
        };
        let fee_source = tx.fee_bump.as_deref().map(Address::parse);

        let facts = |by_inner_hash: bool| render::TxFacts {
            base_url: url,
            ledger,
            tx_order: 1,
            created_at: &created_at,
            source: &source,
            sequence,
            memo: &tx.memo,
            successful: tx.successful,
            op_count: tx.ops.len(),
            hash: &hash,
            fee_bump: fee_source
                .as_ref()
                .map(|fee_source| (fee_source, inner_hash.as_str())),
            seed,
            real,
            by_inner_hash,
        };
        let tx_json =
            serde_json::to_string(&render::transaction(&facts(false))).expect("transaction JSON");
        // Horizon indents its JSON answers with two spaces.
        let pretty = |by_inner_hash: bool| {
            serde_json::to_string_pretty(&render::transaction(&facts(by_inner_hash)))
                .expect("transaction JSON")
        };
        let mut resources = Vec::new();
        if real.is_some() {
            resources.push((hash.clone(), pretty(false)));
            if fee_source.is_some() {
                resources.push((inner_hash.clone(), pretty(true)));
            }
        }

        let mut tokens = Vec::with_capacity(tx.ops.len());
        for (i, op) in tx.ops.iter().enumerate() {
            let token = render::toid(ledger, 1, i as u32 + 1);
            let rendered = render::operation(
                &render::OpFacts {
                    base_url: url,
                    token,
                    successful: tx.successful,
                    created_at: &created_at,
                    tx_hash: &hash,
                    tx_source: &source,
                    tx_json: &tx_json,
                },
                op,
            );
            let record = Record {
                token,
                successful: tx.successful,
                plain: rendered.plain.into(),
                joined: rendered.joined.into(),
            };
            let index = self.records.len();
            for account in &rendered.participants {
                self.by_account
                    .entry(account.clone())
                    .or_default()
                    .push(index);
                if let Some(subs) = self.subs.get_mut(account) {
                    subs.retain(|sub| !sub.tx.is_closed());
                    for sub in subs.iter() {
                        if record.successful || sub.include_failed || self.send_failed_always {
                            let json = if sub.join {
                                &record.joined
                            } else {
                                &record.plain
                            };
                            let _ = sub.tx.send(Msg::Record(token, json.clone()));
                        }
                    }
                }
            }
            self.records.push(record);
            tokens.push(token.to_string());
        }
        Appended { tokens, resources }
    }
}

impl FakeHorizon {
    /// Binds 127.0.0.1:0 and serves in a spawned tokio task.
    pub async fn start() -> FakeHorizon {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("fake-horizon: bind 127.0.0.1:0");
        let port = listener
            .local_addr()
            .expect("fake-horizon: local address")
            .port();
        let shared = Arc::new(Shared {
            url: format!("http://127.0.0.1:{port}"),
            state: Mutex::new(State::new()),
            open_streams: Arc::new(AtomicUsize::new(0)),
        });
        let app = server::router(shared.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeHorizon {
            handle: Arc::new(Handle { shared, task }),
        }
    }

    fn shared(&self) -> &Shared {
        &self.handle.shared
    }

    /// `http://127.0.0.1:<port>` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared().url.clone()
    }

    /// Appends a transaction (one new ledger per call) and returns the paging tokens of its
    /// operations, in order. Open streams of every account the operations involve (the base G
    /// of the operation source, `from`, `to`) receive the new records at once.
    ///
    /// Panics on an invalid address, amount or asset code (a broken fixture).
    pub fn submit(&self, tx: Tx) -> Vec<String> {
        let url = &self.shared().url;
        self.shared().lock().append(url, tx)
    }

    /// Like [`submit`](Self::submit) for many transactions at once (one ledger each), under one
    /// lock.
    pub fn submit_all(&self, txs: Vec<Tx>) -> Vec<Vec<String>> {
        let url = &self.shared().url;
        let mut state = self.shared().lock();
        txs.into_iter().map(|tx| state.append(url, tx)).collect()
    }

    /// The next `n` requests (any path) answer `status` with a problem+json body; with 429 and
    /// `retry_after_secs` set, a `Retry-After` header. Replaces an earlier `fail_next`. Requests
    /// answered 503 because the server is [down](Self::set_down) do not count.
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        assert!(
            (400..=599).contains(&status),
            "fake-horizon: fail_next wants a 4xx or 5xx status"
        );
        self.shared().lock().failure = (n > 0).then_some(Failure {
            remaining: n,
            status,
            retry_after: retry_after_secs,
        });
    }

    /// Every stream opened from now on closes (plain end of the HTTP body, no message) after
    /// sending `n` records; `None` turns that off.
    pub fn drop_streams_after(&self, n: Option<usize>) {
        self.shared().lock().drop_after = n;
    }

    /// Down: closes every open stream and answers every request 503 until `set_down(false)`.
    pub fn set_down(&self, down: bool) {
        let mut state = self.shared().lock();
        state.down = down;
        if down {
            state.close_streams();
        }
    }

    /// Closes every open stream now (plain end of the HTTP body; the client must reconnect).
    pub fn close_streams(&self) {
        self.shared().lock().close_streams();
    }

    /// Streams send records of failed transactions even without `include_failed=true` (a
    /// misbehaving server, to test that the client checks `transaction_successful`).
    pub fn send_failed_always(&self, yes: bool) {
        self.shared().lock().send_failed_always = yes;
    }

    /// NOT Horizon's behaviour, off by default: streams opened from now on ignore `limit` and
    /// never end with Horizon's `byebye` close message, so one connection sees every record.
    pub fn keep_streams_open(&self, yes: bool) {
        self.shared().lock().keep_open = yes;
    }

    /// The network passphrase that the hashes of submitted transactions (`POST /transactions`)
    /// are computed with; [`TESTNET_PASSPHRASE`] until set. Applies to later submissions.
    pub fn set_network_passphrase(&self, passphrase: &str) {
        self.shared().lock().network_id = submission::network_id(passphrase);
    }

    /// The hashes (lowercase hex) of the transactions that `POST /transactions` added to the
    /// ledger, in order; a fee bump's is the fee-bump hash. Rejected submissions (answered 400)
    /// and resubmissions of a transaction already in the ledger are not listed; every request is
    /// in [`requests`](Self::requests).
    pub fn submitted(&self) -> Vec<String> {
        self.shared().lock().submitted.clone()
    }

    /// Every request so far: path, the `cursor` query value, the status answered.
    pub fn requests(&self) -> Vec<RequestLog> {
        self.shared().lock().requests.clone()
    }

    /// Streams currently open (a stream counts until its response body is dropped).
    pub fn open_streams(&self) -> usize {
        self.shared().open_streams.load(Ordering::SeqCst)
    }

    /// The paging token of the newest operation so far ("now").
    pub fn latest_token(&self) -> Option<String> {
        self.shared()
            .lock()
            .records
            .last()
            .map(|record| record.token.to_string())
    }
}
