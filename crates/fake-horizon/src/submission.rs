//! `POST /transactions`: a `TransactionEnvelope` (base64 XDR) decoded, hashed, checked as
//! Horizon and stellar-core would, and turned into the fake's own [`Tx`].
//!
//! The wire format follows Horizon at stellar/go `096f654e`:
//! `services/horizon/internal/actions/submit_transaction.go` (the `tx` form value, the
//! `transaction_malformed` and `transaction_failed` problems and their `extras`),
//! `internal/txsub/system.go` (a negative sequence number is refused before anything else; a
//! transaction already in the ledger, looked up by hash, is answered with the stored result
//! instead of being submitted again), `internal/txsub/errors.go` and `internal/codes` (the
//! `result_codes`: `transaction`, `inner_transaction` for a fee bump, one code per operation) and
//! `network/main.go` (the hash). Only the wire format is matched; no code is copied.
//!
//! What the fake does NOT do, because it keeps no ledger state:
//! - Signatures are not verified (no `tx_bad_auth`), balances, trustlines and reserves are not
//!   checked (no `op_underfunded`, `op_no_trust`, ...), accounts need not exist.
//! - Sequence numbers: the first transaction an account submits may use any sequence number
//!   (`>= 0`); after that, each must follow the previous one by exactly 1 (or satisfy its
//!   `min_seq_num` precondition), else `tx_bad_seq`. Horizon would wait for a sequence number
//!   that is too high and time out; the fake answers `tx_bad_seq` at once.
//! - The order book does not exist. Path payments are settled by these rules: a strict send
//!   delivers exactly `dest_min` to the destination (and spends `send_amount`); a strict receive
//!   spends exactly `send_max` (and delivers `dest_amount`). An account merge moves an unknown
//!   balance: its result says 0.
//! - Fees: the base fee is always 100 stroops (no surge pricing). A transaction is charged
//!   100 per operation, a fee bump 100 per inner operation plus 100.
//! - `result_meta_xdr` is a valid but empty `TransactionMeta` (v3: no ledger changes) and
//!   `fee_meta_xdr` an empty `LedgerEntryChanges`: placeholders that decode, and say nothing.
//!
//! What it does check, answering `transaction_failed` with stellar-core's codes as Horizon
//! reports them: at least one operation (`tx_missing_operation`), time and ledger bounds against
//! the next ledger (`tx_too_early`, `tx_too_late`), the minimum fee (`tx_insufficient_fee`; for a
//! fee bump also its fee rate against the inner transaction's), sequence numbers as above, and
//! each operation: only `create_account`, `payment`, both path payments and `account_merge` are
//! supported (any other is `op_not_supported`), and amounts and asset codes must be well formed
//! (`op_malformed`). The operations that pass get `op_success` in a failed transaction's codes.
//! A fee bump whose inner transaction fails answers `tx_fee_bump_inner_failed` with the inner
//! code in `inner_transaction`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Serialize;
use sha2::{Digest, Sha256};
use stellar_strkey::ed25519;
use stellar_xdr::{
    AccountId, AccountMergeResult, AlphaNum4, AlphaNum12, Asset, CreateAccountResult,
    DecoratedSignature, ExtensionPoint, FeeBumpTransactionEnvelope, FeeBumpTransactionInnerTx,
    Hash, InnerTransactionResult, InnerTransactionResultExt, InnerTransactionResultPair,
    InnerTransactionResultResult, LedgerEntryChanges, Limits, Memo, MuxedAccount, Operation,
    OperationBody, OperationMeta, OperationResult, OperationResultTr,
    PathPaymentStrictReceiveResult, PathPaymentStrictReceiveResultSuccess,
    PathPaymentStrictSendResult, PathPaymentStrictSendResultSuccess, PaymentResult, Preconditions,
    PublicKey, ReadXdr, SignerKey, SimplePaymentResult, TimeBounds, Transaction,
    TransactionEnvelope, TransactionMeta, TransactionMetaV3, TransactionResult,
    TransactionResultExt, TransactionResultResult, Uint256, VecM, WriteXdr,
};

