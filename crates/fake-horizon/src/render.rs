//! The JSON shapes of Horizon's operation (payment) and transaction resources.
//!
//! Field names, their order, which are omitted when empty and which numbers are rendered as
//! strings follow `protocols/horizon/operations/main.go` (`Base`, `Payment`, `PathPayment`,
//! `PathPaymentStrictSend`, `CreateAccount`, `AccountMerge`), `protocols/horizon/base/main.go`
//! (`Asset`) and `protocols/horizon/main.go` (`Transaction`, `FeeBumpTransaction`,
//! `InnerTransaction`) in github.com/stellar/go. How the values are filled in follows Horizon's
//! ingestion (`services/horizon/internal/ingest/processors/operations_processor.go`: `from` is the
//! operation's source, a failed strict-receive has `source_amount` "0.0000000" and a failed
//! strict-send has `amount` "0.0000000"; `db2/history/transaction_batch_insert_builder.go`: memo
//! rendering) and its resource adapters (`internal/resourceadapter/operations.go`,
//! `transaction.go`: `_links`, fee-bump fields). Only the wire format is matched; nothing is copied.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use stellar_strkey::ed25519::{MuxedAccount, PublicKey};

use crate::{Asset, Memo};

/// A `G...` account, and the `M...` address and id when it was given muxed.
#[derive(Debug, Clone)]
pub(crate) struct Address {
    pub base: String,
    pub muxed: Option<(String, u64)>,
}

impl Address {
    /// Decodes a `G...` or `M...` address. Panics on anything else: the test gave a bad fixture.
    pub fn parse(s: &str) -> Address {
        if let Ok(pk) = PublicKey::from_string(s) {
            return Address {
                base: pk.to_string().to_string(),
                muxed: None,
            };
        }
        match MuxedAccount::from_string(s) {
            Ok(m) => Address {
                base: PublicKey(m.ed25519).to_string().to_string(),
                muxed: Some((m.to_string().to_string(), m.id)),
            },
            Err(_) => {
                panic!("fake-horizon: {s:?} is neither a G... account nor an M... muxed account")
            }
        }
    }

    fn muxed_address(&self) -> Option<String> {
        self.muxed.as_ref().map(|(m, _)| m.clone())
    }

    /// `*_muxed_id` fields are `uint64` with the `,string` JSON option: a decimal string.
    fn muxed_id(&self) -> Option<String> {
        self.muxed.as_ref().map(|(_, id)| id.to_string())
    }
}

/// `"10"` → `"10.0000000"`: Horizon renders every amount from stroops with exactly 7 decimals.
/// Panics on a value that is not a non-negative decimal with at most 7 decimals that fits an i64
/// of stroops.
pub(crate) fn amount(s: &str) -> String {
    let stroops = parse_stroops(s).unwrap_or_else(|| {
        panic!("fake-horizon: invalid amount {s:?}: want a non-negative decimal with at most 7 decimals")
    });
    format!("{}.{:07}", stroops / 10_000_000, stroops % 10_000_000)
}

fn parse_stroops(s: &str) -> Option<i64> {
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !digits(int_part)
        || !digits(frac_part)
        || frac_part.len() > 7
    {
        return None;
    }
    let int: i64 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let frac: i64 = if frac_part.is_empty() {
        0
    } else {
        frac_part.parse().ok()?
    };
    let frac = frac * 10_i64.pow(7 - frac_part.len() as u32);
    int.checked_mul(10_000_000)?.checked_add(frac)
}

