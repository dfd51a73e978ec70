//! SEP-10 challenge transactions, as pure functions: building one (server side), reading
//! and checking a signed one, and counting its signatures against an account's signers.
//! Nothing here does I/O; the caller looks the account up and stores replay markers.
//!
//! Check numbers (V1..V15) refer to the SEP-10 v3.4.1 verification steps.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use stellar_xdr::{
    DataValue, DecoratedSignature, Limits, ManageDataOp, Memo, MuxedAccount, Operation,
    OperationBody, Preconditions, ReadXdr, SequenceNumber, Signature, SignatureHint, String64,
    TimeBounds, TimePoint, Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope,
    Uint256, WriteXdr,
};

use crate::account::ClientAccount;
use crate::keys::{Keypair, PublicKey};
use crate::network::Network;

/// Challenges are valid for 15 minutes, as SEP-10 recommends.
pub const CHALLENGE_LIFETIME_SECS: u64 = 900;
/// Grace before `minTime` for clocks that differ between replicas or from the client.
pub const CLOCK_SKEW_SECS: u64 = 300;
/// The longest challenge we accept as input. A real one is well under 1 KB; this bounds
/// the work an attacker can make us do on decode.
pub const MAX_CHALLENGE_XDR_BYTES: usize = 8 * 1024;
pub const WEB_AUTH_DOMAIN_KEY: &str = "web_auth_domain";
pub const CLIENT_DOMAIN_KEY: &str = "client_domain";

/// What a challenge is built for.
#[derive(Debug, Clone)]
pub struct ChallengeRequest<'a> {
    pub client: ClientAccount,
    pub home_domain: &'a str,
    pub web_auth_domain: &'a str,
    /// The verified client domain and its SIGNING_KEY.
    pub client_domain: Option<(&'a str, PublicKey)>,
    pub now: u64,
}

/// The server side of SEP-10: who signs, for which network, which domains it serves.
#[derive(Debug, Clone)]
pub struct ChallengeVerifier<'a> {
    /// The key that signs challenges: its own signature is checked by signing again.
    pub server: &'a Keypair,
    pub network: &'a Network,
    pub home_domains: &'a [String],
    pub web_auth_domain: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChallengeError {
    #[error("home domain {0:?} is too long for a challenge (at most 59 characters)")]
    HomeDomainTooLong(String),
    #[error("{0} is longer than the 64 bytes a ManageData value can hold")]
    ValueTooLong(&'static str),
    #[error("transaction is not a base64-encoded XDR transaction envelope")]
    Undecodable,
    #[error("transaction is too large to be a challenge")]
    TooLarge,
    #[error("challenge cannot be a fee bump transaction")]
    FeeBump,
    #[error("challenge must be a v1 transaction envelope")]
    NotV1,
    #[error("challenge source account is not this server's signing key")]
    WrongSource,
    #[error("challenge sequence number must be 0")]
    SequenceNotZero,
    #[error("challenge has no time bounds")]
    NoTimeBounds,
    #[error("challenge time bounds must have a finite maximum time")]
    InfiniteTimeBounds,
    #[error("challenge has expired")]
    Expired,
    #[error("challenge is not yet valid")]
    NotYetValid,
    #[error("challenge memo must be absent or an ID memo")]
    MemoNotId,
    #[error("challenge has an ID memo but the client account is muxed")]
    MemoWithMuxed,
    #[error("challenge has no operations")]
    NoOperations,
    #[error("operation {0} of the challenge is not a ManageData operation")]
    NotManageData(usize),
    #[error("the first operation of the challenge must have the client account as its source")]
    FirstOpWithoutSource,
    #[error(
        "the first operation's key does not name a home domain served here (expected \"<home_domain> auth\")"
    )]
    UnknownHomeDomain,
    #[error("the first operation's value must be a 64-byte base64 nonce of 48 bytes")]
    BadNonce,
    #[error("operation {0} of the challenge has no source account")]
    OpWithoutSource(usize),
    #[error("operation {0} of the challenge must have this server's signing key as its source")]
    OpSourceNotServer(usize),
    #[error("web_auth_domain operation does not match this server's domain")]
    WebAuthDomainMismatch,
    #[error("client_domain operation has no valid domain value")]
    BadClientDomain,
    #[error("challenge has more than one client_domain operation")]
    DuplicateClientDomain,
    #[error("challenge is not signed by this server")]
    MissingServerSignature,
    #[error("challenge is not signed by the client domain's signing key")]
    MissingClientDomainSignature,
    #[error("challenge has no signature from the client account's signers")]
    NoClientSignature,
    #[error("challenge has a signature that does not belong to any signer of the client account")]
    UnrecognizedSignature,
    #[error("challenge is signed more than once by the same signer")]
    DuplicateSignature,
    #[error(
        "challenge signatures carry weight {weight}, below the account's medium threshold {threshold}"
    )]
    BelowThreshold { weight: u32, threshold: u32 },
    #[error("transaction cannot be encoded")]
    Encode,
}

