use sha2::{Digest, Sha256};

pub const TESTNET_PASSPHRASE: &str = "Test SDF Network ; September 2015";
pub const PUBLIC_PASSPHRASE: &str = "Public Global Stellar Network ; September 2015";
pub const FUTURENET_PASSPHRASE: &str = "Test SDF Future Network ; October 2022";

/// A Stellar network, known by its passphrase. Signatures are made over
/// `sha256(passphrase)`, so a challenge signed for one network never verifies on another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    passphrase: String,
    id: [u8; 32],
}

#[derive(Debug, thiserror::Error)]
#[error(
    "unknown network {0:?}: use \"testnet\", \"public\", \"futurenet\" or a full network passphrase"
)]
pub struct UnknownNetwork(pub String);

impl Network {
    pub fn from_passphrase(passphrase: impl Into<String>) -> Self {
        let passphrase = passphrase.into();
        let id = Sha256::digest(passphrase.as_bytes()).into();
        Network { passphrase, id }
    }

    pub fn testnet() -> Self {
        Self::from_passphrase(TESTNET_PASSPHRASE)
    }

    pub fn public() -> Self {
        Self::from_passphrase(PUBLIC_PASSPHRASE)
    }

    /// Accepts the usual short names or a full passphrase. A single word that is not a
    /// known name is refused: it is far more likely a typo than a private network.
    pub fn parse(name: &str) -> Result<Self, UnknownNetwork> {
        match name.trim().to_ascii_lowercase().as_str() {
            "testnet" | "test" => Ok(Self::testnet()),
            "public" | "pubnet" | "mainnet" => Ok(Self::public()),
            "futurenet" => Ok(Self::from_passphrase(FUTURENET_PASSPHRASE)),
            _ if name.trim().contains(' ') => Ok(Self::from_passphrase(name.trim())),
            _ => Err(UnknownNetwork(name.to_owned())),
        }
    }

    pub fn passphrase(&self) -> &str {
        &self.passphrase
    }

    pub fn id(&self) -> [u8; 32] {
        self.id
    }

    pub fn is_public(&self) -> bool {
        self.passphrase == PUBLIC_PASSPHRASE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_passphrases() {
        assert_eq!(
            Network::parse("testnet").unwrap().passphrase(),
            TESTNET_PASSPHRASE
        );
        assert_eq!(
            Network::parse("PUBLIC").unwrap().passphrase(),
            PUBLIC_PASSPHRASE
        );
        assert_eq!(
            Network::parse("Standalone Network ; February 2017")
                .unwrap()
                .passphrase(),
            "Standalone Network ; February 2017"
        );
        assert!(Network::parse("tesnet").is_err());
        assert_ne!(Network::testnet().id(), Network::public().id());
    }
}