use crate::render::{LedgerboundsJson, PreconditionsJson, RealTx, TimeboundsJson};
use crate::{Op, Tx};

/// stellar-core's base fee without surge pricing, in stroops per operation.
const BASE_FEE: i64 = 100;

/// What Horizon answers when the sequence number is negative, before asking stellar-core
/// (`txsub.ErrBadSequence`): a `TransactionResult` with fee 0 and `txBAD_SEQ`.
const BAD_SEQUENCE_RESULT: &str = "AAAAAAAAAAD////7AAAAAA==";

/// The network id: SHA-256 of the network passphrase.
pub(crate) fn network_id(passphrase: &str) -> [u8; 32] {
    Sha256::digest(passphrase.as_bytes()).into()
}

fn hex(bytes: &[u8; 32]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a submission is refused.
#[derive(Debug)]
pub(crate) enum Rejected {
    /// `transaction_malformed`: not a base64 `TransactionEnvelope`.
    Malformed,
    /// `transaction_failed`: stellar-core refused it.
    Failed {
        result_xdr: String,
        codes: ResultCodes,
    },
}

/// `protocols/horizon.TransactionResultCodes`.
#[derive(Debug, Serialize)]
pub(crate) struct ResultCodes {
    pub transaction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inner_transaction: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<&'static str>,
}

/// A decoded envelope and its hashes.
pub(crate) struct Decoded {
    envelope: TransactionEnvelope,
    /// The (inner) transaction, v0 envelopes converted as stellar-core hashes them.
    tx: Transaction,
    hash: [u8; 32],
    inner_hash: Option<[u8; 32]>,
}

/// Decodes a base64 `TransactionEnvelope` and computes its hash (SHA-256 of the
/// `TransactionSignaturePayload`: network id and tagged transaction; for a fee bump, the
/// fee-bump transaction's, and the inner transaction's as the inner hash).
pub(crate) fn decode(raw: &str, network_id: &[u8; 32]) -> Result<Decoded, Rejected> {
    let envelope = TransactionEnvelope::from_xdr_base64(raw.as_bytes(), Limits::none())
        .map_err(|_| Rejected::Malformed)?;
    let hash = envelope
        .hash(*network_id)
        .map_err(|_| Rejected::Malformed)?;
    let (tx, inner_hash) = match &envelope {
        TransactionEnvelope::TxV0(e) => (Transaction::from(&e.tx), None),
        TransactionEnvelope::Tx(e) => (e.tx.clone(), None),
        TransactionEnvelope::TxFeeBump(e) => {
            let FeeBumpTransactionInnerTx::Tx(inner) = &e.tx.inner_tx;
            let inner_hash = inner
                .tx
                .hash(*network_id)
                .map_err(|_| Rejected::Malformed)?;
            (inner.tx.clone(), Some(inner_hash))
        }
    };
    Ok(Decoded {
        envelope,
        tx,
        hash,
        inner_hash,
    })
}

impl Decoded {
    /// The hash the transaction is known by (the fee-bump hash for a fee bump).
    pub fn hash(&self) -> String {
        hex(&self.hash)
    }

    /// The (inner) transaction's source account, base `G...`: whose sequence number it uses.
    pub fn sequence_account(&self) -> String {
        base_account(&self.tx.source_account)
    }

    fn min_seq_num(&self) -> Option<i64> {
        match &self.tx.cond {
            Preconditions::V2(v2) => v2.min_seq_num.as_ref().map(|s| s.0),
            _ => None,
        }
    }

    /// Horizon's own check before submitting (`txsub.System.Submit`).
    pub fn horizon_precheck(&self) -> Result<(), Rejected> {
        let seq = self.tx.seq_num.0;
        let bad_min = self.min_seq_num().is_some_and(|min| min < 0 || min >= seq);
        if seq < 0 || bad_min {
            return Err(Rejected::Failed {
                result_xdr: BAD_SEQUENCE_RESULT.to_string(),
                codes: ResultCodes {
                    transaction: "tx_bad_seq",
                    inner_transaction: None,
                    operations: Vec::new(),
                },
            });
        }
        Ok(())
    }

    fn fee_bump(&self) -> Option<&FeeBumpTransactionEnvelope> {
        match &self.envelope {
            TransactionEnvelope::TxFeeBump(e) => Some(e),
            _ => None,
        }
    }

    fn time_bounds(&self) -> Option<&TimeBounds> {
        match &self.tx.cond {
            Preconditions::None => None,
            Preconditions::Time(tb) => Some(tb),
            Preconditions::V2(v2) => v2.time_bounds.as_ref(),
        }
    }
}

/// A transaction-level result code of stellar-core that the fake can produce.
#[derive(Debug, Clone, Copy)]
enum TxCode {
    Failed,
    TooEarly,
    TooLate,
    MissingOperation,
    BadSeq,
    InsufficientFee,
}

impl TxCode {
    fn name(self) -> &'static str {
        match self {
            TxCode::Failed => "tx_failed",
            TxCode::TooEarly => "tx_too_early",
            TxCode::TooLate => "tx_too_late",
            TxCode::MissingOperation => "tx_missing_operation",
            TxCode::BadSeq => "tx_bad_seq",
            TxCode::InsufficientFee => "tx_insufficient_fee",
        }
    }

    fn result(self, ops: Vec<OperationResult>) -> TransactionResultResult {
        match self {
            TxCode::Failed => TransactionResultResult::TxFailed(vecm(ops)),
            TxCode::TooEarly => TransactionResultResult::TxTooEarly,
            TxCode::TooLate => TransactionResultResult::TxTooLate,
            TxCode::MissingOperation => TransactionResultResult::TxMissingOperation,
            TxCode::BadSeq => TransactionResultResult::TxBadSeq,
            TxCode::InsufficientFee => TransactionResultResult::TxInsufficientFee,
        }
    }

    fn inner_result(self, ops: Vec<OperationResult>) -> InnerTransactionResultResult {
        match self {
            TxCode::Failed => InnerTransactionResultResult::TxFailed(vecm(ops)),
            TxCode::TooEarly => InnerTransactionResultResult::TxTooEarly,
            TxCode::TooLate => InnerTransactionResultResult::TxTooLate,
            TxCode::MissingOperation => InnerTransactionResultResult::TxMissingOperation,
            TxCode::BadSeq => InnerTransactionResultResult::TxBadSeq,
            TxCode::InsufficientFee => InnerTransactionResultResult::TxInsufficientFee,
        }
    }
}

