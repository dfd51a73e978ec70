//! Micro-benchmarks of the SEP-10 hot paths, on pure functions only (no HTTP, no database,
//! no Horizon): building a challenge, reading and verifying a signed one, and issuing and
//! verifying the session JWT. Each iteration is one operation, so criterion reports
//! operations per second as elements/s.
//!
//! Run with `cargo bench -p capstan --bench sep10`. The figures are measurements for
//! BENCHMARKS.md, never assertions.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capstan::jwt::Jwt;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use stellar::sep10::{
    AccountSigners, ChallengeRequest, ChallengeVerifier, build_challenge, sign_challenge,
};
use stellar::{ClientAccount, Keypair, Network, PublicKey};

const HOME: &str = "example.com";
const AUTH_DOMAIN: &str = "auth.example.com";
const NOW: u64 = 1_700_000_000;

/// A fixed key from a seed byte, so every run signs with the same keys.
fn key(byte: u8) -> Keypair {
    Keypair::from_seed_bytes([byte; 32])
}

fn request(client: PublicKey) -> ChallengeRequest<'static> {
    ChallengeRequest {
        client: ClientAccount::plain(client),
        home_domain: HOME,
        web_auth_domain: AUTH_DOMAIN,
        client_domain: None,
        now: NOW,
    }
}

fn challenge(c: &mut Criterion) {
    let server = key(1);
    let client = key(2).public_key();
    let network = Network::testnet();
    let req = request(client);

    let mut group = c.benchmark_group("sep10_challenge");
    group.throughput(Throughput::Elements(1));
    // Nonce from the OS RNG, XDR encoding, one ed25519 signature by the server.
    group.bench_function("build", |b| {
        b.iter(|| build_challenge(&server, &network, black_box(&req)).unwrap())
    });
    group.finish();
}

fn verify(c: &mut Criterion) {
    let server = key(1);
    let client = key(2);
    let cosigner_a = key(3);
    let cosigner_b = key(4);
    let network = Network::testnet();
    let homes = vec![HOME.to_owned()];
    let verifier = ChallengeVerifier {
        server: &server,
        network: &network,
        home_domains: &homes,
        web_auth_domain: AUTH_DOMAIN,
    };
    let unsigned = build_challenge(&server, &network, &request(client.public_key())).unwrap();

    // A new account: no signers on the network, one signature by the master key.
    let signed_once = sign_challenge(&unsigned, &network, &[&client]).unwrap();
    // An existing account with three signers of weight 1 and medium threshold 3.
    let signed_thrice =
        sign_challenge(&unsigned, &network, &[&client, &cosigner_a, &cosigner_b]).unwrap();
    let signers = AccountSigners {
        signers: vec![
            (client.public_key(), 1),
            (cosigner_a.public_key(), 1),
            (cosigner_b.public_key(), 1),
        ],
        medium_threshold: 3,
    };

    // The same checks the handler runs, so a broken fixture fails here, not silently.
    verifier
        .read(&signed_once, NOW + 1)
        .unwrap()
        .verify_client_signatures(None)
        .unwrap();
    verifier
        .read(&signed_thrice, NOW + 1)
        .unwrap()
        .verify_client_signatures(Some(&signers))
        .unwrap();

    let mut group = c.benchmark_group("sep10_verify");
    group.throughput(Throughput::Elements(1));
    // Decode, structural checks, transaction hash, the server's signature, the client's.
    group.bench_function("new_account_1_sig", |b| {
        b.iter(|| {
            let challenge = verifier.read(black_box(&signed_once), NOW + 1).unwrap();
            challenge.verify_client_signatures(None).unwrap();
            challenge
        })
    });
    group.bench_function("existing_account_3_sigs", |b| {
        b.iter(|| {
            let challenge = verifier.read(black_box(&signed_thrice), NOW + 1).unwrap();
            challenge
                .verify_client_signatures(Some(black_box(&signers)))
                .unwrap();
            challenge
        })
    });
    // One strict ed25519 verification on its own, to see how much of the above it explains.
    let hash = [7u8; 32];
    let signature = client.sign(&hash);
    let public = client.public_key();
    group.bench_function("ed25519_verify_strict", |b| {
        b.iter(|| assert!(public.verify(black_box(&hash), black_box(&signature))))
    });
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let jwt = Jwt::new(
        b"a benchmark secret of a realistic length, 32+ bytes",
        format!("https://{AUTH_DOMAIN}/auth"),
        86_400,
    );
    // `verify` checks `exp` against the wall clock, so the token starts now.
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = jwt.claims(
        key(2).public_key().to_string(),
        now,
        hex_hash(),
        None,
        HOME.to_owned(),
    );
    let token = jwt.issue(&claims).unwrap();
    assert_eq!(jwt.verify(&token).unwrap(), claims);

    let mut group = c.benchmark_group("sep10_jwt");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue", |b| {
        b.iter(|| jwt.issue(black_box(&claims)).unwrap())
    });
    group.bench_function("verify", |b| {
        b.iter(|| jwt.verify(black_box(&token)).unwrap())
    });
    group.finish();
}

/// A 64-hex-digit `jti`, the shape of a challenge hash.
fn hex_hash() -> String {
    "9f".repeat(32)
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sample_size(50)
}

criterion_group! {
    name = benches;
    config = config();
    targets = challenge, verify, jwt
}
criterion_main!(benches);
