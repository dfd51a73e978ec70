use super::*;

const HOME: &str = "example.com";
const AUTH_DOMAIN: &str = "auth.example.com";
const NOW: u64 = 1_700_000_000;

struct Fixture {
    server: Keypair,
    client: Keypair,
    network: Network,
    homes: Vec<String>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            server: Keypair::random(),
            client: Keypair::random(),
            network: Network::testnet(),
            homes: vec![HOME.into(), "other.example.com".into()],
        }
    }

    fn verifier(&self) -> ChallengeVerifier<'_> {
        ChallengeVerifier {
            server: &self.server,
            network: &self.network,
            home_domains: &self.homes,
            web_auth_domain: AUTH_DOMAIN,
        }
    }

    fn challenge_for(
        &self,
        client: ClientAccount,
        client_domain: Option<(&str, PublicKey)>,
    ) -> String {
        let req = ChallengeRequest {
            client,
            home_domain: HOME,
            web_auth_domain: AUTH_DOMAIN,
            client_domain,
            now: NOW,
        };
        build_challenge(&self.server, &self.network, &req).unwrap()
    }

    fn challenge(&self) -> String {
        self.challenge_for(ClientAccount::plain(self.client.public_key()), None)
    }

    fn signers(&self, extra: &[(&Keypair, u32)], medium: u32) -> AccountSigners {
        let mut signers = vec![(self.client.public_key(), 1)];
        signers.extend(extra.iter().map(|(k, w)| (k.public_key(), *w)));
        AccountSigners {
            signers,
            medium_threshold: medium,
        }
    }

    /// Decodes a challenge, lets `edit` change the transaction, and re-signs it with the
    /// server key only: what a forger who holds nothing but our output could not do, but
    /// what these tests need to reach each check in isolation.
    fn tampered(&self, edit: impl FnOnce(&mut Transaction)) -> String {
        let TransactionEnvelope::Tx(mut env) = decode(&self.challenge()).unwrap() else {
            unreachable!()
        };
        edit(&mut env.tx);
        env.signatures = vec![sign_decorated(&self.server, &env.tx, &self.network).unwrap()]
            .try_into()
            .unwrap();
        TransactionEnvelope::Tx(env)
            .to_xdr_base64(Limits::none())
            .unwrap()
    }

    fn read_signed(&self, xdr: &str, by: &[&Keypair]) -> Result<VerifiedChallenge, ChallengeError> {
        let signed = sign_challenge(xdr, &self.network, by).unwrap();
        self.verifier().read(&signed, NOW + 1)
    }
}

fn envelope(xdr: &str) -> TransactionV1Envelope {
    match decode(xdr).unwrap() {
        TransactionEnvelope::Tx(e) => e,
        _ => panic!("not v1"),
    }
}

#[test]
fn built_challenge_has_the_sep10_shape() {
    let f = Fixture::new();
    let env = envelope(&f.challenge_for(
        ClientAccount::parse(&f.client.public_key().to_string(), Some("42")).unwrap(),
        None,
    ));
    let tx = &env.tx;
    assert_eq!(
        tx.source_account,
        MuxedAccount::Ed25519(Uint256(f.server.public_key().0))
    );
    assert_eq!(tx.seq_num.0, 0);
    assert_eq!(tx.memo, Memo::Id(42));
    let Preconditions::Time(tb) = &tx.cond else {
        panic!("no time bounds")
    };
    assert_eq!((tb.min_time.0, tb.max_time.0), (NOW, NOW + 900));
    assert_eq!(tx.operations.len(), 2);
    let op0 = data_op(&tx.operations[0], 0).unwrap();
    assert_eq!(op0.data_name.as_slice(), b"example.com auth");
    assert_eq!(data_value(op0).len(), 64);
    assert_eq!(BASE64.decode(data_value(op0)).unwrap().len(), 48);
    assert_eq!(
        tx.operations[0].source_account,
        Some(MuxedAccount::Ed25519(Uint256(f.client.public_key().0)))
    );
    let op1 = data_op(&tx.operations[1], 1).unwrap();
    assert_eq!(
        (op1.data_name.as_slice(), data_value(op1)),
        (b"web_auth_domain".as_slice(), AUTH_DOMAIN.as_bytes())
    );
    assert_eq!(
        tx.operations[1].source_account,
        source(f.server.public_key())
    );
    assert_eq!(env.signatures.len(), 1);
    assert!(f.server.public_key().verify(
        &tx.hash(f.network.id()).unwrap(),
        env.signatures[0].signature.as_slice()
    ));
}