/// A challenge that passed every check that needs no account data: V1-V11 and V14, and
/// the server's own signature (V7).
#[derive(Debug, Clone)]
pub struct VerifiedChallenge {
    pub client: ClientAccount,
    pub home_domain: String,
    pub client_domain: Option<(String, PublicKey)>,
    pub min_time: u64,
    pub max_time: u64,
    /// The transaction hash: what was signed, and the replay marker.
    pub hash: [u8; 32],
    server: PublicKey,
    signatures: Vec<DecoratedSignature>,
}

/// The signers of an existing account, as Horizon reports them.
#[derive(Debug, Clone, Default)]
pub struct AccountSigners {
    pub signers: Vec<(PublicKey, u32)>,
    pub medium_threshold: u32,
}

fn manage_data(
    source: Option<MuxedAccount>,
    name: &str,
    value: &[u8],
) -> Result<Operation, ChallengeError> {
    let data_name: String64 = name
        .as_bytes()
        .to_vec()
        .try_into()
        .map_err(|_| ChallengeError::ValueTooLong("data name"))?;
    let data_value: DataValue = value
        .to_vec()
        .try_into()
        .map_err(|_| ChallengeError::ValueTooLong("data value"))?;
    Ok(Operation {
        source_account: source,
        body: OperationBody::ManageData(ManageDataOp {
            data_name,
            data_value: Some(data_value),
        }),
    })
}

fn source(key: PublicKey) -> Option<MuxedAccount> {
    Some(MuxedAccount::Ed25519(Uint256(key.0)))
}

/// Builds and signs a challenge: sequence 0, 15-minute time bounds, op 0 the client's
/// `<home_domain> auth` nonce, then `web_auth_domain` and, when verified, `client_domain`.
/// Returns the base64 XDR envelope.
pub fn build_challenge(
    server: &Keypair,
    network: &Network,
    req: &ChallengeRequest<'_>,
) -> Result<String, ChallengeError> {
    if req.home_domain.len() > 59 {
        return Err(ChallengeError::HomeDomainTooLong(
            req.home_domain.to_owned(),
        ));
    }
    let nonce = BASE64.encode(crate::random_bytes::<48>());
    let mut operations = vec![
        manage_data(
            Some(req.client.to_xdr()),
            &format!("{} auth", req.home_domain),
            nonce.as_bytes(),
        )?,
        manage_data(
            source(server.public_key()),
            WEB_AUTH_DOMAIN_KEY,
            req.web_auth_domain.as_bytes(),
        )?,
    ];
    if let Some((domain, key)) = req.client_domain {
        operations.push(manage_data(
            source(key),
            CLIENT_DOMAIN_KEY,
            domain.as_bytes(),
        )?);
    }
    let memo = match (req.client.muxed, req.client.memo) {
        (false, Some(id)) => Memo::Id(id),
        _ => Memo::None,
    };
    let tx = Transaction {
        source_account: MuxedAccount::Ed25519(Uint256(server.public_key().0)),
        fee: 100 * operations.len() as u32,
        seq_num: SequenceNumber(0),
        cond: Preconditions::Time(TimeBounds {
            min_time: TimePoint(req.now),
            max_time: TimePoint(req.now + CHALLENGE_LIFETIME_SECS),
        }),
        memo,
        operations: operations.try_into().map_err(|_| ChallengeError::Encode)?,
        ext: TransactionExt::V0,
    };
    let mut envelope = TransactionV1Envelope {
        tx,
        signatures: Default::default(),
    };
    let signature = sign_decorated(server, &envelope.tx, network)?;
    envelope.signatures = vec![signature]
        .try_into()
        .map_err(|_| ChallengeError::Encode)?;
    TransactionEnvelope::Tx(envelope)
        .to_xdr_base64(Limits::none())
        .map_err(|_| ChallengeError::Encode)
}

