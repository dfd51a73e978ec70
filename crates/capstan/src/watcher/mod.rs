//! The payment watcher (the seeds' `watch_transactions`): one stream per distribution
//! account, each payment matched to the SEP-31 transaction its memo names or held for the
//! operator, and the stream's cursor stored with what was recorded, in one database
//! transaction. A restart resumes from that cursor: nothing that arrived meanwhile is
//! skipped, nothing is counted twice.

pub mod matching;
mod read_ahead;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::watch;

use crate::anchor::AppState;
use crate::config::StartAt;
use crate::sep31::amounts::amount_string;
use crate::sep31::integration::FeeError;
use crate::sep31::status::Status;
use crate::sep31::transactions::transaction_body;
use crate::store::{
    BatchWritten, Funding, PaymentRecord, PaymentRow, StoreError, StreamLease, TransactionRow,
    prepare_transition, unix_now,
};
use matching::{Decision, Reason, decide, payment_memo};
use read_ahead::ReadAhead;
use source::{IncomingPayment, ItemStream, SourceError, SourceItem};

/// The actor written in the events of the transactions the watcher changes.
pub const ACTOR: &str = "watcher";
/// Records written per database transaction at most.
const MAX_BATCH: usize = 500;
/// How long a batch waits for more records after its first.
const BATCH_WAIT: Duration = Duration::from_millis(5);
/// How often a batch is redone when a transaction changed under it before giving up and
/// reconnecting.
const CONFLICT_RETRIES: usize = 8;

/// What `/health` shows of each stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    pub account: String,
    pub source: &'static str,
    /// connecting, streaming, waiting (to reconnect), stopped
    pub state: &'static str,
    pub cursor: Option<String>,
    pub reconnects: u64,
    pub last_error: Option<String>,
    /// Seconds since the source last sent anything.
    #[serde(skip)]
    pub last_message_at: Option<i64>,
    /// How far behind the network the last payment was recorded (seconds between its ledger
    /// closing and its recording); large while catching up.
    pub behind_secs: Option<i64>,
    pub payments_recorded: u64,
}

/// The streams of this process, shared with `/health`.
#[derive(Debug, Clone, Default)]
pub struct Streams(Arc<Mutex<BTreeMap<String, StreamState>>>);

impl Streams {
    fn update(&self, account: &str, f: impl FnOnce(&mut StreamState)) {
        if let Ok(mut streams) = self.0.lock()
            && let Some(state) = streams.get_mut(account)
        {
            f(state);
        }
    }

    fn add(&self, state: StreamState) {
        if let Ok(mut streams) = self.0.lock() {
            streams.insert(state.account.clone(), state);
        }
    }

    /// Each stream's state, for `/health`; empty when no watcher runs in this process.
    pub fn snapshot(&self) -> Vec<serde_json::Value> {
        let now = unix_now();
        let Ok(streams) = self.0.lock() else {
            return Vec::new();
        };
        streams
            .values()
            .map(|s| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["last_message_secs_ago"] = s
                    .last_message_at
                    .map(|at| serde_json::Value::from(now - at))
                    .unwrap_or_default();
                v
            })
            .collect()
    }
}