#[test]
fn nonces_differ_between_challenges() {
    let f = Fixture::new();
    let nonce =
        |xdr: &str| data_value(data_op(&envelope(xdr).tx.operations[0], 0).unwrap()).to_vec();
    assert_ne!(nonce(&f.challenge()), nonce(&f.challenge()));
}

#[test]
fn muxed_client_is_op_source_and_no_memo() {
    let f = Fixture::new();
    let client = ClientAccount {
        account: f.client.public_key(),
        memo: Some(7),
        muxed: true,
    };
    let env = envelope(&f.challenge_for(client, None));
    assert_eq!(env.tx.memo, Memo::None);
    assert!(
        matches!(env.tx.operations[0].source_account, Some(MuxedAccount::MuxedEd25519(ref m)) if m.id == 7)
    );
    let read = f
        .read_signed(&f.challenge_for(client, None), &[&f.client])
        .unwrap();
    assert_eq!(read.client.sub(), client.sub());
    read.verify_client_signatures(None).unwrap();
}

#[test]
fn valid_challenge_verifies_for_new_and_existing_accounts() {
    let f = Fixture::new();
    let read = f.read_signed(&f.challenge(), &[&f.client]).unwrap();
    assert_eq!(read.home_domain, HOME);
    assert_eq!(read.client, ClientAccount::plain(f.client.public_key()));
    read.verify_client_signatures(None).unwrap();
    read.verify_client_signatures(Some(&f.signers(&[], 0)))
        .unwrap();
    read.verify_client_signatures(Some(&f.signers(&[], 1)))
        .unwrap();
}

#[test]
fn time_bounds_are_enforced() {
    let f = Fixture::new();
    let signed = sign_challenge(&f.challenge(), &f.network, &[&f.client]).unwrap();
    assert_eq!(
        f.verifier().read(&signed, NOW + 901).unwrap_err(),
        ChallengeError::Expired
    );
    assert_eq!(
        f.verifier()
            .read(&signed, NOW - CLOCK_SKEW_SECS - 1)
            .unwrap_err(),
        ChallengeError::NotYetValid
    );
    assert!(
        f.verifier().read(&signed, NOW - 10).is_ok(),
        "small clock skew is tolerated"
    );
    let no_bounds = f.tampered(|tx| tx.cond = Preconditions::None);
    assert_eq!(
        f.read_signed(&no_bounds, &[&f.client]).unwrap_err(),
        ChallengeError::NoTimeBounds
    );
    let infinite = f.tampered(|tx| {
        tx.cond = Preconditions::Time(TimeBounds {
            min_time: TimePoint(NOW),
            max_time: TimePoint(0),
        })
    });
    assert_eq!(
        f.read_signed(&infinite, &[&f.client]).unwrap_err(),
        ChallengeError::InfiniteTimeBounds
    );
}

/// A change to a challenge transaction, for the table of structural checks.
type Edit = Box<dyn FnOnce(&mut Transaction)>;

#[test]
fn structure_checks() {
    let f = Fixture::new();
    let cases: Vec<(Edit, ChallengeError)> = vec![
        (
            Box::new(|tx| tx.seq_num = SequenceNumber(1)),
            ChallengeError::SequenceNotZero,
        ),
        (
            Box::new(|tx| tx.memo = Memo::Text("hi".as_bytes().to_vec().try_into().unwrap())),
            ChallengeError::MemoNotId,
        ),
        (
            Box::new(|tx| tx.operations = Vec::new().try_into().unwrap()),
            ChallengeError::NoOperations,
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops[0].source_account = None;
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::FirstOpWithoutSource,
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops[0].body = OperationBody::BumpSequence(stellar_xdr::BumpSequenceOp {
                    bump_to: SequenceNumber(1),
                });
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::NotManageData(0),
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops.push(Operation {
                    source_account: None,
                    body: OperationBody::Inflation,
                });
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::NotManageData(2),
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                let src = ops[0].source_account.clone();
                ops.push(manage_data(src, "extra", b"x").unwrap());
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::OpSourceNotServer(2),
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops.push(manage_data(None, "extra", b"x").unwrap());
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::OpWithoutSource(2),
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops[1] = manage_data(
                    ops[1].source_account.clone(),
                    WEB_AUTH_DOMAIN_KEY,
                    b"evil.example.com",
                )
                .unwrap();
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::WebAuthDomainMismatch,
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops[0] = manage_data(ops[0].source_account.clone(), "evil.com auth", &[b'A'; 64])
                    .unwrap();
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::UnknownHomeDomain,
        ),
        (
            Box::new(|tx| {
                let mut ops = tx.operations.to_vec();
                ops[0] = manage_data(ops[0].source_account.clone(), "example.com auth", b"short")
                    .unwrap();
                tx.operations = ops.try_into().unwrap();
            }),
            ChallengeError::BadNonce,
        ),
        (
            Box::new(|tx| {
                let src = tx.operations[0].source_account.clone();
                tx.source_account = src.unwrap();
            }),
            ChallengeError::WrongSource,
        ),
    ];
    for (edit, expected) in cases {
        let xdr = f.tampered(edit);
        assert_eq!(f.read_signed(&xdr, &[&f.client]).unwrap_err(), expected);
    }
}