fn vecm<T, const MAX: u32>(items: Vec<T>) -> VecM<T, MAX> {
    items
        .try_into()
        .expect("fake-horizon: too many items for XDR")
}

fn base64_xdr(value: &impl WriteXdr) -> String {
    value
        .to_xdr_base64(Limits::none())
        .expect("fake-horizon: XDR encoding")
}

/// A submitted transaction that the fake ledger accepts.
pub(crate) struct Accepted {
    pub tx: Tx,
    pub real: RealTx,
}

/// The ledger's view that stellar-core's checks need.
pub(crate) struct LedgerView {
    /// Unix seconds of the next ledger close.
    pub close_time: u64,
    /// The next ledger's sequence number.
    pub next_ledger: u32,
    /// The sequence number of the account's latest submitted transaction, if any.
    pub last_sequence: Option<i64>,
}

/// stellar-core's verdict on `decoded`: the transaction to append, or the failure to answer.
pub(crate) fn apply(decoded: &Decoded, ledger: &LedgerView) -> Result<Accepted, Rejected> {
    let tx = &decoded.tx;
    let op_count = tx.operations.len() as i64;
    let fee_bump = decoded.fee_bump();
    let declared_fee = fee_bump.map_or(i64::from(tx.fee), |fb| fb.tx.fee);

    // The fee bump's own checks come first: its minimum fee (one operation more than the inner
    // transaction) and a fee rate no lower than the inner transaction's.
    if let Some(fb) = fee_bump {
        let rate_too_low = i128::from(fb.tx.fee) * i128::from(op_count.max(1))
            < i128::from(tx.fee) * i128::from(op_count + 1);
        if fb.tx.fee < BASE_FEE * (op_count + 1) || rate_too_low {
            return Err(failed(
                declared_fee,
                TransactionResultResult::TxInsufficientFee,
                TxCode::InsufficientFee.name(),
                None,
                Vec::new(),
            ));
        }
    }

    let tx_code = if op_count == 0 {
        Some(TxCode::MissingOperation)
    } else if let Some(code) = bounds_code(decoded, ledger) {
        Some(code)
    } else if fee_bump.is_none() && i64::from(tx.fee) < BASE_FEE * op_count {
        // A fee bump's inner transaction may offer less: the fee bump pays.
        Some(TxCode::InsufficientFee)
    } else if !sequence_ok(tx.seq_num.0, decoded.min_seq_num(), ledger.last_sequence) {
        Some(TxCode::BadSeq)
    } else {
        None
    };
    if let Some(code) = tx_code {
        return Err(refuse(decoded, declared_fee, code, Vec::new(), Vec::new()));
    }

    let mut ops = Vec::with_capacity(tx.operations.len());
    let mut results = Vec::with_capacity(tx.operations.len());
    let mut codes = Vec::with_capacity(tx.operations.len());
    for op in tx.operations.iter() {
        let (fake, result, code) = operation(op, &tx.source_account);
        ops.extend(fake);
        results.push(result);
        codes.push(code);
    }
    if ops.len() < tx.operations.len() {
        return Err(refuse(
            decoded,
            declared_fee,
            TxCode::Failed,
            results,
            codes,
        ));
    }

    // Success.
    let fee_charged = BASE_FEE * (op_count + i64::from(fee_bump.is_some()));
    let result = match decoded.inner_hash {
        None => TransactionResultResult::TxSuccess(vecm(results)),
        Some(inner_hash) => TransactionResultResult::TxFeeBumpInnerSuccess(inner_pair(
            inner_hash,
            InnerTransactionResultResult::TxSuccess(vecm(results)),
        )),
    };
    let result_xdr = base64_xdr(&TransactionResult {
        fee_charged,
        result,
        ext: TransactionResultExt::V0,
    });
    let meta = TransactionMeta::V3(TransactionMetaV3 {
        ext: ExtensionPoint::V0,
        tx_changes_before: LedgerEntryChanges(VecM::default()),
        operations: vecm(
            (0..op_count)
                .map(|_| OperationMeta {
                    changes: LedgerEntryChanges(VecM::default()),
                })
                .collect(),
        ),
        tx_changes_after: LedgerEntryChanges(VecM::default()),
        soroban_meta: None,
    });

    let (memo, memo_bytes) = memo(&tx.memo);
    let (signatures, inner_signatures) = match &decoded.envelope {
        TransactionEnvelope::TxV0(e) => (signatures(&e.signatures), Vec::new()),
        TransactionEnvelope::Tx(e) => (signatures(&e.signatures), Vec::new()),
        TransactionEnvelope::TxFeeBump(e) => {
            let FeeBumpTransactionInnerTx::Tx(inner) = &e.tx.inner_tx;
            (signatures(&e.signatures), signatures(&inner.signatures))
        }
    };
    let real = RealTx {
        hash: decoded.hash(),
        inner_hash: decoded.inner_hash.as_ref().map(hex),
        sequence: tx.seq_num.0,
        envelope_xdr: base64_xdr(&decoded.envelope),
        result_xdr,
        result_meta_xdr: base64_xdr(&meta),
        fee_meta_xdr: base64_xdr(&LedgerEntryChanges(VecM::default())),
        fee_charged,
        max_fee: declared_fee,
        inner_max_fee: i64::from(tx.fee),
        signatures,
        inner_signatures,
        memo_bytes,
        preconditions: preconditions(&tx.cond),
    };
    let fake = Tx {
        source: muxed_strkey(&tx.source_account),
        memo,
        fee_bump: fee_bump.map(|fb| muxed_strkey(&fb.tx.fee_source)),
        successful: true,
        ops,
    };
    Ok(Accepted { tx: fake, real })
}

