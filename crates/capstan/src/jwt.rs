//! SEP-10 session tokens: HS256 JWTs with the claims SEP-10 names, plus `jti` (the challenge
//! hash) and `home_domain`, which deployed clients expect.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

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
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => JwtError::Expired,
                _ => JwtError::Invalid(e.to_string()),
            })
    }
}