#[test]
fn other_home_domain_served_here_is_accepted() {
    let f = Fixture::new();
    let xdr = f.tampered(|tx| {
        let mut ops = tx.operations.to_vec();
        let nonce = data_value(data_op(&ops[0], 0).unwrap()).to_vec();
        ops[0] = manage_data(
            ops[0].source_account.clone(),
            "other.example.com auth",
            &nonce,
        )
        .unwrap();
        tx.operations = ops.try_into().unwrap();
    });
    assert_eq!(
        f.read_signed(&xdr, &[&f.client]).unwrap().home_domain,
        "other.example.com"
    );
}

#[test]
fn memo_with_muxed_source_is_rejected() {
    let f = Fixture::new();
    let client = ClientAccount {
        account: f.client.public_key(),
        memo: Some(7),
        muxed: true,
    };
    let TransactionEnvelope::Tx(mut env) = decode(&f.challenge_for(client, None)).unwrap() else {
        unreachable!()
    };
    env.tx.memo = Memo::Id(7);
    env.signatures = vec![sign_decorated(&f.server, &env.tx, &f.network).unwrap()]
        .try_into()
        .unwrap();
    let xdr = TransactionEnvelope::Tx(env)
        .to_xdr_base64(Limits::none())
        .unwrap();
    assert_eq!(
        f.read_signed(&xdr, &[&f.client]).unwrap_err(),
        ChallengeError::MemoWithMuxed
    );
}

