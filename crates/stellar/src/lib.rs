//! Stellar primitives with no anchor knowledge: keys and addresses, network ids,
//! SEP-10 challenge transactions (pure functions), and a small Horizon client.
//!
//! Everything XDR and strkey goes through SDF's own `stellar-xdr` and `stellar-strkey`
//! crates; this crate only adds the rules the SEPs put on top of them.

pub mod account;
pub mod horizon;
pub mod keys;
pub mod network;
pub mod sep10;
pub mod sep9;
pub mod toml_file;

pub use account::ClientAccount;
pub use keys::{Keypair, PublicKey};
pub use network::Network;

/// Fills a buffer from the operating system's CSPRNG.
///
/// A failing system RNG leaves no safe way to continue (nonces and keys would be
/// predictable), so this panics rather than returning weak bytes.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random number generator failed");
    buf
}
