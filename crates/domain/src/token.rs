//! Acceptance tokens (SPEC §3): format, digest, and A's verification in SPEC order.
//!
//! `pnfa1_` + unpadded base64url of `{"peer_id","url","ca_sha256","secret"}`. Only the digest
//! (lower-case hex SHA-256 of the whole token string) is stored. Randomness and the clock are
//! arguments: this module does no I/O.

use std::fmt;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

use crate::peer::PeerStatus;

pub const TOKEN_PREFIX: &str = "pnfa1_";

/// What a token carries. `secret` is the bearer part; never log this struct.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    pub peer_id: Uuid,
    pub url: String,
    pub ca_sha256: String,
    pub secret: String,
}

impl fmt::Debug for TokenClaims {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClaims")
            .field("peer_id", &self.peer_id)
            .field("url", &self.url)
            .field("ca_sha256", &self.ca_sha256)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// A freshly minted token: shown once, then only `digest` is kept.
pub struct MintedToken {
    pub token: String,
    pub digest: String,
}

impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &"[REDACTED]")
            .field("digest", &self.digest)
            .finish()
    }
}

/// Lower-case hex SHA-256 of `input` (tokens are digested whole, prefix included).
pub fn sha256_hex(input: &[u8]) -> String {
    hex::encode(Sha256::digest(input))
}

/// Builds a token from its parts; `secret` must be 32 bytes from a CSPRNG.
pub fn mint(peer_id: Uuid, url: &str, ca_sha256: &str, secret: &[u8; 32]) -> MintedToken {
    let claims = TokenClaims {
        peer_id,
        url: url.to_owned(),
        ca_sha256: ca_sha256.to_owned(),
        secret: URL_SAFE_NO_PAD.encode(secret),
    };
    // Serialising four plain fields cannot fail; fall back to an empty object defensively.
    let json = serde_json::to_vec(&claims).unwrap_or_default();
    let token = format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(json));
    let digest = sha256_hex(token.as_bytes());
    MintedToken { token, digest }
}

/// Unparsable or empty token (B refuses it before any network call).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("acceptance_token malformed")]
pub struct Malformed;

pub fn parse(token: &str) -> Result<TokenClaims, Malformed> {
    let body = token.trim().strip_prefix(TOKEN_PREFIX).ok_or(Malformed)?;
    let json = URL_SAFE_NO_PAD.decode(body).map_err(|_| Malformed)?;
    let claims: TokenClaims = serde_json::from_slice(&json).map_err(|_| Malformed)?;
    let hex64 =
        |s: &str| s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    let secret_ok = URL_SAFE_NO_PAD
        .decode(&claims.secret)
        .is_ok_and(|s| s.len() == 32);
    if !hex64(&claims.ca_sha256) || !secret_ok || claims.url.is_empty() {
        return Err(Malformed);
    }
    Ok(claims)
}

/// The stored side of a peer that a token is checked against.
#[derive(Debug, Clone)]
pub struct StoredToken<'a> {
    pub status: PeerStatus,
    pub digest: Option<&'a str>,
    pub expires_at: Option<OffsetDateTime>,
}

/// Why an accept was refused, in SPEC §3's words. `Display` is the exact message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// Unknown peer id (401).
    #[error("acceptance_token not recognized or expired")]
    NotRecognized,
    /// Not `proposed` (a used token, a revoked peer), or a digest mismatch (422).
    #[error("acceptance_token does not match stored digest")]
    Mismatch,
    #[error("acceptance_token required (peer has acceptance_token_digest set)")]
    Required,
    #[error("acceptance_token has expired (expired_at {0})")]
    Expired(String),
}

/// How an accepted token matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    Token,
    /// A drill peer (no digest) accepting any caller; only when drill mode is allowed.
    Drill,
}