/// A ledger close time as Go renders a `time.Time` in UTC with whole seconds:
/// `2025-01-02T03:04:05Z`.
pub(crate) fn rfc3339(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let rem = unix_secs % 86_400;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 lowercase hex characters, deterministic from `n` (distinct `n`, distinct hashes).
pub(crate) fn fake_hash(n: u64) -> String {
    (0..4u64)
        .map(|i| format!("{:016x}", splitmix64(n.wrapping_mul(4).wrapping_add(i))))
        .collect()
}

/// A base64 64-byte "signature", deterministic from `n`. Not a real signature.
pub(crate) fn fake_signature(n: u64) -> String {
    let bytes: Vec<u8> = (0..8u64)
        .flat_map(|i| splitmix64(n.wrapping_mul(8).wrapping_add(i) ^ 0x5157).to_be_bytes())
        .collect();
    BASE64.encode(bytes)
}

/// Placeholder for `envelope_xdr`, `result_xdr` and `fee_meta_xdr`: valid base64, but NOT XDR.
/// The fake never builds XDR; a client that decodes these fields gets an error, on purpose.
pub(crate) fn placeholder_xdr(what: &str) -> String {
    BASE64.encode(format!("fake-horizon placeholder {what}, not XDR"))
}

/// `toid`: (ledger << 32) | (application order << 12) | operation index. Horizon's operation ids
/// and paging tokens; the transaction's own uses operation index 0.
pub(crate) fn toid(ledger: u32, tx_order: u32, op_index: u32) -> i64 {
    assert!(
        tx_order < (1 << 20),
        "fake-horizon: too many transactions in one ledger"
    );
    assert!(
        op_index < (1 << 12),
        "fake-horizon: too many operations in one transaction"
    );
    (i64::from(ledger) << 32) | (i64::from(tx_order) << 12) | i64::from(op_index)
}

#[derive(Serialize, Clone)]
pub(crate) struct Link {
    href: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    templated: bool,
}

impl Link {
    fn new(href: String) -> Link {
        let templated = href.contains('{');
        Link { href, templated }
    }
}

#[derive(Serialize)]
struct AssetJson {
    asset_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    asset_issuer: Option<String>,
}

/// (`asset_type`, `asset_code`, `asset_issuer`) as `base.Asset` renders them.
fn asset_fields(asset: &Asset) -> (&'static str, Option<String>, Option<String>) {
    match asset {
        Asset::Native => ("native", None, None),
        Asset::Credit { code, issuer } => {
            let kind = match code.len() {
                1..=4 => "credit_alphanum4",
                5..=12 => "credit_alphanum12",
                _ => panic!("fake-horizon: asset code {code:?} must have 1 to 12 characters"),
            };
            (kind, Some(code.clone()), Some(Address::parse(issuer).base))
        }
    }
}

fn asset_json(asset: &Asset) -> AssetJson {
    let (asset_type, asset_code, asset_issuer) = asset_fields(asset);
    AssetJson {
        asset_type,
        asset_code,
        asset_issuer,
    }
}

/// `memo_type`, `memo` and `memo_bytes` as Horizon renders them.
pub(crate) fn memo_fields(memo: &Memo) -> (&'static str, Option<String>, Option<String>) {
    match memo {
        Memo::None => ("none", None, None),
        Memo::Id(id) => ("id", Some(id.to_string()), None),
        // Horizon stores the text without NUL bytes (and with invalid UTF-8 scrubbed, which a
        // Rust String cannot hold); `memo_bytes` is the base64 of the raw bytes. Both fields are
        // `omitempty`: an empty text memo renders neither.
        Memo::Text(text) => (
            "text",
            Some(text.replace('\0', "")).filter(|t| !t.is_empty()),
            Some(BASE64.encode(text.as_bytes())).filter(|b| !b.is_empty()),
        ),
        Memo::Hash(hash) => ("hash", Some(BASE64.encode(hash)), None),
        Memo::Return(hash) => ("return", Some(BASE64.encode(hash)), None),
    }
}

#[derive(Serialize)]
struct TxLinks {
    #[serde(rename = "self")]
    self_: Link,
    account: Link,
    ledger: Link,
    operations: Link,
    effects: Link,
    precedes: Link,
    succeeds: Link,
    transaction: Link,
}

#[derive(Serialize)]
struct FeeBumpJson {
    hash: String,
    signatures: Vec<String>,
}

#[derive(Serialize)]
struct InnerJson {
    hash: String,
    signatures: Vec<String>,
    max_fee: String,
}

/// `protocols/horizon.TransactionPreconditions`, as `resourceadapter.PopulateTransaction` fills it
/// from the envelope's preconditions.
#[derive(Serialize, Debug, Clone, Default)]
pub(crate) struct PreconditionsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timebounds: Option<TimeboundsJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledgerbounds: Option<LedgerboundsJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_account_sequence: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_account_sequence_age: Option<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub min_account_sequence_ledger_gap: u32,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extra_signers: Vec<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct TimeboundsJson {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_time: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_time: Option<String>,
}

#[derive(Serialize, Debug, Clone)]
pub(crate) struct LedgerboundsJson {
    pub min_ledger: u32,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_ledger: u32,
}

/// What a submitted envelope (`POST /transactions`) fixes about its transaction: the real hashes,
/// fees, signatures, sequence, preconditions and XDR. Transactions appended with
/// `FakeHorizon::submit` have none of this and get made-up values and placeholders instead.
#[derive(Debug, Clone)]
pub(crate) struct RealTx {
    /// The hash the transaction is known by (the fee-bump hash for a fee bump), hex.
    pub hash: String,
    /// The inner transaction's hash, for a fee bump.
    pub inner_hash: Option<String>,
    /// The (inner) transaction's sequence number.
    pub sequence: i64,
    pub envelope_xdr: String,
    pub result_xdr: String,
    pub result_meta_xdr: String,
    pub fee_meta_xdr: String,
    pub fee_charged: i64,
    /// The envelope's fee: the fee-bump fee for a fee bump.
    pub max_fee: i64,
    /// The inner transaction's fee (a fee bump's `inner_transaction.max_fee`).
    pub inner_max_fee: i64,
    /// The envelope's signatures (the fee bump's for a fee bump), base64.
    pub signatures: Vec<String>,
    /// The inner transaction's signatures, for a fee bump.
    pub inner_signatures: Vec<String>,
    /// `memo_bytes` of a text memo: the base64 of the raw memo bytes (which may not be UTF-8).
    pub memo_bytes: Option<String>,
    pub preconditions: Option<PreconditionsJson>,
}

/// `protocols/horizon.Transaction`. The fake's own transactions have no `preconditions` and no
/// `result_meta_xdr` (Horizon omits it when it skips transaction meta); submitted ones have both.
#[derive(Serialize)]
pub(crate) struct TxJson {
    _links: TxLinks,
    id: String,
    paging_token: String,
    successful: bool,
    hash: String,
    ledger: u32,
    created_at: String,
    source_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_muxed_id: Option<String>,
    source_account_sequence: String,
    fee_account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fee_account_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fee_account_muxed_id: Option<String>,
    fee_charged: String,
    max_fee: String,
    operation_count: usize,
    envelope_xdr: String,
    result_xdr: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    result_meta_xdr: Option<String>,
    fee_meta_xdr: String,
    memo_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo_bytes: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    memo: Option<String>,
    signatures: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preconditions: Option<PreconditionsJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fee_bump_transaction: Option<FeeBumpJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    inner_transaction: Option<InnerJson>,
}

/// Everything needed to render one transaction.
pub(crate) struct TxFacts<'a> {
    pub base_url: &'a str,
    pub ledger: u32,
    pub tx_order: u32,
    pub created_at: &'a str,
    pub source: &'a Address,
    pub sequence: i64,
    pub memo: &'a Memo,
    pub successful: bool,
    pub op_count: usize,
    /// The hash the transaction is known by: the fee-bump hash for a fee bump.
    pub hash: &'a str,
    /// `Some((fee source, inner hash))` for a fee bump.
    pub fee_bump: Option<(&'a Address, &'a str)>,
    /// Seed for the placeholder signatures.
    pub seed: u64,
    /// The facts of a submitted envelope, which replace the made-up values.
    pub real: Option<&'a RealTx>,
    /// Render the fee bump as Horizon does when it is looked up by its inner hash: `id`, `hash`
    /// and the links are the inner hash, `signatures` the inner ones.
    pub by_inner_hash: bool,
}

