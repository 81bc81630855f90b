//! The master key and AES-256-GCM sealing of secrets kept at rest (CA keys, later pending
//! outbound keys and approval parameters).

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use openssl::rand::rand_bytes;
use openssl::symm::{Cipher, decrypt_aead, encrypt_aead};
use secrecy::{ExposeSecret, SecretBox};

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// 32 bytes from `POWERNODE_MASTER_KEY_FILE`; `Debug` prints nothing.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CryptoError(String);

impl MasterKey {
    /// Reads 64 hex characters from `path`, which must not be readable by group or others.
    pub fn load(path: &Path) -> Result<Self, String> {
        let var = "POWERNODE_MASTER_KEY_FILE";
        let shown = path.display();
        let text = read_secret_file(var, path)?;
        let mut key = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
            format!(
                "{var} {shown} must hold exactly 64 hex characters (e.g. `openssl rand -hex 32`)"
            )
        })?;
        Ok(MasterKey(SecretBox::new(Box::new(key))))
    }

    /// `nonce ‖ ciphertext ‖ tag`, bound to `context` (additional authenticated data) so a
    /// sealed value cannot be moved to another purpose.
    pub fn seal(&self, context: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand_bytes(&mut nonce).map_err(|e| CryptoError(format!("no randomness: {e}")))?;
        let mut tag = [0u8; TAG_LEN];
        let ciphertext = encrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.expose_secret(),
            Some(&nonce),
            context,
            plaintext,
            &mut tag,
        )
        .map_err(|e| CryptoError(format!("seal failed: {e}")))?;
        let mut out = Vec::with_capacity(NONCE_LEN + ciphertext.len() + TAG_LEN);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        out.extend_from_slice(&tag);
        Ok(out)
    }

    pub fn open(&self, context: &[u8], sealed: &[u8]) -> Result<SecretBox<Vec<u8>>, CryptoError> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(CryptoError("sealed value is truncated".to_owned()));
        }
        let (nonce, rest) = sealed.split_at(NONCE_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let plain = decrypt_aead(
            Cipher::aes_256_gcm(),
            self.0.expose_secret(),
            Some(nonce),
            context,
            ciphertext,
            tag,
        )
        .map_err(|_| CryptoError("sealed value does not open with this master key".to_owned()))?;
        Ok(SecretBox::new(Box::new(plain)))
    }
}

/// `n` bytes from OpenSSL's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], CryptoError> {
    let mut out = [0u8; N];
    rand_bytes(&mut out).map_err(|e| CryptoError(format!("no randomness: {e}")))?;
    Ok(out)
}

/// The text of a key file that only its owner may read (mode 0600), or why not.
fn read_secret_file(var: &str, path: &Path) -> Result<String, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("{var} points at {shown}, which cannot be read: {e}"))?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "{var} {shown} has mode {mode:o}: restrict it with `chmod 600 {shown}`"
        ));
    }
    std::fs::read_to_string(path)
        .map_err(|e| format!("{var} points at {shown}, which cannot be read: {e}"))
}

/// The web UI's cookie key: 128 hex characters (64 bytes) in a mode-0600 file.
pub fn load_session_key(path: &Path) -> Result<actix_web::cookie::Key, String> {
    let var = "POWERNODE_UI_SESSION_KEY_FILE";
    let text = read_secret_file(var, path)?;
    let mut key = [0u8; 64];
    hex::decode_to_slice(text.trim(), &mut key).map_err(|_| {
        format!(
            "{var} {} must hold exactly 128 hex characters (e.g. `openssl rand -hex 64`)",
            path.display()
        )
    })?;
    Ok(actix_web::cookie::Key::from(&key))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_file(mode: u32, content: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("pn-mk-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn seal_and_open_round_trip_bound_to_their_context() {
        let key = MasterKey::load(&key_file(0o600, &"ab".repeat(32))).unwrap();
        let sealed = key.seal(b"ca-key", b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(
            key.open(b"ca-key", &sealed).unwrap().expose_secret(),
            b"secret"
        );
        assert!(key.open(b"other", &sealed).is_err());
        let other = MasterKey::load(&key_file(0o600, &"cd".repeat(32))).unwrap();
        assert!(other.open(b"ca-key", &sealed).is_err());
    }

    #[test]
    fn a_readable_or_malformed_key_file_is_refused_with_the_fix() {
        let err = MasterKey::load(&key_file(0o644, &"ab".repeat(32))).unwrap_err();
        assert!(
            err.contains("has mode 644: restrict it with `chmod 600"),
            "{err}"
        );
        let err = MasterKey::load(&key_file(0o600, "abc")).unwrap_err();
        assert!(err.contains("must hold exactly 64 hex characters"), "{err}");
        assert_eq!(
            format!(
                "{:?}",
                MasterKey::load(&key_file(0o600, &"ab".repeat(32))).unwrap()
            ),
            "MasterKey([REDACTED])"
        );
    }
}