/// A's check of a presented token, in SPEC §3 order: status, presence, expiry (by the database
/// clock `now`), then a constant-time digest comparison. Drill peers pass only when
/// `drill_allowed` (drill mode on, outside production); otherwise they fail closed.
pub fn verify(
    stored: &StoredToken<'_>,
    presented: Option<&str>,
    now: OffsetDateTime,
    drill_allowed: bool,
) -> Result<Verified, TokenRejection> {
    if stored.status != PeerStatus::Proposed {
        return Err(TokenRejection::Mismatch);
    }
    let presented = presented.map(str::trim).filter(|t| !t.is_empty());
    let Some(digest) = stored.digest else {
        return if drill_allowed {
            Ok(Verified::Drill)
        } else {
            Err(TokenRejection::Mismatch)
        };
    };
    let Some(presented) = presented else {
        return Err(TokenRejection::Required);
    };
    if let Some(expires_at) = stored.expires_at
        && expires_at <= now
    {
        let at = expires_at
            .format(&Rfc3339)
            .unwrap_or_else(|_| expires_at.to_string());
        return Err(TokenRejection::Expired(at));
    }
    let computed = sha256_hex(presented.as_bytes());
    if bool::from(computed.as_bytes().ct_eq(digest.as_bytes())) {
        Ok(Verified::Token)
    } else {
        Err(TokenRejection::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const CA: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const NOW: OffsetDateTime = datetime!(2026-11-29 12:00 UTC);

    fn minted() -> (Uuid, MintedToken) {
        let id = Uuid::from_u128(7);
        (id, mint(id, "https://a.example.com", CA, &[9u8; 32]))
    }

    fn stored(digest: &str) -> StoredToken<'_> {
        StoredToken {
            status: PeerStatus::Proposed,
            digest: Some(digest),
            expires_at: Some(datetime!(2026-11-30 12:00 UTC)),
        }
    }

    #[test]
    fn minted_tokens_parse_back_and_digest_the_whole_string() {
        let (id, m) = minted();
        assert!(m.token.starts_with("pnfa1_"));
        assert!(!m.token.contains('='));
        assert_eq!(m.digest, sha256_hex(m.token.as_bytes()));
        let claims = parse(&m.token).unwrap();
        assert_eq!(claims.peer_id, id);
        assert_eq!(claims.url, "https://a.example.com");
        assert_eq!(claims.ca_sha256, CA);
        assert!(!format!("{claims:?}").contains(&claims.secret));
        assert!(!format!("{m:?}").contains(&m.token));
    }

    #[test]
    fn garbage_is_malformed() {
        for bad in ["", "pnfa1_", "pnfa1_!!!", "xyz", "pnfa1_e30", "pnfa2_e30"] {
            assert_eq!(parse(bad), Err(Malformed), "{bad:?}");
        }
        assert_eq!(Malformed.to_string(), "acceptance_token malformed");
    }

    #[test]
    fn the_right_token_verifies() {
        let (_, m) = minted();
        assert_eq!(
            verify(&stored(&m.digest), Some(&m.token), NOW, false),
            Ok(Verified::Token)
        );
    }

    #[test]
    fn checks_run_in_spec_order_with_spec_messages() {
        let (_, m) = minted();
        let mut s = stored(&m.digest);
        s.status = PeerStatus::Accepted;
        assert_eq!(
            verify(&s, Some(&m.token), NOW, false)
                .unwrap_err()
                .to_string(),
            "acceptance_token does not match stored digest"
        );
        let s = stored(&m.digest);
        assert_eq!(
            verify(&s, None, NOW, false).unwrap_err().to_string(),
            "acceptance_token required (peer has acceptance_token_digest set)"
        );
        assert_eq!(
            verify(&s, Some("  "), NOW, false),
            Err(TokenRejection::Required)
        );
        let mut s = stored(&m.digest);
        s.expires_at = Some(datetime!(2026-11-29 11:00 UTC));
        assert_eq!(
            verify(&s, Some("wrong"), NOW, false)
                .unwrap_err()
                .to_string(),
            "acceptance_token has expired (expired_at 2026-11-29T11:00:00Z)"
        );
        let s = stored(&m.digest);
        assert_eq!(
            verify(&s, Some(&format!("{}x", m.token)), NOW, false),
            Err(TokenRejection::Mismatch)
        );
        assert_eq!(
            TokenRejection::NotRecognized.to_string(),
            "acceptance_token not recognized or expired"
        );
    }

    #[test]
    fn drill_peers_accept_anyone_only_when_drill_is_allowed() {
        let s = StoredToken {
            status: PeerStatus::Proposed,
            digest: None,
            expires_at: None,
        };
        assert_eq!(verify(&s, None, NOW, true), Ok(Verified::Drill));
        assert_eq!(verify(&s, Some("anything"), NOW, true), Ok(Verified::Drill));
        assert_eq!(verify(&s, None, NOW, false), Err(TokenRejection::Mismatch));
    }
}
