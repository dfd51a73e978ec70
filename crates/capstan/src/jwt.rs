//! SEP-10 session tokens: HS256 JWTs with the claims SEP-10 names, plus `jti` (the challenge
//! hash) and `home_domain`, which deployed clients expect.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How many verified tokens are remembered; when full, the memory starts over.
const REMEMBERED_TOKENS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// `G...`, `G...:memo` or `M...`.
    pub sub: String,
    pub iat: u64,
    pub exp: u64,
    pub jti: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_domain: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub home_domain: Option<String>,
}

#[derive(Clone)]
pub struct Jwt {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    issuer: String,
    lifetime_secs: u64,
    /// Tokens that verified, by their exact text. Checking one again needs only its
    /// expiry: HS256 gives the same answer for the same text under the same secret, and the
    /// secret does not change while the process runs. Decoding and checking the MAC took a
    /// tenth of an authenticated GET, and a sending anchor sends its token with every
    /// request. Only tokens that verified are kept, so strangers cannot fill it.
    verified: Arc<Mutex<HashMap<Box<str>, Claims>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwtError {
    #[error("token has expired")]
    Expired,
    #[error("token is not valid: {0}")]
    Invalid(String),
}

impl Jwt {
    pub fn new(secret: &[u8], issuer: String, lifetime_secs: u64) -> Self {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&issuer]);
        validation.set_required_spec_claims(&["exp", "iss", "sub"]);
        validation.leeway = 5;
        Jwt {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            issuer,
            lifetime_secs,
            verified: Arc::default(),
        }
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Claims for a session starting `now`.
    pub fn claims(
        &self,
        sub: String,
        now: u64,
        jti: String,
        client_domain: Option<String>,
        home_domain: String,
    ) -> Claims {
        Claims {
            iss: self.issuer.clone(),
            sub,
            iat: now,
            exp: now + self.lifetime_secs,
            jti,
            client_domain,
            home_domain: Some(home_domain),
        }
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, JwtError> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| JwtError::Invalid(e.to_string()))
    }

    pub fn verify(&self, token: &str) -> Result<Claims, JwtError> {
        self.verify_at(token, jsonwebtoken::get_current_timestamp())
    }

    /// [`Jwt::verify`] at the time `now`. A token seen before is checked only for expiry,
    /// with the same leeway.
    fn verify_at(&self, token: &str, now: u64) -> Result<Claims, JwtError> {
        let remembered = self
            .verified
            .lock()
            .ok()
            .and_then(|verified| verified.get(token).cloned());
        if let Some(claims) = remembered {
            return if claims.exp.saturating_add(self.validation.leeway) < now {
                Err(JwtError::Expired)
            } else {
                Ok(claims)
            };
        }
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(e.to_string()),
            })?;
        if let Ok(mut verified) = self.verified.lock() {
            if verified.len() >= REMEMBERED_TOKENS {
                verified.clear();
            }
            verified.insert(token.into(), claims.clone());
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt() -> Jwt {
        Jwt::new(
            b"a secret of thirty-two bytes....",
            "https://anchor.example/auth".into(),
            300,
        )
    }

    fn token(jwt: &Jwt, now: u64, jti: u64) -> String {
        let claims = jwt.claims(
            "GABC".into(),
            now,
            jti.to_string(),
            None,
            "anchor.example".into(),
        );
        jwt.issue(&claims).unwrap()
    }

    #[test]
    fn a_remembered_token_still_expires() {
        let jwt = jwt();
        let now = jsonwebtoken::get_current_timestamp();
        let token = token(&jwt, now, 0);
        let first = jwt.verify_at(&token, now).unwrap();
        assert_eq!(jwt.verify_at(&token, now + 300).unwrap(), first);
        assert!(matches!(
            jwt.verify_at(&token, now + 306),
            Err(JwtError::Expired)
        ));
        // Never verified, it is not taken for the remembered one.
        assert!(matches!(
            jwt.verify_at(&format!("{token}x"), now),
            Err(JwtError::Invalid(_))
        ));
    }

    #[test]
    fn only_tokens_that_verified_are_remembered_and_the_memory_is_bounded() {
        let jwt = jwt();
        let now = jsonwebtoken::get_current_timestamp();
        let other = Jwt::new(
            b"another secret of 32 bytes......",
            jwt.issuer().into(),
            300,
        );
        assert!(jwt.verify_at(&token(&other, now, 0), now).is_err());
        assert!(jwt.verified.lock().unwrap().is_empty());
        for i in 0..REMEMBERED_TOKENS as u64 + 10 {
            jwt.verify_at(&token(&jwt, now, i), now).unwrap();
        }
        assert!(jwt.verified.lock().unwrap().len() <= REMEMBERED_TOKENS);
    }
}