pub(crate) fn transaction(f: &TxFacts<'_>) -> TxJson {
    let url = f.base_url;
    let inner_hash = f.fee_bump.map(|(_, inner)| inner);
    let id = match inner_hash {
        Some(inner) if f.by_inner_hash => inner.to_string(),
        _ => f.hash.to_string(),
    };
    let pt = toid(f.ledger, f.tx_order, 0).to_string();
    let (memo_type, memo, mut memo_bytes) = memo_fields(f.memo);
    if let (Memo::Text(_), Some(real)) = (f.memo, f.real) {
        memo_bytes = real.memo_bytes.clone();
    }
    let ops = f.op_count as i64;
    // Made-up fees for the fake's own transactions: the minimum (100 stroops an operation,
    // one more for a fee bump) charged, twice that offered by a fee bump.
    let (inner_max_fee, outer_max_fee, fee_charged) = match (f.real, f.fee_bump) {
        (Some(real), _) => (real.inner_max_fee, real.max_fee, real.fee_charged),
        (None, None) => (100 * ops.max(1), 100 * ops.max(1), 100 * ops.max(1)),
        (None, Some(_)) => (
            100 * ops.max(1),
            200 * (ops.max(1) + 1),
            100 * (ops.max(1) + 1),
        ),
    };
    let (outer_signatures, inner_signatures) = match f.real {
        Some(real) if f.fee_bump.is_some() => {
            (real.signatures.clone(), real.inner_signatures.clone())
        }
        Some(real) => (real.signatures.clone(), Vec::new()),
        None if f.fee_bump.is_some() => (
            vec![fake_signature(f.seed ^ 0xFEE_B0B)],
            vec![fake_signature(f.seed)],
        ),
        None => (vec![fake_signature(f.seed)], Vec::new()),
    };
    let (fee_account, fee_muxed, signatures, fee_bump, inner) = match f.fee_bump {
        None => (
            f.source.base.clone(),
            f.source.clone(),
            outer_signatures,
            None,
            None,
        ),
        Some((fee_source, inner_hash)) => (
            fee_source.base.clone(),
            fee_source.clone(),
            if f.by_inner_hash {
                inner_signatures.clone()
            } else {
                outer_signatures.clone()
            },
            Some(FeeBumpJson {
                hash: f.hash.to_string(),
                signatures: outer_signatures,
            }),
            Some(InnerJson {
                hash: inner_hash.to_string(),
                signatures: inner_signatures,
                max_fee: inner_max_fee.to_string(),
            }),
        ),
    };
    let placeholder = |what: &str, real: fn(&RealTx) -> &String| {
        f.real
            .map_or_else(|| placeholder_xdr(what), |r| real(r).clone())
    };
    TxJson {
        _links: TxLinks {
            self_: Link::new(format!("{url}/transactions/{id}")),
            account: Link::new(format!("{url}/accounts/{}", f.source.base)),
            ledger: Link::new(format!("{url}/ledgers/{}", f.ledger)),
            operations: Link::new(format!(
                "{url}/transactions/{id}/operations{{?cursor,limit,order}}"
            )),
            effects: Link::new(format!(
                "{url}/transactions/{id}/effects{{?cursor,limit,order}}"
            )),
            precedes: Link::new(format!("{url}/transactions?order=asc&cursor={pt}")),
            succeeds: Link::new(format!("{url}/transactions?order=desc&cursor={pt}")),
            transaction: Link::new(format!("{url}/transactions/{id}")),
        },
        hash: id.clone(),
        id,
        paging_token: pt,
        successful: f.successful,
        ledger: f.ledger,
        created_at: f.created_at.to_string(),
        source_account: f.source.base.clone(),
        account_muxed: f.source.muxed_address(),
        account_muxed_id: f.source.muxed_id(),
        source_account_sequence: f.sequence.to_string(),
        fee_account,
        fee_account_muxed: fee_muxed.muxed_address(),
        fee_account_muxed_id: fee_muxed.muxed_id(),
        fee_charged: fee_charged.to_string(),
        max_fee: outer_max_fee.to_string(),
        operation_count: f.op_count,
        envelope_xdr: placeholder("envelope_xdr", |r| &r.envelope_xdr),
        result_xdr: placeholder("result_xdr", |r| &r.result_xdr),
        result_meta_xdr: f.real.map(|r| r.result_meta_xdr.clone()),
        fee_meta_xdr: placeholder("fee_meta_xdr", |r| &r.fee_meta_xdr),
        memo_type,
        memo_bytes,
        memo,
        signatures,
        preconditions: f.real.and_then(|r| r.preconditions.clone()),
        fee_bump_transaction: fee_bump,
        inner_transaction: inner,
    }
}