/// Signs a transaction for a network, as a client or a server would.
pub fn sign_decorated(
    key: &Keypair,
    tx: &Transaction,
    network: &Network,
) -> Result<DecoratedSignature, ChallengeError> {
    let hash = tx.hash(network.id()).map_err(|_| ChallengeError::Encode)?;
    Ok(DecoratedSignature {
        hint: SignatureHint(key.public_key().hint()),
        signature: Signature(
            key.sign(&hash)
                .to_vec()
                .try_into()
                .map_err(|_| ChallengeError::Encode)?,
        ),
    })
}

/// Adds signatures to a base64 envelope: what a client does to answer a challenge.
pub fn sign_challenge(
    xdr: &str,
    network: &Network,
    signers: &[&Keypair],
) -> Result<String, ChallengeError> {
    let TransactionEnvelope::Tx(mut envelope) = decode(xdr)? else {
        return Err(ChallengeError::NotV1);
    };
    let mut signatures = envelope.signatures.to_vec();
    for key in signers {
        signatures.push(sign_decorated(key, &envelope.tx, network)?);
    }
    envelope.signatures = signatures.try_into().map_err(|_| ChallengeError::Encode)?;
    TransactionEnvelope::Tx(envelope)
        .to_xdr_base64(Limits::none())
        .map_err(|_| ChallengeError::Encode)
}

fn decode(xdr: &str) -> Result<TransactionEnvelope, ChallengeError> {
    if xdr.len() > MAX_CHALLENGE_XDR_BYTES {
        return Err(ChallengeError::TooLarge);
    }
    // Bounded limits: untrusted input must not make the decoder recurse or allocate freely.
    let limits = Limits {
        depth: 64,
        len: MAX_CHALLENGE_XDR_BYTES,
    };
    TransactionEnvelope::from_xdr_base64(xdr.trim(), limits)
        .map_err(|_| ChallengeError::Undecodable)
}

fn data_op(op: &Operation, index: usize) -> Result<&ManageDataOp, ChallengeError> {
    match &op.body {
        OperationBody::ManageData(data) => Ok(data),
        _ => Err(ChallengeError::NotManageData(index)),
    }
}

fn data_value(op: &ManageDataOp) -> &[u8] {
    op.data_value
        .as_ref()
        .map(|v| v.0.as_slice())
        .unwrap_or(&[])
}

fn ed25519_of(source: &MuxedAccount) -> PublicKey {
    match source {
        MuxedAccount::Ed25519(k) => PublicKey(k.0),
        MuxedAccount::MuxedEd25519(m) => PublicKey(m.ed25519.0),
    }
}

/// Whether a domain is a plain host name (with an optional port): what may appear in
/// `client_domain`.
pub fn is_valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    let port_ok =
        port.is_none_or(|p| !p.is_empty() && p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()));
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    port_ok && host_ok
}

