//! SEP-10 v3.4: the optional `Authorization` header on `GET /auth`. The client signs a JWT
//! (EdDSA) over the request's parameters with its own key, or with its client domain's
//! SIGNING_KEY when it names one, so that an anchor can refuse challenges to unknown
//! applications.

use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use stellar::PublicKey;

use crate::http::ApiError;

/// The request parameters a client must repeat in its token.
pub struct SignedParams<'a> {
    pub account: &'a str,
    pub memo: Option<&'a str>,
    pub home_domain: Option<&'a str>,
    pub client_domain: Option<&'a str>,
}

/// Checks the client's request token: its EdDSA signature by `signer`, its expiry, its
/// `web_auth_endpoint`, and that each request parameter it claims equals the one sent.
/// Problems are 400s, as SEP-10 asks.
pub fn verify(
    token: &str,
    signer: &PublicKey,
    web_auth_endpoint: &str,
    params: &SignedParams<'_>,
) -> Result<(), ApiError> {
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_required_spec_claims(&["exp", "iat"]);
    validation.leeway = 5;
    let claims = jsonwebtoken::decode::<serde_json::Map<String, Value>>(
        token,
        &DecodingKey::from_ed_der(&signer.0),
        &validation,
    )
    .map_err(|e| match e.kind() {
        jsonwebtoken::errors::ErrorKind::ExpiredSignature => {
            ApiError::bad_request("Provided authorization JWT has been expired")
        }
        jsonwebtoken::errors::ErrorKind::InvalidSignature => {
            ApiError::bad_request(format!("authorization JWT is not signed by {signer}"))
        }
        _ => ApiError::bad_request(format!("authorization JWT is not valid: {e}")),
    })?
    .claims;
    let claim = |name: &str| -> Option<String> {
        match claims.get(name) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Number(n)) => Some(n.to_string()),
            _ => None,
        }
    };
    if claim("web_auth_endpoint").as_deref() != Some(web_auth_endpoint) {
        return Err(ApiError::bad_request(format!(
            "authorization JWT web_auth_endpoint must be {web_auth_endpoint}"
        )));
    }
    for (name, sent) in [
        ("account", Some(params.account)),
        ("memo", params.memo),
        ("home_domain", params.home_domain),
        ("client_domain", params.client_domain),
    ] {
        if claim(name).as_deref() != sent {
            return Err(ApiError::bad_request(format!(
                "authorization JWT claim {name} does not match the request's {name} parameter"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The two signed examples in the SEP-10 text. They expired in 2024, so only the
    /// expiry check may fail, never the signature.
    #[test]
    fn sep10_examples_verify_up_to_their_expiry() {
        let by_client_domain = "eyJhbGciOiJFZERTQSJ9.eyJpYXQiOjE3MTE2NDg0ODYsImV4cCI6MTcxMTY0OTM4NiwiYWNjb3VudCI6IkdDNlVDWFZUQU1ORzVKTE9NWkJTQ05ZWFZTTk5GSEwyM1NKUFlPT0ZKRTJBVllERFMyRkZUNDVDIiwiY2xpZW50X2RvbWFpbiI6ImV4YW1wbGUtd2FsbGV0LnN0ZWxsYXIub3JnIiwid2ViX2F1dGhfZW5kcG9pbnQiOiJodHRwczovL2V4YW1wbGUuY29tL3NlcDEwL2F1dGgifQ.UQt8FpUK-BlnFw35o8Ke4GDOoCrMe9ztEx4_TGQ06XhMgUbn_b7EMPMVLWJ8RRNgSk2dNhyGUgIbhKzKtWtBBw";
        let by_account = "eyJhbGciOiJFZERTQSJ9.eyJpYXQiOjE3MTE2NDg0MjIsImV4cCI6MTcxMTY0OTMyMiwiYWNjb3VudCI6IkdDWFhINkFZSlVWVERHSUhUNDJPWk5NRjNMSENWNERPS0NYNkhIREtXRUNVWllYRFpTV1pONkhTIiwibWVtbyI6IjEyMzQ1NjciLCJ3ZWJfYXV0aF9lbmRwb2ludCI6Imh0dHBzOi8vZXhhbXBsZS5jb20vc2VwMTAvYXV0aCJ9.23TJFUWtadeNWW0N1mjk4gWUZJRTOnrxfs3gahNRuhrKHRbHonrksri6lzJdIvO71a_Ad851necSO6TTXB_IBw";
        let endpoint = "https://example.com/sep10/auth";
        let wallet_key =
            PublicKey::from_strkey("GCADAIACE6CRWGOB3HJRXIOHMQEUKPNLAUIYFIE26F3OK72RSHGAMARK")
                .unwrap();
        let account =
            PublicKey::from_strkey("GCXXH6AYJUVTDGIHT42OZNMF3LHCV4DOKCX6HHDKWECUZYXDZSWZN6HS")
                .unwrap();
        let first = SignedParams {
            account: "GC6UCXVTAMNG5JLOMZBSCNYXVSNNFHL23SJPYOOFJE2AVYDDS2FFT45C",
            memo: None,
            home_domain: None,
            client_domain: Some("example-wallet.stellar.org"),
        };
        let second = SignedParams {
            account: "GCXXH6AYJUVTDGIHT42OZNMF3LHCV4DOKCX6HHDKWECUZYXDZSWZN6HS",
            memo: Some("1234567"),
            home_domain: None,
            client_domain: None,
        };
        let expired = |r: Result<(), ApiError>| r.unwrap_err().to_string();
        assert_eq!(
            expired(verify(by_client_domain, &wallet_key, endpoint, &first)),
            "Provided authorization JWT has been expired"
        );
        assert_eq!(
            expired(verify(by_account, &account, endpoint, &second)),
            "Provided authorization JWT has been expired"
        );
        // With the keys swapped the signature itself fails.
        assert!(
            expired(verify(by_client_domain, &account, endpoint, &first)).contains("not signed by")
        );
        assert!(
            expired(verify(by_account, &wallet_key, endpoint, &second)).contains("not signed by")
        );
    }
}