#[derive(Serialize)]
struct OpLinks {
    #[serde(rename = "self")]
    self_: Link,
    transaction: Link,
    effects: Link,
    succeeds: Link,
    precedes: Link,
}

#[derive(Serialize)]
struct PaymentJson {
    #[serde(flatten)]
    asset: AssetJson,
    from: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from_muxed_id: Option<String>,
    to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_muxed_id: Option<String>,
    amount: String,
}

impl PaymentJson {
    fn new(asset: &Asset, from: &Address, to: &Address, amount: String) -> PaymentJson {
        PaymentJson {
            asset: asset_json(asset),
            from: from.base.clone(),
            from_muxed: from.muxed_address(),
            from_muxed_id: from.muxed_id(),
            to: to.base.clone(),
            to_muxed: to.muxed_address(),
            to_muxed_id: to.muxed_id(),
            amount,
        }
    }
}

#[derive(Serialize)]
struct StrictReceiveJson {
    #[serde(flatten)]
    payment: PaymentJson,
    path: Vec<AssetJson>,
    source_amount: String,
    source_max: String,
    source_asset_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_asset_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_asset_issuer: Option<String>,
}

#[derive(Serialize)]
struct StrictSendJson {
    #[serde(flatten)]
    payment: PaymentJson,
    path: Vec<AssetJson>,
    source_amount: String,
    destination_min: String,
    source_asset_type: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_asset_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_asset_issuer: Option<String>,
}