fn inner_pair(hash: [u8; 32], result: InnerTransactionResultResult) -> InnerTransactionResultPair {
    InnerTransactionResultPair {
        transaction_hash: Hash(hash),
        result: InnerTransactionResult {
            // "Always 0. Here for binary compatibility." (Stellar-transaction.x)
            fee_charged: 0,
            result,
            ext: InnerTransactionResultExt::V0,
        },
    }
}

fn failed(
    fee_charged: i64,
    result: TransactionResultResult,
    transaction: &'static str,
    inner_transaction: Option<&'static str>,
    operations: Vec<&'static str>,
) -> Rejected {
    Rejected::Failed {
        result_xdr: base64_xdr(&TransactionResult {
            fee_charged,
            result,
            ext: TransactionResultExt::V0,
        }),
        codes: ResultCodes {
            transaction,
            inner_transaction,
            operations,
        },
    }
}

/// The refusal of the (inner) transaction with `code`: for a fee bump, wrapped in
/// `tx_fee_bump_inner_failed`.
fn refuse(
    decoded: &Decoded,
    fee_charged: i64,
    code: TxCode,
    results: Vec<OperationResult>,
    op_codes: Vec<&'static str>,
) -> Rejected {
    match decoded.inner_hash {
        None => failed(
            fee_charged,
            code.result(results),
            code.name(),
            None,
            op_codes,
        ),
        Some(inner_hash) => failed(
            fee_charged,
            TransactionResultResult::TxFeeBumpInnerFailed(inner_pair(
                inner_hash,
                code.inner_result(results),
            )),
            "tx_fee_bump_inner_failed",
            Some(code.name()),
            op_codes,
        ),
    }
}

