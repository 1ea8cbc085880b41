//! Encryption of platform passwords at rest (AES-256-GCM) and the master key that drives it.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use rand::RngCore;

use crate::{Error, Result};

const NONCE_LEN: usize = 12;

/// The 32-byte key that encrypts secrets. Its `Debug` never shows the key. Shared: the state
/// that holds it is cloned for every request, and the expanded cipher is half a kilobyte.
#[derive(Clone)]
pub struct MasterKey(std::sync::Arc<Aes256Gcm>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

/// Associated data binding a platform password's ciphertext to its integration row, so that a
/// ciphertext copied onto another row does not open.
fn password_context(integration_id: i64) -> Vec<u8> {
    format!("integration:{integration_id}").into_bytes()
}

impl MasterKey {
    /// Seals the platform password of an integration.
    pub fn seal_password(&self, integration_id: i64, password: &str) -> Result<Vec<u8>> {
        self.encrypt(password, &password_context(integration_id))
    }

    /// The decrypted platform password of an integration row, for platform clients only.
    pub fn open_password(&self, row: &entity::integration::Model) -> Result<Option<String>> {
        row.password_ciphertext
            .as_deref()
            .map(|sealed| self.decrypt(sealed, &password_context(row.id)))
            .transpose()
    }

    /// Parses base64 of exactly 32 bytes.
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = B64
            .decode(text.trim())
            .map_err(|_| anyhow::anyhow!("MASTER_KEY is not valid base64"))?;
        anyhow::ensure!(
            bytes.len() == 32,
            "MASTER_KEY must be base64 of 32 bytes, got {} bytes",
            bytes.len()
        );
        Ok(MasterKey(std::sync::Arc::new(Aes256Gcm::new_from_slice(
            &bytes,
        )?)))
    }

    /// A fresh random key, returned with its base64 form.
    pub fn generate() -> (Self, String) {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let text = B64.encode(bytes);
        (
            MasterKey(std::sync::Arc::new(
                Aes256Gcm::new_from_slice(&bytes).expect("32-byte key"),
            )),
            text,
        )
    }

    /// Reads the key file, or creates it with mode 0600 when missing. Returns the key and
    /// whether it was just created.
    pub fn load_or_create(path: &Path) -> anyhow::Result<(Self, bool)> {
        if path.exists() {
            narrow_private(path)?;
            let text = std::fs::read_to_string(path)?;
            return Ok((Self::from_base64(&text)?, false));
        }
        let (key, text) = Self::generate();
        write_private(path, &text)?;
        Ok((key, true))
    }

    /// Encrypts `plain`, binding it to `context` (the owning row id), so a ciphertext moved to
    /// another row fails to decrypt. Output: nonce ‖ ciphertext.
    pub fn encrypt(&self, plain: &str, context: &[u8]) -> Result<Vec<u8>> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain.as_bytes(),
                    aad: context,
                },
            )
            .map_err(|_| Error::internal(anyhow::anyhow!("encryption failed")))?;
        let mut out = nonce.to_vec();
        out.extend(sealed);
        Ok(out)
    }

    /// Reverses [`encrypt`](Self::encrypt); fails with the wrong key or context.
    pub fn decrypt(&self, sealed: &[u8], context: &[u8]) -> Result<String> {
        if sealed.len() < NONCE_LEN {
            return Err(Error::internal(anyhow::anyhow!("ciphertext too short")));
        }
        let (nonce, body) = sealed.split_at(NONCE_LEN);
        let plain = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: context,
                },
            )
            .map_err(|_| Error::MasterKeyMismatch)?;
        String::from_utf8(plain).map_err(Error::internal)
    }
}

/// The key file that sits beside a SQLite database file.
pub fn key_file_for(sqlite_path: &Path) -> PathBuf {
    let mut name = sqlite_path.as_os_str().to_owned();
    name.push(".master-key");
    PathBuf::from(name)
}

/// Writes `text` and a newline to a new file readable by its owner only (0600).
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")
}

/// Narrows an existing file that holds secrets to its owner (0600), with a warning naming it;
/// a file this process may not narrow (someone else's) is an error, so start-up stops.
pub fn narrow_private(path: &Path) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(path) else {
            return Ok(());
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(
                |e| {
                    anyhow::anyhow!(
                        "{} is open to other users (mode {mode:o}) and cannot be narrowed: {e}",
                        path.display()
                    )
                },
            )?;
            tracing::warn!(
                file = %path.display(),
                was = %format!("{mode:o}"),
                "narrowed a file that holds secrets to its owner (0600)"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// Random bytes as lowercase hex, for keys and public identifiers.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    hex::encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_context_binding() {
        let (key, _) = MasterKey::generate();
        let sealed = key.encrypt("s3cret", b"7").unwrap();
        assert_eq!(key.decrypt(&sealed, b"7").unwrap(), "s3cret");
        assert!(key.decrypt(&sealed, b"8").is_err());
        let (other, _) = MasterKey::generate();
        assert!(other.decrypt(&sealed, b"7").is_err());
    }

    #[test]
    fn rejects_short_keys() {
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
        assert!(MasterKey::from_base64("not base64!").is_err());
    }

    #[test]
    fn key_file_is_private_and_reused() {
        let dir = std::env::temp_dir().join(format!("mgw-key-{}", random_hex(6)));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("x.db.master-key");
        let (a, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(created);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let (b, created) = MasterKey::load_or_create(&path).unwrap();
        assert!(!created);
        let sealed = a.encrypt("x", b"1").unwrap();
        assert_eq!(b.decrypt(&sealed, b"1").unwrap(), "x");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