#[derive(Serialize)]
struct CreateAccountJson {
    starting_balance: String,
    funder: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    funder_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    funder_muxed_id: Option<String>,
    account: String,
}

#[derive(Serialize)]
struct AccountMergeJson {
    account: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_muxed_id: Option<String>,
    into: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    into_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    into_muxed_id: Option<String>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum Details {
    Payment(PaymentJson),
    StrictReceive(StrictReceiveJson),
    StrictSend(StrictSendJson),
    CreateAccount(CreateAccountJson),
    AccountMerge(AccountMergeJson),
}

#[derive(Serialize)]
struct OpJson<'a> {
    _links: &'a OpLinks,
    id: &'a str,
    paging_token: &'a str,
    transaction_successful: bool,
    source_account: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_account_muxed: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_account_muxed_id: Option<String>,
    #[serde(rename = "type")]
    type_: &'static str,
    type_i: i32,
    created_at: &'a str,
    transaction_hash: &'a str,
    #[serde(flatten)]
    details: &'a Details,
}

/// One rendered operation: the accounts it involves (base `G...`, no duplicates) and its JSON
/// without and with the joined transaction.
pub(crate) struct RenderedOp {
    pub participants: Vec<String>,
    pub plain: String,
    pub joined: String,
}

pub(crate) struct OpFacts<'a> {
    pub base_url: &'a str,
    pub token: i64,
    pub successful: bool,
    pub created_at: &'a str,
    pub tx_hash: &'a str,
    pub tx_source: &'a Address,
    /// The transaction, already serialized (once per transaction, not once per operation).
    pub tx_json: &'a str,
}