/// Time bounds against the next close time, ledger bounds against the next ledger (a
/// `max_ledger` is exclusive, 0 means none; a `max_time` of 0 means none).
fn bounds_code(decoded: &Decoded, ledger: &LedgerView) -> Option<TxCode> {
    if let Some(tb) = decoded.time_bounds() {
        if tb.min_time.0 > ledger.close_time {
            return Some(TxCode::TooEarly);
        }
        if tb.max_time.0 != 0 && tb.max_time.0 < ledger.close_time {
            return Some(TxCode::TooLate);
        }
    }
    if let Preconditions::V2(v2) = &decoded.tx.cond
        && let Some(lb) = &v2.ledger_bounds
    {
        if lb.min_ledger > ledger.next_ledger {
            return Some(TxCode::TooEarly);
        }
        if lb.max_ledger != 0 && lb.max_ledger <= ledger.next_ledger {
            return Some(TxCode::TooLate);
        }
    }
    None
}

fn sequence_ok(seq: i64, min_seq_num: Option<i64>, last: Option<i64>) -> bool {
    match (last, min_seq_num) {
        // The fake does not know the account: any sequence number will do.
        (None, _) => true,
        (Some(last), Some(min)) => min <= last && last < seq,
        (Some(last), None) => last.checked_add(1) == Some(seq),
    }
}

fn signatures(sigs: &VecM<DecoratedSignature, 20>) -> Vec<String> {
    sigs.iter()
        .map(|sig| BASE64.encode(sig.signature.0.as_slice()))
        .collect()
}

/// Go's `utf8.Scrub` as Horizon applies it: every byte of an invalid sequence becomes U+FFFD.
fn scrub(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        match std::str::from_utf8(rest) {
            Ok(valid) => {
                out.push_str(valid);
                break;
            }
            Err(e) => {
                let (valid, after) = rest.split_at(e.valid_up_to());
                out.push_str(std::str::from_utf8(valid).expect("valid prefix"));
                out.push(char::REPLACEMENT_CHARACTER);
                rest = &after[1..];
            }
        }
    }
    out
}

/// The fake's memo, and for a text memo the base64 of its raw bytes (`memo_bytes`, omitted
/// when empty).
fn memo(memo: &Memo) -> (crate::Memo, Option<String>) {
    match memo {
        Memo::None => (crate::Memo::None, None),
        Memo::Id(id) => (crate::Memo::Id(*id), None),
        Memo::Text(text) => {
            let raw = text.as_vec();
            (
                crate::Memo::Text(scrub(raw)),
                (!raw.is_empty()).then(|| BASE64.encode(raw)),
            )
        }
        Memo::Hash(hash) => (crate::Memo::Hash(hash.0), None),
        Memo::Return(hash) => (crate::Memo::Return(hash.0), None),
    }
}

