use std::fmt;
use std::str::FromStr;

use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use stellar_strkey::ed25519;
use subtle::ConstantTimeEq;

/// An ed25519 public key, shown as its `G...` strkey.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey(pub [u8; 32]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid Stellar public key (G...)")]
    BadPublicKey,
    #[error("not a valid Stellar secret seed (S...)")]
    BadSeed,
}

impl PublicKey {
    pub fn from_strkey(s: &str) -> Result<Self, KeyError> {
        ed25519::PublicKey::from_string(s)
            .map(|k| PublicKey(k.0))
            .map_err(|_| KeyError::BadPublicKey)
    }

    /// The last four bytes of the key: the hint Stellar puts beside each signature.
    pub fn hint(&self) -> [u8; 4] {
        [self.0[28], self.0[29], self.0[30], self.0[31]]
    }

    /// Verifies a detached ed25519 signature with the strict rules (no malleable
    /// signatures, no small-order keys).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        let Ok(key) = VerifyingKey::from_bytes(&self.0) else {
            return false;
        };
        let Ok(signature) = ed25519_dalek::Signature::from_slice(signature) else {
            return false;
        };
        key.verify_strict(message, &signature).is_ok()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&ed25519::PublicKey(self.0), f)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_strkey(s)
    }
}

/// A signing key pair. Its `Debug` never shows the secret.
#[derive(Clone)]
pub struct Keypair {
    signing: SigningKey,
    public: PublicKey,
}

impl Keypair {
    pub fn from_seed_bytes(seed: [u8; 32]) -> Self {
        let signing = SigningKey::from_bytes(&seed);
        let public = PublicKey(signing.verifying_key().to_bytes());
        Keypair { signing, public }
    }

    pub fn from_secret_seed(s: &str) -> Result<Self, KeyError> {
        ed25519::PrivateKey::from_string(s.trim())
            .map(|k| Self::from_seed_bytes(k.0))
            .map_err(|_| KeyError::BadSeed)
    }

    pub fn random() -> Self {
        Self::from_seed_bytes(crate::random_bytes())
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// The `S...` secret seed. Only for writing key files; never log it.
    pub fn secret_seed(&self) -> String {
        ed25519::PrivateKey(self.signing.to_bytes())
            .as_unredacted()
            .to_string()
            .as_str()
            .to_owned()
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    /// Whether `signature` is this key's signature of `message`. Ed25519 signing is
    /// deterministic and only this key's holder can make a signature that verifies under
    /// it, so signing again and comparing answers what a strict verification would, for
    /// about half its cost. The comparison takes constant time: otherwise the time it took
    /// would tell a caller, byte by byte, the signature of a message it chose.
    pub fn signed(&self, message: &[u8], signature: &[u8]) -> bool {
        self.sign(message).as_slice().ct_eq(signature).into()
    }
}

impl fmt::Debug for Keypair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Keypair({}, secret redacted)", self.public)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_round_trip_and_signature() {
        let kp = Keypair::random();
        let again = Keypair::from_secret_seed(&kp.secret_seed()).unwrap();
        assert_eq!(kp.public_key(), again.public_key());
        let sig = kp.sign(b"hello");
        assert!(kp.public_key().verify(b"hello", &sig));
        assert!(!kp.public_key().verify(b"hellO", &sig));
        assert!(kp.signed(b"hello", &sig));
        assert!(!kp.signed(b"hellO", &sig));
        assert!(!kp.signed(b"hello", &sig[..63]));
        assert!(!Keypair::random().signed(b"hello", &sig));
        assert!(!format!("{kp:?}").contains(&kp.secret_seed()));
    }

    #[test]
    fn sep23_vectors() {
        assert!(
            PublicKey::from_strkey("GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ")
                .is_ok()
        );
        for bad in [
            "GAAAAAAAACGC6",
            "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZA",
            "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUACUSI",
            "G47QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVP2I",
        ] {
            assert!(
                PublicKey::from_strkey(bad).is_err(),
                "{bad} must be rejected"
            );
        }
        assert_eq!(
            Keypair::from_secret_seed("GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ")
                .unwrap_err(),
            KeyError::BadSeed
        );
    }
}