#[test]
fn signature_checks() {
    let f = Fixture::new();
    let stranger = Keypair::random();
    let cosigner = Keypair::random();
    let challenge = f.challenge();

    // Not signed by the server (a challenge re-signed by someone else).
    let forged = {
        let mut env = envelope(&challenge);
        env.signatures = vec![sign_decorated(&stranger, &env.tx, &f.network).unwrap()]
            .try_into()
            .unwrap();
        TransactionEnvelope::Tx(env)
            .to_xdr_base64(Limits::none())
            .unwrap()
    };
    assert_eq!(
        f.read_signed(&forged, &[&f.client]).unwrap_err(),
        ChallengeError::MissingServerSignature
    );

    // The server's hint on a signature that is not the server's: a stranger's, and the
    // server's own with one bit changed.
    for tamper in [
        |sig: &mut DecoratedSignature, stranger: &DecoratedSignature| {
            sig.signature = stranger.signature.clone()
        },
        |sig: &mut DecoratedSignature, _: &DecoratedSignature| {
            let mut bytes = sig.signature.to_vec();
            bytes[40] ^= 1;
            sig.signature = bytes.try_into().unwrap();
        },
    ] {
        let mut env = envelope(&challenge);
        let by_stranger = sign_decorated(&stranger, &env.tx, &f.network).unwrap();
        let mut signatures = env.signatures.to_vec();
        tamper(&mut signatures[0], &by_stranger);
        env.signatures = signatures.try_into().unwrap();
        let tampered = TransactionEnvelope::Tx(env)
            .to_xdr_base64(Limits::none())
            .unwrap();
        assert_eq!(
            f.read_signed(&tampered, &[&f.client]).unwrap_err(),
            ChallengeError::MissingServerSignature
        );
    }

    // Signed for another network.
    let public = Network::public();
    let wrong_net = sign_challenge(&challenge, &public, &[&f.client]).unwrap();
    let read = f.verifier().read(&wrong_net, NOW).unwrap();
    assert_eq!(
        read.verify_client_signatures(None).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );

    // No client signature at all.
    assert_eq!(
        f.verifier()
            .read(&challenge, NOW)
            .unwrap()
            .verify_client_signatures(None)
            .unwrap_err(),
        ChallengeError::NoClientSignature
    );

    // New account: exactly the master key.
    let read = f.read_signed(&challenge, &[&stranger]).unwrap();
    assert_eq!(
        read.verify_client_signatures(None).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );
    let read = f.read_signed(&challenge, &[&f.client, &stranger]).unwrap();
    assert_eq!(
        read.verify_client_signatures(None).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );
    let read = f.read_signed(&challenge, &[&f.client, &f.client]).unwrap();
    assert_eq!(
        read.verify_client_signatures(None).unwrap_err(),
        ChallengeError::DuplicateSignature
    );

    // Existing account: signers, weights, medium threshold.
    let two_of = f.signers(&[(&cosigner, 1)], 2);
    let read = f.read_signed(&challenge, &[&f.client]).unwrap();
    assert_eq!(
        read.verify_client_signatures(Some(&two_of)).unwrap_err(),
        ChallengeError::BelowThreshold {
            weight: 1,
            threshold: 2
        }
    );
    f.read_signed(&challenge, &[&f.client, &cosigner])
        .unwrap()
        .verify_client_signatures(Some(&two_of))
        .unwrap();
    let read = f.read_signed(&challenge, &[&f.client, &f.client]).unwrap();
    assert_eq!(
        read.verify_client_signatures(Some(&two_of)).unwrap_err(),
        ChallengeError::DuplicateSignature
    );
    let read = f
        .read_signed(&challenge, &[&f.client, &cosigner, &stranger])
        .unwrap();
    assert_eq!(
        read.verify_client_signatures(Some(&two_of)).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );

    // Non-master signers alone may reach the threshold; a disabled master key may not sign.
    let a = Keypair::random();
    let b = Keypair::random();
    let multisig = AccountSigners {
        signers: vec![
            (f.client.public_key(), 0),
            (a.public_key(), 1),
            (b.public_key(), 1),
        ],
        medium_threshold: 2,
    };
    f.read_signed(&challenge, &[&a, &b])
        .unwrap()
        .verify_client_signatures(Some(&multisig))
        .unwrap();
    let read = f.read_signed(&challenge, &[&f.client, &a, &b]).unwrap();
    assert_eq!(
        read.verify_client_signatures(Some(&multisig)).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );

    // The server's weight never counts, even when it is a signer of the client account.
    let with_server = AccountSigners {
        signers: vec![(f.client.public_key(), 1), (f.server.public_key(), 10)],
        medium_threshold: 5,
    };
    let read = f.read_signed(&challenge, &[&f.client, &f.server]).unwrap();
    assert_eq!(
        read.verify_client_signatures(Some(&with_server))
            .unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );
}

#[test]
fn client_domain_op_and_signature() {
    let f = Fixture::new();
    let domain_key = Keypair::random();
    let xdr = f.challenge_for(
        ClientAccount::plain(f.client.public_key()),
        Some(("wallet.example", domain_key.public_key())),
    );
    let env = envelope(&xdr);
    let op = data_op(&env.tx.operations[2], 2).unwrap();
    assert_eq!(
        (op.data_name.as_slice(), data_value(op)),
        (b"client_domain".as_slice(), b"wallet.example".as_slice())
    );
    assert_eq!(
        env.tx.operations[2].source_account,
        source(domain_key.public_key())
    );

    assert_eq!(
        f.read_signed(&xdr, &[&f.client]).unwrap_err(),
        ChallengeError::MissingClientDomainSignature
    );
    let read = f.read_signed(&xdr, &[&f.client, &domain_key]).unwrap();
    assert_eq!(
        read.client_domain,
        Some(("wallet.example".to_owned(), domain_key.public_key()))
    );
    read.verify_client_signatures(None).unwrap();
    read.verify_client_signatures(Some(&f.signers(&[], 1)))
        .unwrap();
}

#[test]
fn garbage_is_rejected_without_panicking() {
    let f = Fixture::new();
    let v = f.verifier();
    for bad in [
        "",
        "not base64!",
        "AAAA",
        "AAAAAgAAAAA=",
        &"A".repeat(MAX_CHALLENGE_XDR_BYTES + 4),
    ] {
        assert!(v.read(bad, NOW).is_err(), "{bad:?}");
    }
    let full = f.challenge();
    for cut in [4, 40, full.len() / 2, full.len() - 8] {
        assert!(v.read(&full[..cut], NOW).is_err());
    }
}