impl ChallengeVerifier<'_> {
    /// Reads a signed challenge and runs every check that needs no account data.
    pub fn read(&self, xdr: &str, now: u64) -> Result<VerifiedChallenge, ChallengeError> {
        // V1: a v1 envelope; fee bumps are refused, as every SDK does.
        let envelope = match decode(xdr)? {
            TransactionEnvelope::Tx(e) => e,
            TransactionEnvelope::TxFeeBump(_) => return Err(ChallengeError::FeeBump),
            TransactionEnvelope::TxV0(_) => return Err(ChallengeError::NotV1),
        };
        let tx = &envelope.tx;
        // V2
        if tx.source_account != MuxedAccount::Ed25519(Uint256(self.server.public_key().0)) {
            return Err(ChallengeError::WrongSource);
        }
        // V10
        if tx.seq_num.0 != 0 {
            return Err(ChallengeError::SequenceNotZero);
        }
        // V3
        let bounds = match &tx.cond {
            Preconditions::Time(tb) => tb,
            Preconditions::V2(p) => p.time_bounds.as_ref().ok_or(ChallengeError::NoTimeBounds)?,
            Preconditions::None => return Err(ChallengeError::NoTimeBounds),
        };
        let (min_time, max_time) = (bounds.min_time.0, bounds.max_time.0);
        if max_time == 0 {
            return Err(ChallengeError::InfiniteTimeBounds);
        }
        if now > max_time {
            return Err(ChallengeError::Expired);
        }
        if now.saturating_add(CLOCK_SKEW_SECS) < min_time {
            return Err(ChallengeError::NotYetValid);
        }
        // V4, V5
        let first = tx.operations.first().ok_or(ChallengeError::NoOperations)?;
        let first_data = data_op(first, 0)?;
        let source = first
            .source_account
            .as_ref()
            .ok_or(ChallengeError::FirstOpWithoutSource)?;
        let mut client = ClientAccount::from_xdr(source);
        // V11
        match (&tx.memo, client.muxed) {
            (Memo::None, _) => {}
            (Memo::Id(_), true) => return Err(ChallengeError::MemoWithMuxed),
            (Memo::Id(id), false) => client.memo = Some(*id),
            _ => return Err(ChallengeError::MemoNotId),
        }
        // V6
        let key = std::str::from_utf8(first_data.data_name.as_slice())
            .map_err(|_| ChallengeError::UnknownHomeDomain)?;
        let home_domain = key
            .strip_suffix(" auth")
            .filter(|d| self.home_domains.iter().any(|h| h == d))
            .ok_or(ChallengeError::UnknownHomeDomain)?
            .to_owned();
        let nonce = data_value(first_data);
        if nonce.len() != 64 || BASE64.decode(nonce).map(|n| n.len()) != Ok(48) {
            return Err(ChallengeError::BadNonce);
        }
        // V8, V9, V14 (the op half)
        let mut client_domain = None;
        for (i, op) in tx.operations.iter().enumerate().skip(1) {
            let data = data_op(op, i)?;
            let source = ed25519_of(
                op.source_account
                    .as_ref()
                    .ok_or(ChallengeError::OpWithoutSource(i))?,
            );
            let name = data.data_name.as_slice();
            if name == CLIENT_DOMAIN_KEY.as_bytes() {
                if client_domain.is_some() {
                    return Err(ChallengeError::DuplicateClientDomain);
                }
                let domain = std::str::from_utf8(data_value(data))
                    .ok()
                    .filter(|d| is_valid_domain(d))
                    .ok_or(ChallengeError::BadClientDomain)?;
                client_domain = Some((domain.to_owned(), source));
                continue;
            }
            if source != self.server.public_key() {
                return Err(ChallengeError::OpSourceNotServer(i));
            }
            if name == WEB_AUTH_DOMAIN_KEY.as_bytes()
                && data_value(data) != self.web_auth_domain.as_bytes()
            {
                return Err(ChallengeError::WebAuthDomainMismatch);
            }
        }
        let hash = tx
            .hash(self.network.id())
            .map_err(|_| ChallengeError::Undecodable)?;
        let mut signatures = envelope.signatures.to_vec();
        // V7: the server's signature, taken out so the rest can be counted as the client's.
        let server = self.server.public_key();
        let ours = signatures
            .iter()
            .position(|s| s.hint.0 == server.hint() && self.server.signed(&hash, &s.signature))
            .ok_or(ChallengeError::MissingServerSignature)?;
        signatures.remove(ours);
        // V14: the client domain's signature.
        if let Some((_, key)) = &client_domain {
            take_signature(&mut signatures, *key, &hash)
                .ok_or(ChallengeError::MissingClientDomainSignature)?;
        }
        Ok(VerifiedChallenge {
            client,
            home_domain,
            client_domain,
            min_time,
            max_time,
            hash,
            server: self.server.public_key(),
            signatures,
        })
    }
}

