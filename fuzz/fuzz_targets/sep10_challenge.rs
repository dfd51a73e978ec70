//! The SEP-10 challenge verifier on hostile input: whatever a client posts to `/auth` as
//! `transaction` reaches `ChallengeVerifier::read`. It must answer every input with a
//! value or an error, never a panic, and never allocate beyond the input's bounds.
//!
//! The first byte picks how the rest is used:
//! - 0: raw bytes, base64-encoded, as the XDR envelope;
//! - 1: the bytes as the `transaction` string itself (any text, not only base64);
//! - 2: a valid signed challenge with the rest spliced over its XDR (two bytes of offset,
//!   then the bytes written there), so the fuzzer starts from the deep checks;
//! - others: the rest as XDR with the valid challenge's bytes appended (trailing data).
//!
//! Whatever `read` accepts goes through `verify_client_signatures` as well, both for an
//! account that does not exist and for one with signers.

#![no_main]

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use libfuzzer_sys::fuzz_target;
use stellar::sep10::{
    AccountSigners, ChallengeRequest, ChallengeVerifier, build_challenge, sign_decorated,
};
use stellar::{ClientAccount, Keypair, Network};
use stellar_xdr::{Limits, OperationBody, ReadXdr, TransactionEnvelope, WriteXdr};

const NOW: u64 = 1_700_000_000;
const HOME: &str = "example.com";
const AUTH_DOMAIN: &str = "auth.example.com";

struct Fixture {
    server: Keypair,
    client: Keypair,
    network: Network,
    homes: Vec<String>,
    /// A challenge signed by the server and the client, as raw XDR bytes.
    valid: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let server = Keypair::from_seed_bytes([7; 32]);
        let client = Keypair::from_seed_bytes([9; 32]);
        let network = Network::testnet();
        let req = ChallengeRequest {
            client: ClientAccount::plain(client.public_key()),
            home_domain: HOME,
            web_auth_domain: AUTH_DOMAIN,
            client_domain: None,
            now: NOW,
        };
        let built = build_challenge(&server, &network, &req).expect("challenge");
        // The nonce is random; a fixed one keeps every run (and every crash) reproducible.
        let TransactionEnvelope::Tx(mut envelope) =
            TransactionEnvelope::from_xdr_base64(built, Limits::none()).expect("decodes")
        else {
            unreachable!("build_challenge makes v1 envelopes")
        };
        let mut operations = envelope.tx.operations.to_vec();
        if let OperationBody::ManageData(data) = &mut operations[0].body {
            data.data_value = Some(BASE64.encode([42u8; 48]).into_bytes().try_into().unwrap());
        }
        envelope.tx.operations = operations.try_into().unwrap();
        envelope.signatures = vec![
            sign_decorated(&server, &envelope.tx, &network).unwrap(),
            sign_decorated(&client, &envelope.tx, &network).unwrap(),
        ]
        .try_into()
        .unwrap();
        let valid = TransactionEnvelope::Tx(envelope)
            .to_xdr(Limits::none())
            .expect("encodes");
        Fixture {
            server,
            client,
            network,
            homes: vec![HOME.into(), "other.example.com".into()],
            valid,
        }
    })
}

fn check(f: &Fixture, transaction: &str) {
    let verifier = ChallengeVerifier {
        server: &f.server,
        network: &f.network,
        home_domains: &f.homes,
        web_auth_domain: AUTH_DOMAIN,
    };
    if let Ok(challenge) = verifier.read(transaction, NOW + 1) {
        let _ = challenge.hash_hex();
        let _ = challenge.verify_client_signatures(None);
        let signers = AccountSigners {
            signers: vec![(f.client.public_key(), 1), (f.server.public_key(), 5)],
            medium_threshold: 1,
        };
        let _ = challenge.verify_client_signatures(Some(&signers));
    }
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode {
        0 => check(f, &BASE64.encode(rest)),
        1 => check(f, &String::from_utf8_lossy(rest)),
        2 => {
            let (offset, patch) = match rest {
                [a, b, patch @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), patch),
                _ => (0, &[][..]),
            };
            let mut xdr = f.valid.clone();
            let offset = offset % (xdr.len() + 1);
            let end = (offset + patch.len()).min(xdr.len());
            xdr.splice(offset..end, patch.iter().copied());
            check(f, &BASE64.encode(&xdr));
        }
        _ => {
            let mut xdr = rest.to_vec();
            xdr.extend_from_slice(&f.valid);
            check(f, &BASE64.encode(&xdr));
        }
    }
});