fn preconditions(cond: &Preconditions) -> Option<PreconditionsJson> {
    let timebounds = |tb: &TimeBounds| TimeboundsJson {
        min_time: Some(tb.min_time.0.to_string()),
        // 0 is no upper bound; Horizon stores at most i64::MAX.
        max_time: (tb.max_time.0 != 0).then(|| tb.max_time.0.min(i64::MAX as u64).to_string()),
    };
    match cond {
        Preconditions::None => None,
        Preconditions::Time(tb) => Some(PreconditionsJson {
            timebounds: Some(timebounds(tb)),
            ..PreconditionsJson::default()
        }),
        // Horizon renders the object for any v2 preconditions, even when every field of it is
        // empty.
        Preconditions::V2(v2) => Some(PreconditionsJson {
            timebounds: v2.time_bounds.as_ref().map(timebounds),
            ledgerbounds: v2.ledger_bounds.as_ref().map(|lb| LedgerboundsJson {
                min_ledger: lb.min_ledger,
                max_ledger: lb.max_ledger,
            }),
            min_account_sequence: v2.min_seq_num.as_ref().map(|s| s.0.to_string()),
            min_account_sequence_age: (v2.min_seq_age.0 != 0).then(|| v2.min_seq_age.0.to_string()),
            min_account_sequence_ledger_gap: v2.min_seq_ledger_gap,
            extra_signers: v2.extra_signers.iter().map(signer_strkey).collect(),
        }),
    }
}

fn signer_strkey(key: &SignerKey) -> String {
    use stellar_strkey::{HashX, PreAuthTx, Strkey};
    let strkey = match key {
        SignerKey::Ed25519(k) => Strkey::PublicKeyEd25519(ed25519::PublicKey(k.0)),
        SignerKey::PreAuthTx(k) => Strkey::PreAuthTx(PreAuthTx(k.0)),
        SignerKey::HashX(k) => Strkey::HashX(HashX(k.0)),
        SignerKey::Ed25519SignedPayload(p) => Strkey::SignedPayloadEd25519(
            ed25519::SignedPayload::new(p.ed25519.0, p.payload.as_slice())
                .expect("a signed payload of at most 64 bytes"),
        ),
    };
    strkey.to_string().to_string()
}

fn g_strkey(key: &Uint256) -> String {
    ed25519::PublicKey(key.0).to_string().to_string()
}

fn account_strkey(account: &AccountId) -> String {
    let PublicKey::PublicKeyTypeEd25519(key) = &account.0;
    g_strkey(key)
}

/// `G...`, or `M...` for a muxed account.
fn muxed_strkey(account: &MuxedAccount) -> String {
    match account {
        MuxedAccount::Ed25519(key) => g_strkey(key),
        MuxedAccount::MuxedEd25519(m) => ed25519::MuxedAccount {
            ed25519: m.ed25519.0,
            id: m.id,
        }
        .to_string()
        .to_string(),
    }
}

fn base_key(account: &MuxedAccount) -> &Uint256 {
    match account {
        MuxedAccount::Ed25519(key) => key,
        MuxedAccount::MuxedEd25519(m) => &m.ed25519,
    }
}

fn base_account(account: &MuxedAccount) -> String {
    g_strkey(base_key(account))
}

fn account_id(account: &MuxedAccount) -> AccountId {
    AccountId(PublicKey::PublicKeyTypeEd25519(base_key(account).clone()))
}

/// An amount in stroops as a decimal with 7 places. Only called on non-negative amounts.
fn amount(stroops: i64) -> String {
    format!("{}.{:07}", stroops / 10_000_000, stroops % 10_000_000)
}

/// stellar-core's `isAssetValid` for an asset code: 1 to 4 (alphanum4) or 5 to 12
/// (alphanum12) ASCII letters and digits, padded with NUL bytes at the end only.
fn code(bytes: &[u8], min_len: usize) -> Option<String> {
    let len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let (code, padding) = bytes.split_at(len);
    let ok = code.len() >= min_len
        && code.iter().all(u8::is_ascii_alphanumeric)
        && padding.iter().all(|&b| b == 0);
    ok.then(|| String::from_utf8(code.to_vec()).expect("ASCII"))
}

