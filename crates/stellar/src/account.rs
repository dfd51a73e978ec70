use std::fmt;

use stellar_strkey::{Strkey, ed25519};
use stellar_xdr::{MuxedAccount, MuxedAccountMed25519, Uint256};

use crate::keys::PublicKey;

/// The account a client authenticates as (SEP-10, SEP-23): a `G...` key, optionally with an
/// ID memo that names one user of a shared account, or an `M...` muxed address, which is
/// the same pair in one string.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAccount {
    pub account: PublicKey,
    pub memo: Option<u64>,
    /// True when the client named itself by an `M...` address; `memo` then holds the muxed id.
    pub muxed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("is not a valid Stellar account: expected a G... or M... address")]
    Malformed,
    #[error("memo must be an ID memo: a whole number from 0 to 18446744073709551615")]
    BadMemo,
    #[error("memo cannot be combined with a muxed (M...) account, which carries its own id")]
    MemoWithMuxed,
}

impl ClientAccount {
    pub fn plain(account: PublicKey) -> Self {
        ClientAccount {
            account,
            memo: None,
            muxed: false,
        }
    }

    /// Parses `account` (G or M) and the optional decimal ID `memo`.
    pub fn parse(account: &str, memo: Option<&str>) -> Result<Self, AccountError> {
        let memo = memo
            .map(|m| {
                // u64::from_str accepts a leading '+'; a memo is digits only.
                if m.is_empty() || !m.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(AccountError::BadMemo);
                }
                m.parse::<u64>().map_err(|_| AccountError::BadMemo)
            })
            .transpose()?;
        match Strkey::from_string(account) {
            Ok(Strkey::PublicKeyEd25519(k)) => Ok(ClientAccount {
                account: PublicKey(k.0),
                memo,
                muxed: false,
            }),
            Ok(Strkey::MuxedAccountEd25519(m)) => {
                if memo.is_some() {
                    return Err(AccountError::MemoWithMuxed);
                }
                Ok(ClientAccount {
                    account: PublicKey(m.ed25519),
                    memo: Some(m.id),
                    muxed: true,
                })
            }
            _ => Err(AccountError::Malformed),
        }
    }

    /// Parses a SEP-10 JWT `sub`: `G...`, `G...:memo`, or `M...`.
    pub fn from_sub(sub: &str) -> Result<Self, AccountError> {
        match sub.split_once(':') {
            Some((account, memo)) if account.starts_with('G') => Self::parse(account, Some(memo)),
            Some(_) => Err(AccountError::Malformed),
            None => Self::parse(sub, None),
        }
    }

    /// The `M...` address, when the client used one.
    pub fn muxed_address(&self) -> Option<String> {
        match (self.muxed, self.memo) {
            (true, Some(id)) => Some(
                ed25519::MuxedAccount {
                    ed25519: self.account.0,
                    id,
                }
                .to_string()
                .as_str()
                .to_owned(),
            ),
            _ => None,
        }
    }

    /// The JWT `sub` SEP-10 prescribes for this account.
    pub fn sub(&self) -> String {
        match (self.muxed_address(), self.memo) {
            (Some(m), _) => m,
            (None, Some(memo)) => format!("{}:{memo}", self.account),
            (None, None) => self.account.to_string(),
        }
    }

    /// The account as an operation source: muxed when the client asked as `M...`.
    pub fn to_xdr(&self) -> MuxedAccount {
        match (self.muxed, self.memo) {
            (true, Some(id)) => MuxedAccount::MuxedEd25519(MuxedAccountMed25519 {
                id,
                ed25519: Uint256(self.account.0),
            }),
            _ => MuxedAccount::Ed25519(Uint256(self.account.0)),
        }
    }

    /// Reads an operation source. A muxed source keeps its id; a plain one has no memo yet
    /// (the transaction memo supplies it).
    pub fn from_xdr(source: &MuxedAccount) -> Self {
        match source {
            MuxedAccount::Ed25519(k) => ClientAccount::plain(PublicKey(k.0)),
            MuxedAccount::MuxedEd25519(m) => ClientAccount {
                account: PublicKey(m.ed25519.0),
                memo: Some(m.id),
                muxed: true,
            },
        }
    }
}

impl fmt::Debug for ClientAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ClientAccount({})", self.sub())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const G: &str = "GA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVSGZ";
    const M0: &str = "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUQ";
    const MBIG: &str = "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLK";

    #[test]
    fn parses_plain_memo_and_muxed() {
        let plain = ClientAccount::parse(G, None).unwrap();
        assert_eq!(plain.sub(), G);
        let memo = ClientAccount::parse(G, Some("17509749319012223907")).unwrap();
        assert_eq!(memo.sub(), format!("{G}:17509749319012223907"));
        let m0 = ClientAccount::parse(M0, None).unwrap();
        assert_eq!(
            (m0.account.to_string().as_str(), m0.memo, m0.sub().as_str()),
            (G, Some(0), M0)
        );
        let big = ClientAccount::parse(MBIG, None).unwrap();
        assert_eq!(big.memo, Some(9223372036854775808));
        assert_eq!(big.sub(), MBIG);
        assert_eq!(ClientAccount::from_sub(MBIG).unwrap(), big);
        assert_eq!(ClientAccount::from_sub(&memo.sub()).unwrap(), memo);
    }

    #[test]
    fn rejects_bad_input() {
        assert_eq!(
            ClientAccount::parse("invalid-account", None),
            Err(AccountError::Malformed)
        );
        assert_eq!(
            ClientAccount::parse(G, Some("abc")),
            Err(AccountError::BadMemo)
        );
        assert_eq!(
            ClientAccount::parse(G, Some("-1")),
            Err(AccountError::BadMemo)
        );
        assert_eq!(
            ClientAccount::parse(G, Some("+1")),
            Err(AccountError::BadMemo)
        );
        assert_eq!(
            ClientAccount::parse(G, Some("18446744073709551616")),
            Err(AccountError::BadMemo)
        );
        assert_eq!(
            ClientAccount::parse(M0, Some("1")),
            Err(AccountError::MemoWithMuxed)
        );
        for bad in [
            "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUR",
            "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAJLKA",
            "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJVAAAAAAAAAAAAAAV75I",
            "M47QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUQ",
            "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUK===",
            "MA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUAAAAAAAAAAAACJUO",
            "CA7QYNF7SOWQ3GLR2BGMZEHXAVIRZA4KVWLTJJFC7MGXUA74P7UJUWDA",
        ] {
            assert_eq!(
                ClientAccount::parse(bad, None),
                Err(AccountError::Malformed),
                "{bad}"
            );
        }
    }
}