/// The distribution accounts to watch: assets sharing one share its stream.
pub fn accounts(anchor: &crate::anchor::Anchor) -> Vec<String> {
    let mut accounts: Vec<String> = anchor
        .receive_assets
        .iter()
        .map(|a| a.distribution_account.to_string())
        .collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

/// Runs one stream per distribution account until `stopped`.
pub async fn run(anchor: AppState, stopped: watch::Receiver<bool>) {
    let accounts = accounts(&anchor);
    if accounts.is_empty() {
        tracing::info!("payment watcher: no asset is received, nothing to watch");
        return;
    }
    // Who this process is to the other replicas: the owner of the streams it holds.
    let owner: Arc<str> = format!(
        "watcher-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    )
    .into();
    let tasks: Vec<_> = accounts
        .into_iter()
        .map(|account| {
            tokio::spawn(watch_account(
                anchor.clone(),
                account,
                owner.clone(),
                stopped.clone(),
            ))
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

enum StreamEnd {
    /// The source closed the stream (Horizon does after `limit` records); `advanced`: the
    /// stored cursor moved on while it was open.
    Closed {
        advanced: bool,
    },
    Failed(String, Option<Duration>),
    Stopped,
    /// Another replica streams this account.
    Standby,
    /// Another replica took the stream over while this one streamed it.
    LeaseLost,
}

async fn watch_account(
    anchor: AppState,
    account: String,
    owner: Arc<str>,
    mut stopped: watch::Receiver<bool>,
) {
    let source = anchor.payment_source.clone();
    anchor.streams.add(StreamState {
        account: account.clone(),
        source: source.name(),
        state: "connecting",
        cursor: None,
        reconnects: 0,
        last_error: None,
        last_message_at: None,
        behind_secs: None,
        payments_recorded: 0,
    });
    let max_backoff = anchor.config.watcher.max_backoff;
    let lease = StreamLease {
        owner: &owner,
        secs: anchor.config.watcher.lease.as_secs() as i64,
    };
    let mut failures: u32 = 0;
    loop {
        if *stopped.borrow() {
            break;
        }
        let end = stream_once(&anchor, &account, lease, &mut stopped, &mut failures).await;
        let delay = match end {
            StreamEnd::Stopped => break,
            StreamEnd::Standby => {
                anchor.streams.update(&account, |s| s.state = "standby");
                tokio::select! {
                    _ = tokio::time::sleep(renew_every(lease)) => continue,
                    _ = stopped.changed() => break,
                }
            }
            StreamEnd::LeaseLost => {
                tracing::warn!(account = %account, "payment stream: another replica took it over; standing by");
                Duration::ZERO
            }
            // Horizon closes every stream after a page of records: go on at once. A stream
            // closed before sending anything is waited on, so a server that closes every
            // connection at once is not hammered.
            StreamEnd::Closed { advanced: true } => {
                tracing::debug!(account = %account, "payment stream closed by the source; reconnecting");
                Duration::ZERO
            }
            // Closed without progress (nothing new, or the same records again): waited on,
            // so a server that closes every connection at once is not hammered.
            StreamEnd::Closed { advanced: false } => {
                failures = failures.saturating_add(1);
                let delay = backoff(failures, max_backoff);
                tracing::info!(account = %account, retry_in_ms = delay.as_millis() as u64, "payment stream closed without progress; reconnecting");
                delay
            }
            StreamEnd::Failed(error, retry_after) => {
                failures = failures.saturating_add(1);
                // Never sooner than the backoff (a Retry-After of 0 is no reason to
                // hammer), never later than an hour.
                let delay = backoff(failures, max_backoff)
                    .max(retry_after.unwrap_or_default())
                    .min(Duration::from_secs(3600));
                tracing::warn!(
                    account = %account,
                    error = %error,
                    retry_in_ms = delay.as_millis() as u64,
                    "payment stream failed; reconnecting"
                );
                anchor
                    .streams
                    .update(&account, |s| s.last_error = Some(error));
                delay
            }
        };
        anchor.streams.update(&account, |s| {
            s.state = "waiting";
            s.reconnects += 1;
        });
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stopped.changed() => break,
        }
    }
    if let Err(e) = anchor.store.release_stream(&account, lease.owner).await {
        tracing::warn!(account = %account, error = %e, "payment stream: cannot release its lease; another replica takes it when it runs out");
    }
    anchor.streams.update(&account, |s| s.state = "stopped");
}

/// One connection: take (or keep) the stream's lease, then stream from the stored cursor
/// while renewing the lease, until the stream ends.
async fn stream_once(
    anchor: &AppState,
    account: &str,
    lease: StreamLease<'_>,
    stopped: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> StreamEnd {
    // Only the lease's owner pins the start, streams and writes.
    match anchor.store.lease_stream(account, lease).await {
        Ok(true) => {}
        Ok(false) => return StreamEnd::Standby,
        Err(e) => return StreamEnd::Failed(format!("cannot take the stream's lease: {e}"), None),
    }
    let (cursor, from_stored) = match start_cursor(anchor, account).await {
        Ok(start) => start,
        Err(end) => return end,
    };
    let source = &anchor.payment_source;
    tracing::info!(
        account = %account,
        cursor = %cursor,
        source = source.name(),
        "payment stream: connecting from {}",
        if from_stored { "the stored cursor" } else { "watcher.start (first start)" }
    );
    anchor.streams.update(account, |s| {
        s.state = "connecting";
        s.cursor = Some(cursor.clone());
    });
    let opened = tokio::select! {
        opened = source.open(account, &cursor) => opened,
        _ = stopped.changed() => return StreamEnd::Stopped,
    };
    let stream = match opened {
        Err(e) => return failed(e),
        Ok(stream) => stream,
    };
    anchor.streams.update(account, |s| {
        s.state = "streaming";
        s.last_message_at = Some(unix_now());
    });
    tokio::select! {
        end = consume(anchor, account, &cursor, stream, lease, stopped, failures) => end,
        () = keep_lease(anchor, account, lease) => StreamEnd::LeaseLost,
    }
}

/// How often a held lease is renewed, and a standby replica looks whether it ran out.
fn renew_every(lease: StreamLease<'_>) -> Duration {
    Duration::from_millis((lease.secs as u64 * 1000 / 3).max(500))
}

/// Renews the lease while the stream runs (each batch renews it too); returns once another
/// replica holds it. A database error is not a loss: the batches are fenced by the lease.
async fn keep_lease(anchor: &AppState, account: &str, lease: StreamLease<'_>) {
    loop {
        tokio::time::sleep(renew_every(lease)).await;
        match anchor.store.lease_stream(account, lease).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(account = %account, error = %e, "payment stream: cannot renew its lease")
            }
        }
    }
}

/// Where the stream resumes: the stored cursor, or on the first start `watcher.start`,
/// stored at once ("now" pinned to the newest payment's token first), so every later
/// connection resumes from a position that is written down. The bool: it was stored before.
async fn start_cursor(anchor: &AppState, account: &str) -> Result<(String, bool), StreamEnd> {
    let stored = anchor
        .store
        .watcher_cursor(account)
        .await
        .map_err(|e| StreamEnd::Failed(format!("cannot read the stored cursor: {e}"), None))?;
    if let Some(cursor) = stored {
        return Ok((cursor, true));
    }
    let start = match &anchor.config.watcher.start {
        StartAt::Now => anchor
            .payment_source
            .latest_cursor(account)
            .await
            .map_err(failed)?,
        StartAt::Cursor(c) => c.clone(),
    };
    let cursor = anchor
        .store
        .init_watcher_cursor(account, &start)
        .await
        .map_err(|e| StreamEnd::Failed(format!("cannot store the first cursor: {e}"), None))?;
    Ok((cursor, false))
}

fn failed(e: SourceError) -> StreamEnd {
    match e {
        SourceError::Rejected {
            status,
            retry_after,
        } => StreamEnd::Failed(format!("the source answered {status}"), retry_after),
        other => StreamEnd::Failed(other.to_string(), None),
    }
}

/// Exponential backoff with jitter: about 0.5 s, 1 s, 2 s, ... up to `max`, each drawn
/// between half and all of it, so replicas do not reconnect in step.
fn backoff(failures: u32, max: Duration) -> Duration {
    let exp = 250u64.saturating_mul(1u64 << failures.min(20));
    let capped = exp.min(max.as_millis() as u64).max(1);
    let jitter = u64::from_le_bytes(stellar::random_bytes::<8>()) % (capped / 2 + 1);
    Duration::from_millis(capped / 2 + jitter)
}

/// Reads the stream in batches (what is already there, up to [`MAX_BATCH`]) and records each
/// batch, until the stream ends, fails or the watcher stops. The next records are read and
/// decoded meanwhile ([`ReadAhead`]).
async fn consume(
    anchor: &AppState,
    account: &str,
    from: &str,
    stream: ItemStream,
    lease: StreamLease<'_>,
    stopped: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> StreamEnd {
    let mut stream = ReadAhead::start(
        anchor.payment_source.clone(),
        account.to_owned(),
        from.to_owned(),
        stream,
    );
    let mut cursor = from.to_owned();
    loop {
        let first = tokio::select! {
            item = stream.next() => item,
            _ = stopped.changed() => return StreamEnd::Stopped,
        };
        let mut batch = Vec::new();
        let mut end = None;
        match first {
            None => {
                return StreamEnd::Closed {
                    advanced: cursor != from,
                };
            }
            Some(Err(e)) => return failed(e),
            Some(Ok(item)) => batch.push(item),
        }
        // What the stream has ready, and what arrives within a few milliseconds more:
        // one database transaction per batch, so larger batches are cheaper per payment
        // (a catch-up gets full ones; a live stream waits at most BATCH_WAIT).
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < MAX_BATCH {
            let next = match stream.ready() {
                Some(next) => Some(next),
                None => tokio::time::timeout_at(deadline, stream.next()).await.ok(),
            };
            match next {
                Some(Some(Ok(item))) => batch.push(item),
                Some(Some(Err(e))) => {
                    end = Some(failed(e));
                    break;
                }
                Some(None) => {
                    end = Some(StreamEnd::Closed { advanced: true });
                    break;
                }
                None => break,
            }
        }
        anchor
            .streams
            .update(account, |s| s.last_message_at = Some(unix_now()));
        match record_batch(anchor, account, &batch, Some(lease)).await {
            Ok(()) => {}
            Err(RecordError::LeaseLost) => return StreamEnd::LeaseLost,
            Err(e) => return StreamEnd::Failed(format!("cannot record payments: {e}"), None),
        }
        // A batch went through: the connection is healthy again.
        *failures = 0;
        if let Some(last) = batch.last() {
            cursor = last.cursor().to_owned();
        }
        if let Some(StreamEnd::Closed { .. }) = end {
            return StreamEnd::Closed {
                advanced: cursor != from,
            };
        }
        if let Some(end) = end {
            return end;
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the transactions kept changing under the batch")]
    Busy,
    #[error("another replica owns the stream")]
    LeaseLost,
}

/// Records one batch: each payment matched or held, and the cursor after the last item.
pub async fn record_batch(
    anchor: &AppState,
    account: &str,
    items: &[SourceItem],
    lease: Option<StreamLease<'_>>,
) -> Result<(), RecordError> {
    let Some(last) = items.last() else {
        return Ok(());
    };
    let cursor = last.cursor().to_owned();
    let payments: Vec<&IncomingPayment> = items
        .iter()
        .filter_map(|i| match i {
            SourceItem::Payment(p) => Some(p.as_ref()),
            _ => None,
        })
        .collect();
    let unreadable: Vec<PaymentRecord> = items
        .iter()
        .filter_map(|i| match i {
            SourceItem::Unreadable { id, cursor, detail } => {
                Some(unreadable_record(account, id, cursor, detail))
            }
            _ => None,
        })
        .collect();
    for _ in 0..CONFLICT_RETRIES {
        let ids: Vec<&str> = payments
            .iter()
            .map(|p| p.id.as_str())
            .chain(unreadable.iter().map(|r| r.payment.id.as_str()))
            .collect();
        let known: HashSet<String> = anchor
            .store
            .known_payment_ids(&ids)
            .await?
            .into_iter()
            .collect();
        let fresh: Vec<&IncomingPayment> = payments
            .iter()
            .copied()
            .filter(|p| !known.contains(&p.id))
            .collect();
        let mut records = prepare(anchor, &fresh).await?;
        records.extend(
            unreadable
                .iter()
                .filter(|r| !known.contains(&r.payment.id))
                .cloned(),
        );
        match anchor
            .store
            .record_payments(account, &records, &cursor, ACTOR, lease)
            .await?
        {
            BatchWritten::Conflict => continue,
            BatchWritten::LeaseLost => return Err(RecordError::LeaseLost),
            BatchWritten::Done { new, .. } => {
                report(anchor, account, &records, new);
                return Ok(());
            }
        }
    }
    Err(RecordError::Busy)
}

/// A record the source could not read, held for the operator with what is known of it.
fn unreadable_record(account: &str, id: &str, cursor: &str, detail: &str) -> PaymentRecord {
    let now = unix_now();
    PaymentRecord {
        payment: PaymentRow {
            id: id.to_owned(),
            account: account.to_owned(),
            cursor: cursor.to_owned(),
            stellar_transaction_id: String::new(),
            kind: "unreadable".into(),
            from_account: String::new(),
            to_muxed_id: None,
            asset_code: String::new(),
            asset_issuer: String::new(),
            amount: "0".into(),
            memo_type: "none".into(),
            memo: None,
            paid_at: now,
            recorded_at: now,
            outcome: "unmatched".into(),
            reason: Some(Reason::Unreadable.as_str().into()),
            // NUL bytes cannot be stored in PostgreSQL text; what the source said is kept.
            detail: Some(detail.replace('\0', "\u{fffd}")),
            transaction_id: None,
            resolution: None,
            resolution_note: None,
            resolved_by: None,
            resolved_at: None,
        },
        funding: None,
    }
}

fn report(anchor: &AppState, account: &str, records: &[PaymentRecord], new: usize) {
    let now = unix_now();
    let mut matched = 0;
    let mut callbacks = false;
    for r in records {
        let p = &r.payment;
        match (&r.funding, &p.reason) {
            (Some(f), _) => {
                matched += 1;
                callbacks |= f.callback_body.is_some();
                // Each match is in the transaction's events; the log counts them per batch
                // (one line per payment costs a tenth of a catch-up's time).
                tracing::debug!(payment = %p.id, transaction = %f.next.id, amount = %p.amount, asset = %p.asset_code, "payment matched");
            }
            (None, reason) => tracing::warn!(
                payment = %p.id,
                reason = reason.as_deref().unwrap_or(""),
                detail = p.detail.as_deref().unwrap_or(""),
                transaction = p.transaction_id.as_deref().unwrap_or(""),
                "payment held for the operator"
            ),
        }
    }
    let behind = records.last().map(|r| now - r.payment.paid_at);
    anchor.streams.update(account, |s| {
        s.payments_recorded += new as u64;
        if behind.is_some() {
            s.behind_secs = behind;
        }
        s.last_error = None;
    });
    if callbacks {
        anchor.outbox_wake.notify_one();
    }
    if matched > 0 {
        tracing::info!(account = %account, matched, recorded = new, "payments matched");
        anchor.payout_wake.notify_one();
    }
}

/// Decides each payment against the transaction its memo names, as the database has it now
/// plus what earlier payments of the same batch changed.
async fn prepare(
    anchor: &AppState,
    payments: &[&IncomingPayment],
) -> Result<Vec<PaymentRecord>, RecordError> {
    let policy = anchor.config.watcher.short_payments;
    // The transactions the batch's memos name, read in one query.
    let memos: Vec<String> = payments
        .iter()
        .filter_map(|p| payment_memo(p).map(|(_, value)| value))
        .collect();
    let named: HashMap<String, TransactionRow> = anchor
        .store
        .transactions_by_memos(&memos)
        .await?
        .into_iter()
        .filter_map(|t| t.stellar_memo.clone().map(|m| (m, t)))
        .collect();
    // Transactions funded earlier in this batch: memo value -> index in `records`.
    let mut funded: HashMap<String, usize> = HashMap::new();
    let mut records: Vec<PaymentRecord> = Vec::with_capacity(payments.len());
    let now = unix_now();
    for p in payments {
        let memo = payment_memo(p).map(|(_, value)| value);
        let candidate: Option<&TransactionRow> =
            memo.as_ref().and_then(|value| match funded.get(value) {
                Some(i) => records[*i].funding.as_ref().map(|f| &f.next),
                None => named.get(value),
            });
        let mut decision = decide(p, candidate, policy);
        let mut funding = None;
        if let (Decision::Fund { amount_in }, Some(t)) = (&decision, candidate) {
            match fund(anchor, p, t, *amount_in).await {
                Ok(f) => funding = Some(f),
                Err(hold) => decision = hold,
            }
        }
        let transaction_id = candidate.map(|t| t.id.clone());
        let (outcome, reason, detail) = match decision {
            Decision::Fund { .. } => ("matched", None, None),
            Decision::Hold { reason, detail } => {
                ("unmatched", Some(reason.as_str().to_owned()), Some(detail))
            }
        };
        if let (Some(_), Some(value)) = (&funding, memo) {
            funded.insert(value, records.len());
        }
        records.push(PaymentRecord {
            payment: PaymentRow {
                id: p.id.clone(),
                account: p.to.clone(),
                cursor: p.cursor.clone(),
                stellar_transaction_id: p.stellar_transaction_id.clone(),
                kind: p.kind.clone(),
                from_account: p.from.clone(),
                to_muxed_id: p.to_muxed_id.clone(),
                asset_code: p.asset_code.clone(),
                asset_issuer: p.asset_issuer.clone(),
                amount: amount_string(p.amount),
                memo_type: p.memo_type.clone(),
                // PostgreSQL text cannot hold NUL; such a memo names no transaction anyway.
                memo: p.memo.as_ref().map(|m| m.replace('\0', "\u{fffd}")),
                paid_at: p.paid_at,
                recorded_at: now,
                outcome: outcome.into(),
                reason,
                detail,
                transaction_id,
                resolution: None,
                resolution_note: None,
                resolved_by: None,
                resolved_at: None,
            },
            funding,
        });
    }
    Ok(records)
}

/// The status change that funds `t` with `amount_in`: fees and `amount_out` recomputed when
/// the amount differs from the one the transaction was created with. A refusal comes back
/// as the hold to record instead.
pub async fn fund(
    anchor: &AppState,
    p: &IncomingPayment,
    t: &TransactionRow,
    amount_in: Decimal,
) -> Result<Funding, Decision> {
    let hold = |reason, detail: String| Decision::Hold { reason, detail };
    // Only a transaction still waiting for its payment is funded, whoever asks (the
    // watcher's decide() checks the same; the operator's attach relies on this).
    if t.status() != Status::PendingSender || t.paid {
        return Err(hold(
            Reason::NotAwaitingPayment,
            format!(
                "transaction {} is {}{}, not waiting for a payment",
                t.id,
                t.status(),
                if t.paid { " and already paid" } else { "" }
            ),
        ));
    }
    let expected: Decimal = t.amount_in.parse().unwrap_or_default();
    let (amount_fee, fee_details) = if amount_in == expected {
        (t.amount_fee.clone(), t.fee_details.clone())
    } else {
        let asset = anchor
            .receive_assets
            .iter()
            .find(|a| a.code == t.asset_code && a.issuer.to_string() == t.asset_issuer)
            .ok_or_else(|| {
                hold(
                    Reason::FeeRefused,
                    format!("{} is no longer received by this anchor", t.asset_code),
                )
            })?;
        let fee = anchor
            .fees
            .fee(asset, amount_in, &t.funding_method)
            .await
            .map_err(|e| match e {
                FeeError::Refused(m) => {
                    hold(Reason::FeeRefused, format!("the fee for {amount_in}: {m}"))
                }
                // Held rather than retried: the operator attaches the payment once the fee
                // service answers again, as with a price that cannot be had.
                FeeError::Unavailable(e) => hold(
                    Reason::FeeUnavailable,
                    format!("the fee for {amount_in} cannot be computed now: {e}"),
                ),
            })?;
        (amount_string(fee.total), fee.details_json().to_string())
    };
    let fee: Decimal = amount_fee.parse().unwrap_or_default();
    let amount_out = amount_in - fee;
    if amount_out <= Decimal::ZERO {
        return Err(hold(
            Reason::ShortPayment,
            format!(
                "{} arrived; it does not cover the fee of {} for transaction {}",
                amount_in.normalize(),
                fee.normalize(),
                t.id
            ),
        ));
    }
    let next = prepare_transition(t, Status::PendingReceiver, |row| {
        row.paid = true;
        row.amount_in = amount_string(amount_in);
        row.amount_fee = amount_fee.clone();
        row.amount_out = amount_string(amount_out);
        row.fee_details = fee_details.clone();
        row.stellar_transaction_id = Some(p.stellar_transaction_id.clone());
        row.expires_at = None;
        row.status_message = None;
    })
    .map_err(|e| hold(Reason::NotAwaitingPayment, e.to_string()))?;
    let next = crate::sep38::sep31::settle_funding(anchor, p, t, next).await?;
    let callback_body = next
        .callback_url
        .as_ref()
        .map(|_| transaction_body(&next).to_string());
    Ok(Funding {
        current: t.clone(),
        next,
        reason: format!(
            "payment {} of {} {} received in {}",
            p.id,
            amount_string(amount_in),
            p.asset_code,
            p.stellar_transaction_id
        ),
        callback_body,
    })
}
