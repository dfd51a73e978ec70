//! The payment watcher (the seeds' `watch_transactions`): one stream per distribution
//! account, each payment matched to the SEP-31 transaction its memo names or held for the
//! operator, and the stream's cursor stored with what was recorded, in one database
//! transaction. A restart resumes from that cursor: nothing that arrived meanwhile is
//! skipped, nothing is counted twice.

pub mod matching;
pub mod source;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio::sync::watch;

use crate::anchor::AppState;
use crate::config::StartAt;
use crate::sep31::amounts::amount_string;
use crate::sep31::status::Status;
use crate::sep31::transactions::transaction_body;
use crate::store::{
    BatchWritten, Funding, PaymentRecord, PaymentRow, StoreError, TransactionRow,
    prepare_transition, unix_now,
};
use matching::{Decision, Reason, decide, payment_memo};
use source::{IncomingPayment, ItemStream, SourceError, SourceItem};

/// The actor written in the events of the transactions the watcher changes.
pub const ACTOR: &str = "watcher";
/// Records written per database transaction at most.
const MAX_BATCH: usize = 500;
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
    let tasks: Vec<_> = accounts
        .into_iter()
        .map(|account| tokio::spawn(watch_account(anchor.clone(), account, stopped.clone())))
        .collect();
    for task in tasks {
        let _ = task.await;
    }
}

enum StreamEnd {
    /// The source closed the stream (Horizon does after `limit` records), having sent
    /// this many records.
    Closed(usize),
    Failed(String, Option<Duration>),
    Stopped,
}