#[test]
fn fee_bump_envelopes_are_rejected() {
    let f = Fixture::new();
    let inner = envelope(&f.challenge());
    let bump = TransactionEnvelope::TxFeeBump(stellar_xdr::FeeBumpTransactionEnvelope {
        tx: stellar_xdr::FeeBumpTransaction {
            fee_source: MuxedAccount::Ed25519(Uint256(f.client.public_key().0)),
            fee: 400,
            inner_tx: stellar_xdr::FeeBumpTransactionInnerTx::Tx(inner),
            ext: stellar_xdr::FeeBumpTransactionExt::V0,
        },
        signatures: Default::default(),
    });
    let xdr = bump.to_xdr_base64(Limits::none()).unwrap();
    assert_eq!(
        f.verifier().read(&xdr, NOW).unwrap_err(),
        ChallengeError::FeeBump
    );
}

/// The signed example in the SEP-10 text was signed with the testnet passphrase.
#[test]
fn domain_validation() {
    for ok in ["example.com", "localhost:8000", "a-b.c.d", "127.0.0.1:9000"] {
        assert!(is_valid_domain(ok), "{ok}");
    }
    for bad in [
        "",
        "https://x.com",
        "x.com/path",
        "-x.com",
        "x..com",
        "x.com:",
        "x.com:123456",
        "ex ample.com",
    ] {
        assert!(!is_valid_domain(bad), "{bad}");
    }
}

/// SEP10-18: further ManageData operations from the server account are allowed.
#[test]
fn extra_server_operations_are_accepted() {
    let f = Fixture::new();
    let server = f.server.public_key();
    let xdr = f.tampered(|tx| {
        let mut ops = tx.operations.to_vec();
        ops.push(manage_data(source(server), "reserved_for_future_use", b"x").unwrap());
        tx.operations = ops.try_into().unwrap();
    });
    f.read_signed(&xdr, &[&f.client])
        .unwrap()
        .verify_client_signatures(None)
        .unwrap();
}

/// Random corruptions of a valid signed challenge: every one is refused or accepted, none
/// panics. (A cheap stand-in for a fuzzer, run on every `cargo test`.)
#[test]
fn corrupted_challenges_never_panic() {
    let f = Fixture::new();
    let signed = sign_challenge(&f.challenge(), &f.network, &[&f.client]).unwrap();
    let bytes = BASE64.decode(&signed).unwrap();
    let v = f.verifier();
    for round in 0..1000 {
        let mut mutated = bytes.clone();
        let [a, b, c, d] = crate::random_bytes::<4>();
        let at = usize::from(u16::from_le_bytes([a, b])) % mutated.len();
        match round % 3 {
            0 => mutated[at] ^= c | 1,
            1 => mutated.truncate(at),
            _ => mutated.splice(at..at, [c, d]).for_each(drop),
        }
        if let Ok(read) = v.read(&BASE64.encode(&mutated), NOW + 1) {
            let _ = read.verify_client_signatures(None);
            let _ = read.verify_client_signatures(Some(&f.signers(&[], 1)));
        }
    }
}

/// A signature whose hint names another key is refused even when its bytes verify: the hint
/// is outside the signed hash, so accepting it would accept altered envelopes.
#[test]
fn signature_hints_must_match() {
    let f = Fixture::new();
    let signed = sign_challenge(&f.challenge(), &f.network, &[&f.client]).unwrap();
    let TransactionEnvelope::Tx(mut env) = decode(&signed).unwrap() else {
        unreachable!()
    };
    let mut signatures = env.signatures.to_vec();
    signatures[1].hint = SignatureHint([0, 0, 0, 0]);
    env.signatures = signatures.try_into().unwrap();
    let altered = TransactionEnvelope::Tx(env)
        .to_xdr_base64(Limits::none())
        .unwrap();
    let read = f.verifier().read(&altered, NOW + 1).unwrap();
    assert_eq!(
        read.verify_client_signatures(None).unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );
    assert_eq!(
        read.verify_client_signatures(Some(&f.signers(&[], 1)))
            .unwrap_err(),
        ChallengeError::UnrecognizedSignature
    );
}