/// Removes the first signature by `key` over `hash`, if there is one.
fn take_signature(
    signatures: &mut Vec<DecoratedSignature>,
    key: PublicKey,
    hash: &[u8; 32],
) -> Option<()> {
    let at = signatures
        .iter()
        .position(|s| s.hint.0 == key.hint() && key.verify(hash, s.signature.as_slice()))?;
    signatures.remove(at);
    Some(())
}

impl VerifiedChallenge {
    /// V12 / V13: the client's signatures. `signers` is `None` when the account does not
    /// exist on the network; then exactly one signature, by the account's master key, is
    /// required. Otherwise every remaining signature must come from a distinct signer of
    /// the account, and their weight must reach the medium threshold. The server key's
    /// weight never counts, even when it is a signer of the client account.
    pub fn verify_client_signatures(
        &self,
        signers: Option<&AccountSigners>,
    ) -> Result<(), ChallengeError> {
        if self.signatures.is_empty() {
            return Err(ChallengeError::NoClientSignature);
        }
        let Some(account) = signers else {
            let [only] = self.signatures.as_slice() else {
                return Err(self.extra_signature_error(&[self.client.account]));
            };
            let master = self.client.account;
            return if only.hint.0 == master.hint()
                && master.verify(&self.hash, only.signature.as_slice())
            {
                Ok(())
            } else {
                Err(ChallengeError::UnrecognizedSignature)
            };
        };
        let mut used: Vec<PublicKey> = Vec::with_capacity(self.signatures.len());
        let mut weight: u32 = 0;
        for signature in &self.signatures {
            let signer = account
                .signers
                .iter()
                .filter(|(key, w)| *w > 0 && *key != self.server && key.hint() == signature.hint.0)
                .find(|(key, _)| key.verify(&self.hash, signature.signature.as_slice()));
            let Some((key, w)) = signer else {
                return Err(ChallengeError::UnrecognizedSignature);
            };
            if used.contains(key) {
                return Err(ChallengeError::DuplicateSignature);
            }
            used.push(*key);
            weight = weight.saturating_add(*w);
        }
        let threshold = account.medium_threshold.max(1);
        if weight < threshold {
            return Err(ChallengeError::BelowThreshold { weight, threshold });
        }
        Ok(())
    }

    /// Tells a second signature by the same key apart from a stranger's.
    fn extra_signature_error(&self, keys: &[PublicKey]) -> ChallengeError {
        let signed_by = |key: &PublicKey| {
            self.signatures
                .iter()
                .filter(|s| key.verify(&self.hash, s.signature.as_slice()))
                .count()
        };
        if keys.iter().any(|k| signed_by(k) > 1) {
            ChallengeError::DuplicateSignature
        } else {
            ChallengeError::UnrecognizedSignature
        }
    }

    pub fn hash_hex(&self) -> String {
        hex::encode(self.hash)
    }
}

#[cfg(test)]
mod tests;