async fn watch_account(anchor: AppState, account: String, mut stopped: watch::Receiver<bool>) {
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
    let mut failures: u32 = 0;
    loop {
        if *stopped.borrow() {
            break;
        }
        let end = match anchor.store.watcher_cursor(&account).await {
            Err(e) => StreamEnd::Failed(format!("cannot read the stored cursor: {e}"), None),
            Ok(stored) => {
                let from_stored = stored.is_some();
                let cursor =
                    stored.unwrap_or_else(|| anchor.config.watcher.start.as_cursor().to_owned());
                tracing::info!(
                    account = %account,
                    cursor = %cursor,
                    source = source.name(),
                    "payment stream: connecting from {}",
                    if from_stored { "the stored cursor" } else if anchor.config.watcher.start == StartAt::Now { "now (first start)" } else { "watcher.start (first start)" }
                );
                anchor.streams.update(&account, |s| {
                    s.state = "connecting";
                    s.cursor = Some(cursor.clone());
                });
                let opened = tokio::select! {
                    opened = source.open(&account, &cursor) => opened,
                    _ = stopped.changed() => break,
                };
                match opened {
                    Err(e) => failed(e),
                    Ok(stream) => {
                        anchor.streams.update(&account, |s| {
                            s.state = "streaming";
                            s.last_message_at = Some(unix_now());
                        });
                        consume(&anchor, &account, stream, &mut stopped, &mut failures).await
                    }
                }
            }
        };
        let delay = match end {
            StreamEnd::Stopped => break,
            // Horizon closes every stream after a page of records: go on at once. A stream
            // closed before sending anything is waited on, so a server that closes every
            // connection at once is not hammered.
            StreamEnd::Closed(records) if records > 0 => {
                tracing::debug!(account = %account, records, "payment stream closed by the source; reconnecting");
                Duration::ZERO
            }
            StreamEnd::Closed(_) => {
                failures = failures.saturating_add(1);
                let delay = backoff(failures, max_backoff);
                tracing::info!(account = %account, retry_in_ms = delay.as_millis() as u64, "payment stream closed without records; reconnecting");
                delay
            }
            StreamEnd::Failed(error, retry_after) => {
                failures = failures.saturating_add(1);
                let delay = retry_after
                    .unwrap_or_else(|| backoff(failures, max_backoff))
                    .min(max_backoff.max(retry_after.unwrap_or_default()));
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
    anchor.streams.update(&account, |s| s.state = "stopped");
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
/// batch, until the stream ends, fails or the watcher stops.
async fn consume(
    anchor: &AppState,
    account: &str,
    mut stream: ItemStream,
    stopped: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> StreamEnd {
    let mut records = 0;
    loop {
        let first = tokio::select! {
            item = stream.next() => item,
            _ = stopped.changed() => return StreamEnd::Stopped,
        };
        let mut batch = Vec::new();
        let mut end = None;
        match first {
            None => return StreamEnd::Closed(records),
            Some(Err(e)) => return failed(e),
            Some(Ok(item)) => batch.push(item),
        }
        while batch.len() < MAX_BATCH {
            match stream.next().now_or_never() {
                Some(Some(Ok(item))) => batch.push(item),
                Some(Some(Err(e))) => {
                    end = Some(failed(e));
                    break;
                }
                Some(None) => {
                    end = Some(StreamEnd::Closed(records + batch.len()));
                    break;
                }
                None => break,
            }
        }
        anchor
            .streams
            .update(account, |s| s.last_message_at = Some(unix_now()));
        if let Err(e) = record_batch(anchor, account, &batch).await {
            return StreamEnd::Failed(format!("cannot record payments: {e}"), None);
        }
        // A batch went through: the connection is healthy again.
        *failures = 0;
        records += batch.len();
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
}

/// Records one batch: each payment matched or held, and the cursor after the last item.
pub async fn record_batch(
    anchor: &AppState,
    account: &str,
    items: &[SourceItem],
) -> Result<(), RecordError> {
    let Some(last) = items.last() else {
        return Ok(());
    };
    let cursor = last.cursor().to_owned();
    let payments: Vec<&IncomingPayment> = items
        .iter()
        .filter_map(|i| match i {
            SourceItem::Payment(p) => Some(p.as_ref()),
            SourceItem::Skip { .. } => None,
        })
        .collect();
    for _ in 0..CONFLICT_RETRIES {
        let ids: Vec<&str> = payments.iter().map(|p| p.id.as_str()).collect();
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
        let records = prepare(anchor, &fresh).await?;
        match anchor
            .store
            .record_payments(account, &records, &cursor, ACTOR)
            .await?
        {
            BatchWritten::Conflict => continue,
            BatchWritten::Done { new, .. } => {
                report(anchor, account, &records, new);
                return Ok(());
            }
        }
    }
    Err(RecordError::Busy)
}

fn report(anchor: &AppState, account: &str, records: &[PaymentRecord], new: usize) {
    let now = unix_now();
    let mut funded = false;
    for r in records {
        let p = &r.payment;
        match (&r.funding, &p.reason) {
            (Some(f), _) => {
                funded = true;
                tracing::info!(payment = %p.id, transaction = %f.next.id, amount = %p.amount, asset = %p.asset_code, "payment matched");
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
    if funded {
        anchor.outbox_wake.notify_one();
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
    // Transactions funded earlier in this batch, by memo value.
    let mut funded: HashMap<String, TransactionRow> = HashMap::new();
    let mut records = Vec::with_capacity(payments.len());
    let now = unix_now();
    for p in payments {
        let memo = payment_memo(p).map(|(_, value)| value);
        let candidate = match &memo {
            Some(value) => match funded.get(value) {
                Some(row) => Some(row.clone()),
                None => anchor.store.transaction_by_memo(value).await?,
            },
            None => None,
        };
        let mut decision = decide(p, candidate.as_ref(), policy);
        let mut funding = None;
        if let (Decision::Fund { amount_in }, Some(t)) = (&decision, &candidate) {
            match fund(anchor, p, t, *amount_in).await {
                Ok(f) => funding = Some(f),
                Err(hold) => decision = hold,
            }
        }
        let (outcome, reason, detail) = match &decision {
            Decision::Fund { .. } => ("matched", None, None),
            Decision::Hold { reason, detail } => (
                "unmatched",
                Some(reason.as_str().to_owned()),
                Some(detail.clone()),
            ),
        };
        if let (Some(f), Some(value)) = (&funding, &memo) {
            funded.insert(value.clone(), f.next.clone());
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
                memo: p.memo.clone(),
                paid_at: p.paid_at,
                recorded_at: now,
                outcome: outcome.into(),
                reason,
                detail,
                transaction_id: candidate.as_ref().map(|t| t.id.clone()),
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
            .map_err(|e| hold(Reason::FeeRefused, format!("the fee for {amount_in}: {e}")))?;
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