pub(crate) fn operation(f: &OpFacts<'_>, op: &crate::Op) -> RenderedOp {
    use crate::Op;
    let source_of = |from: &Option<String>| {
        from.as_deref()
            .map_or_else(|| f.tx_source.clone(), Address::parse)
    };
    let (source, destination, type_, type_i, details) = match op {
        Op::Payment {
            from,
            to,
            asset,
            amount: value,
        } => {
            let source = source_of(from);
            let to = Address::parse(to);
            let details = Details::Payment(PaymentJson::new(asset, &source, &to, amount(value)));
            (source, to, "payment", 1, details)
        }
        Op::PathPaymentStrictReceive {
            from,
            to,
            send_asset,
            send_max,
            send_amount,
            dest_asset,
            dest_amount,
        } => {
            let source = source_of(from);
            let to = Address::parse(to);
            let (source_asset_type, source_asset_code, source_asset_issuer) =
                asset_fields(send_asset);
            // Horizon fills `source_amount` from the operation result, which a failed
            // transaction does not have.
            let source_amount = if f.successful {
                amount(send_amount)
            } else {
                amount("0")
            };
            let details = Details::StrictReceive(StrictReceiveJson {
                payment: PaymentJson::new(dest_asset, &source, &to, amount(dest_amount)),
                path: Vec::new(),
                source_amount,
                source_max: amount(send_max),
                source_asset_type,
                source_asset_code,
                source_asset_issuer,
            });
            (source, to, "path_payment_strict_receive", 2, details)
        }
        Op::PathPaymentStrictSend {
            from,
            to,
            send_asset,
            send_amount,
            dest_asset,
            dest_amount,
            dest_min,
        } => {
            let source = source_of(from);
            let to = Address::parse(to);
            let (source_asset_type, source_asset_code, source_asset_issuer) =
                asset_fields(send_asset);
            // Horizon fills `amount` from the operation result, which a failed transaction
            // does not have.
            let received = if f.successful {
                amount(dest_amount)
            } else {
                amount("0")
            };
            let details = Details::StrictSend(StrictSendJson {
                payment: PaymentJson::new(dest_asset, &source, &to, received),
                path: Vec::new(),
                source_amount: amount(send_amount),
                destination_min: amount(dest_min),
                source_asset_type,
                source_asset_code,
                source_asset_issuer,
            });
            (source, to, "path_payment_strict_send", 13, details)
        }
        Op::CreateAccount {
            from,
            account,
            starting_balance,
        } => {
            let source = source_of(from);
            // The destination of CreateAccount is an AccountID: never muxed.
            let account = Address::parse(account);
            let details = Details::CreateAccount(CreateAccountJson {
                starting_balance: amount(starting_balance),
                funder: source.base.clone(),
                funder_muxed: source.muxed_address(),
                funder_muxed_id: source.muxed_id(),
                account: account.base.clone(),
            });
            (source, account, "create_account", 0, details)
        }
        Op::AccountMerge { from, into } => {
            let source = source_of(from);
            let into = Address::parse(into);
            // No amount: the payments endpoint renders account_merge with its accounts only.
            let details = Details::AccountMerge(AccountMergeJson {
                account: source.base.clone(),
                account_muxed: source.muxed_address(),
                account_muxed_id: source.muxed_id(),
                into: into.base.clone(),
                into_muxed: into.muxed_address(),
                into_muxed_id: into.muxed_id(),
            });
            (source, into, "account_merge", 8, details)
        }
    };

    let url = f.base_url;
    let id = f.token.to_string();
    let links = OpLinks {
        self_: Link::new(format!("{url}/operations/{id}")),
        transaction: Link::new(format!("{url}/transactions/{}", f.tx_hash)),
        effects: Link::new(format!("{url}/operations/{id}/effects")),
        succeeds: Link::new(format!("{url}/effects?order=desc&cursor={id}")),
        precedes: Link::new(format!("{url}/effects?order=asc&cursor={id}")),
    };
    let json = OpJson {
        _links: &links,
        id: &id,
        paging_token: &id,
        transaction_successful: f.successful,
        source_account: &source.base,
        source_account_muxed: source.muxed_address(),
        source_account_muxed_id: source.muxed_id(),
        type_,
        type_i,
        created_at: f.created_at,
        transaction_hash: f.tx_hash,
        details: &details,
    };
    let plain = serde_json::to_string(&json).expect("operation JSON");
    // `transaction` (Base's `omitempty` pointer) sits right after `transaction_hash`, a hex
    // string that occurs once in the record.
    let anchor = format!("\"transaction_hash\":\"{}\"", f.tx_hash);
    let at = plain.find(&anchor).expect("transaction_hash in the record") + anchor.len();
    let joined = format!(
        "{},\"transaction\":{}{}",
        &plain[..at],
        f.tx_json,
        &plain[at..]
    );

    let mut participants = vec![source.base.clone()];
    if destination.base != source.base {
        participants.push(destination.base.clone());
    }
    RenderedOp {
        participants,
        plain,
        joined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_have_seven_decimals() {
        assert_eq!(amount("10"), "10.0000000");
        assert_eq!(amount("10."), "10.0000000");
        assert_eq!(amount("1.5"), "1.5000000");
        assert_eq!(amount("0.0000001"), "0.0000001");
        assert_eq!(amount(".25"), "0.2500000");
        assert_eq!(amount("007.1234567"), "7.1234567");
        assert_eq!(amount("922337203685.4775807"), "922337203685.4775807");
        for bad in [
            "",
            ".",
            "-1",
            "1.00000001",
            "1e3",
            "abc",
            "922337203685.4775808",
        ] {
            assert!(parse_stroops(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_735_787_045), "2025-01-02T03:04:05Z");
    }

    #[test]
    fn toids_follow_horizon() {
        assert_eq!(toid(1, 1, 1), (1 << 32) | (1 << 12) | 1);
        assert_eq!(fake_hash(7).len(), 64);
        assert_ne!(fake_hash(7), fake_hash(8));
    }
}