/// The fake's asset, `None` if stellar-core would find it malformed.
fn asset(asset: &Asset) -> Option<crate::Asset> {
    match asset {
        Asset::Native => Some(crate::Asset::Native),
        Asset::CreditAlphanum4(AlphaNum4 { asset_code, issuer }) => Some(crate::Asset::Credit {
            code: code(&asset_code.0, 1)?,
            issuer: account_strkey(issuer),
        }),
        Asset::CreditAlphanum12(AlphaNum12 { asset_code, issuer }) => Some(crate::Asset::Credit {
            code: code(&asset_code.0, 5)?,
            issuer: account_strkey(issuer),
        }),
    }
}

/// One operation: the fake's operation if it would succeed, its result and its result code.
fn operation(
    op: &Operation,
    tx_source: &MuxedAccount,
) -> (Option<Op>, OperationResult, &'static str) {
    const SUCCESS: &str = "op_success";
    const MALFORMED: &str = "op_malformed";
    let source = op.source_account.as_ref().unwrap_or(tx_source);
    let from = op.source_account.as_ref().map(muxed_strkey);
    let inner = |tr: OperationResultTr| OperationResult::OpInner(tr);
    match &op.body {
        OperationBody::Payment(p) => match asset(&p.asset) {
            Some(asset) if p.amount > 0 => (
                Some(Op::Payment {
                    from,
                    to: muxed_strkey(&p.destination),
                    asset,
                    amount: amount(p.amount),
                }),
                inner(OperationResultTr::Payment(PaymentResult::Success)),
                SUCCESS,
            ),
            _ => (
                None,
                inner(OperationResultTr::Payment(PaymentResult::Malformed)),
                MALFORMED,
            ),
        },
        OperationBody::PathPaymentStrictSend(p) => {
            let assets_ok = p.path.iter().all(|a| asset(a).is_some());
            match (asset(&p.send_asset), asset(&p.dest_asset)) {
                (Some(send_asset), Some(dest_asset))
                    if assets_ok && p.send_amount > 0 && p.dest_min > 0 =>
                {
                    // No order book: the destination receives exactly `dest_min`.
                    let last = SimplePaymentResult {
                        destination: account_id(&p.destination),
                        asset: p.dest_asset.clone(),
                        amount: p.dest_min,
                    };
                    (
                        Some(Op::PathPaymentStrictSend {
                            from,
                            to: muxed_strkey(&p.destination),
                            send_asset,
                            send_amount: amount(p.send_amount),
                            dest_asset,
                            dest_amount: amount(p.dest_min),
                            dest_min: amount(p.dest_min),
                        }),
                        inner(OperationResultTr::PathPaymentStrictSend(
                            PathPaymentStrictSendResult::Success(
                                PathPaymentStrictSendResultSuccess {
                                    offers: VecM::default(),
                                    last,
                                },
                            ),
                        )),
                        SUCCESS,
                    )
                }
                _ => (
                    None,
                    inner(OperationResultTr::PathPaymentStrictSend(
                        PathPaymentStrictSendResult::Malformed,
                    )),
                    MALFORMED,
                ),
            }
        }
        OperationBody::PathPaymentStrictReceive(p) => {
            let assets_ok = p.path.iter().all(|a| asset(a).is_some());
            match (asset(&p.send_asset), asset(&p.dest_asset)) {
                (Some(send_asset), Some(dest_asset))
                    if assets_ok && p.send_max > 0 && p.dest_amount > 0 =>
                {
                    // No order book: the sender spends exactly `send_max`.
                    let last = SimplePaymentResult {
                        destination: account_id(&p.destination),
                        asset: p.dest_asset.clone(),
                        amount: p.dest_amount,
                    };
                    (
                        Some(Op::PathPaymentStrictReceive {
                            from,
                            to: muxed_strkey(&p.destination),
                            send_asset,
                            send_max: amount(p.send_max),
                            send_amount: amount(p.send_max),
                            dest_asset,
                            dest_amount: amount(p.dest_amount),
                        }),
                        inner(OperationResultTr::PathPaymentStrictReceive(
                            PathPaymentStrictReceiveResult::Success(
                                PathPaymentStrictReceiveResultSuccess {
                                    offers: VecM::default(),
                                    last,
                                },
                            ),
                        )),
                        SUCCESS,
                    )
                }
                _ => (
                    None,
                    inner(OperationResultTr::PathPaymentStrictReceive(
                        PathPaymentStrictReceiveResult::Malformed,
                    )),
                    MALFORMED,
                ),
            }
        }
        OperationBody::CreateAccount(c) => {
            let destination = account_strkey(&c.destination);
            if c.starting_balance >= 0 && destination != base_account(source) {
                (
                    Some(Op::CreateAccount {
                        from,
                        account: destination,
                        starting_balance: amount(c.starting_balance),
                    }),
                    inner(OperationResultTr::CreateAccount(
                        CreateAccountResult::Success,
                    )),
                    SUCCESS,
                )
            } else {
                (
                    None,
                    inner(OperationResultTr::CreateAccount(
                        CreateAccountResult::Malformed,
                    )),
                    MALFORMED,
                )
            }
        }
        OperationBody::AccountMerge(into) => {
            if base_key(into) != base_key(source) {
                (
                    Some(Op::AccountMerge {
                        from,
                        into: muxed_strkey(into),
                    }),
                    // The fake knows no balances: the merged amount is 0.
                    inner(OperationResultTr::AccountMerge(
                        AccountMergeResult::Success(0),
                    )),
                    SUCCESS,
                )
            } else {
                (
                    None,
                    inner(OperationResultTr::AccountMerge(
                        AccountMergeResult::Malformed,
                    )),
                    MALFORMED,
                )
            }
        }
        _ => (None, OperationResult::OpNotSupported, "op_not_supported"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_is_per_byte_like_go() {
        assert_eq!(scrub(b"abc"), "abc");
        assert_eq!(scrub(b"a\xffb"), "a\u{fffd}b");
        // A truncated 3-byte sequence: one replacement per byte, as Go's DecodeRune does.
        assert_eq!(scrub(b"\xe2\x82x"), "\u{fffd}\u{fffd}x");
    }

    #[test]
    fn asset_codes_follow_core() {
        assert_eq!(code(b"USD\0", 1).as_deref(), Some("USD"));
        assert_eq!(code(b"USDC", 1).as_deref(), Some("USDC"));
        assert_eq!(code(b"\0\0\0\0", 1), None);
        assert_eq!(code(b"U\0S\0", 1), None);
        assert_eq!(code(b"U-S\0", 1), None);
        assert_eq!(code(b"LONG\0\0\0\0\0\0\0\0", 5), None);
        assert_eq!(code(b"LONGER\0\0\0\0\0\0", 5).as_deref(), Some("LONGER"));
    }

    #[test]
    fn sequence_rules() {
        assert!(sequence_ok(5, None, None));
        assert!(sequence_ok(6, None, Some(5)));
        assert!(!sequence_ok(5, None, Some(5)));
        assert!(!sequence_ok(7, None, Some(5)));
        assert!(sequence_ok(9, Some(3), Some(5)));
        assert!(!sequence_ok(9, Some(6), Some(5)));
        assert!(!sequence_ok(5, Some(3), Some(5)));
    }

    #[test]
    fn bad_sequence_result_is_tx_bad_seq() {
        let result = TransactionResult::from_xdr_base64(BAD_SEQUENCE_RESULT, Limits::none())
            .expect("valid XDR");
        assert_eq!(result.fee_charged, 0);
        assert!(matches!(result.result, TransactionResultResult::TxBadSeq));
    }

    #[test]
    fn network_id_is_sha256_of_the_passphrase() {
        assert_eq!(
            hex(&network_id(crate::TESTNET_PASSPHRASE)),
            "cee0302d59844d32bdca915c8203dd44b33fbb7edc19051ea37abedf28ecd472"
        );
    }
}
