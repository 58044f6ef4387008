//! The master key and the keys derived from it.
//!
//! One 32-byte master key (`RF_MASTER_KEY`, base64) is the root of every secret the server holds:
//! companion link signing now, encryption of stored credentials later. Each use gets its own key,
//! derived with HKDF-SHA256, so one purpose can never be mistaken for another. Without a configured
//! key, a single node generates one into a file readable only by its owner.

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hkdf::Hkdf;
use rand::RngCore;
use rf_core::Store;
use rf_core::domain::InstallationRef;
use rf_core::time::Timestamp;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use sha2::Sha256;
use std::path::Path;

/// The root key. Its `Debug` never shows the bytes.
pub struct MasterKey(SecretBox<[u8; 32]>);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

/// Where the key came from, for the startup log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeySource {
    Configured,
    KeyFile,
    Generated,
}

impl MasterKey {
    pub fn from_base64(text: &str) -> anyhow::Result<Self> {
        let bytes = STANDARD
            .decode(text.trim())
            .context("the master key is not valid base64")?;
        let array: [u8; 32] = bytes.try_into().map_err(|bytes: Vec<u8>| {
            anyhow::anyhow!("the master key must be 32 bytes, not {}", bytes.len())
        })?;
        Ok(Self(SecretBox::new(Box::new(array))))
    }

    /// A fresh random key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        Self(SecretBox::new(Box::new(bytes)))
    }

    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.expose_secret())
    }

    /// The configured key, else the key file, else a new key written to the key file.
    pub fn load(
        configured: Option<&SecretString>,
        key_file: &Path,
    ) -> anyhow::Result<(Self, KeySource)> {
        if let Some(secret) = configured.filter(|s| !s.expose_secret().trim().is_empty()) {
            return Ok((
                Self::from_base64(secret.expose_secret())?,
                KeySource::Configured,
            ));
        }
        if key_file.exists() {
            let text = std::fs::read_to_string(key_file)
                .with_context(|| format!("reading the key file {}", key_file.display()))?;
            let key = Self::from_base64(&text)
                .with_context(|| format!("the key file {} is damaged", key_file.display()))?;
            return Ok((key, KeySource::KeyFile));
        }
        let key = Self::generate();
        write_private(key_file, &key.to_base64())
            .with_context(|| format!("writing a new key file {}", key_file.display()))?;
        Ok((key, KeySource::Generated))
    }

    /// The 32-byte key for one purpose.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let hk = Hkdf::<Sha256>::new(Some(b"resolutionflow"), self.0.expose_secret());
        let mut out = [0u8; 32];
        // 32 bytes is far below HKDF-SHA256's output limit.
        if hk.expand(purpose.as_bytes(), &mut out).is_err() {
            unreachable!("HKDF output length is fixed and valid");
        }
        out
    }
}

/// The key purpose of every installation secret (bot tokens, and PSA credentials to come).
pub const INSTALLATION_SECRETS: &str = "installation-secrets-v1";

/// What a sealed installation secret is bound to: a value copied to another row does not open.
pub fn installation_secret_owner(installation: &InstallationRef, purpose: &str) -> String {
    format!(
        "{}:{}:{purpose}",
        installation.platform, installation.external_id
    )
}

/// What `keys rotate` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rotation {
    /// Re-encrypted from the old key to the current one.
    pub rotated: usize,
    /// Already under the current key.
    pub current: usize,
}

/// Re-encrypts every stored secret (installation secrets, PSA credentials) sealed under `old` with
/// `current`. Every secret is
/// opened before any is written: one that opens under neither key stops the rotation, with an
/// error naming it, before anything changed. Secrets already under `current` are left alone, so an
/// interrupted rotation can simply be run again.
pub async fn rotate(
    store: &dyn Store,
    old: &MasterKey,
    current: &MasterKey,
    now: Timestamp,
) -> anyhow::Result<Rotation> {
    let (old_psa, current_psa) = (
        Sealer::new(old, crate::psa::PSA_CREDENTIALS),
        Sealer::new(current, crate::psa::PSA_CREDENTIALS),
    );
    let (old, current) = (
        Sealer::new(old, INSTALLATION_SECRETS),
        Sealer::new(current, INSTALLATION_SECRETS),
    );
    let mut done = Rotation::default();
    let mut to_write = Vec::new();
    let mut psa_to_write = Vec::new();
    for connection in store.all_psa_connections().await? {
        let owner = crate::psa::credentials_owner(connection.account_id, connection.id);
        if current_psa
            .open(&connection.sealed_credentials, &owner)
            .is_ok()
        {
            done.current += 1;
            continue;
        }
        let plain = old_psa
            .open(&connection.sealed_credentials, &owner)
            .with_context(|| {
                format!(
                    "the {} credentials of PSA connection {} open under neither key",
                    connection.provider, connection.id
                )
            })?;
        psa_to_write.push((connection, current_psa.seal(&plain, &owner)));
    }
    for (installation, purpose, sealed) in store.all_installation_secrets().await? {
        let owner = installation_secret_owner(&installation, &purpose);
        if current.open(&sealed, &owner).is_ok() {
            done.current += 1;
            continue;
        }
        let plain = old
            .open(&sealed, &owner)
            .with_context(|| format!("the {purpose} of {owner} opens under neither key"))?;
        to_write.push((installation, purpose, current.seal(&plain, &owner)));
    }
    for (installation, purpose, sealed) in &to_write {
        store
            .save_installation_secret(installation, purpose, sealed, now)
            .await?;
    }
    for (connection, sealed) in &psa_to_write {
        store
            .reseal_psa_credentials(connection.id, &connection.sealed_credentials, sealed)
            .await?;
    }
    done.rotated = to_write.len() + psa_to_write.len();
    Ok(done)
}

/// Encrypts secrets for storage (XChaCha20-Poly1305 with a key derived for one purpose), bound to
/// what they belong to by associated data, as `v1:{key id}:{base64(nonce ‖ ciphertext)}`. The key
/// id names the key, so a value sealed under another master key fails with a clear error, and keys
/// can be rotated.
#[derive(Clone)]
pub struct Sealer {
    key: [u8; 32],
    key_id: String,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// The sealer for `purpose` (e.g. `slack-bot-tokens-v1`) under `master`.
    pub fn new(master: &MasterKey, purpose: &str) -> Self {
        use sha2::Digest;
        let key = master.derive(purpose);
        let key_id = hex::encode(&Sha256::digest(key)[..4]);
        Self { key, key_id }
    }

    pub fn seal(&self, plaintext: &str, associated: &str) -> String {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let cipher = XChaCha20Poly1305::new((&self.key).into());
        let mut nonce = [0u8; 24];
        rand::thread_rng().fill_bytes(&mut nonce);
        let sealed = cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: associated.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend(sealed);
        format!("v1:{}:{}", self.key_id, STANDARD.encode(out))
    }

    pub fn open(&self, sealed: &str, associated: &str) -> anyhow::Result<String> {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        use chacha20poly1305::{XChaCha20Poly1305, XNonce};
        let mut parts = sealed.splitn(3, ':');
        let (Some("v1"), Some(key_id), Some(body)) = (parts.next(), parts.next(), parts.next())
        else {
            bail!("a stored secret is not in the v1 format");
        };
        if key_id != self.key_id {
            bail!(
                "a stored secret was encrypted with another master key (key id {key_id}, this server has {}); set RF_MASTER_KEY to the key it was stored with",
                self.key_id
            );
        }
        let bytes = STANDARD
            .decode(body)
            .context("a stored secret is not valid base64")?;
        if bytes.len() < 24 {
            bail!("a stored secret is truncated");
        }
        let (nonce, ciphertext) = bytes.split_at(24);
        let nonce: [u8; 24] = nonce.try_into().context("a stored secret is truncated")?;
        let plain = XChaCha20Poly1305::new((&self.key).into())
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: associated.as_bytes(),
                },
            )
            .map_err(|_| {
                anyhow::anyhow!(
                    "a stored secret failed authentication (tampered, or stored for something else)"
                )
            })?;
        String::from_utf8(plain).context("a stored secret is not text")
    }
}

#[cfg(unix)]
fn write_private(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, _contents: &str) -> anyhow::Result<()> {
    bail!(
        "set RF_MASTER_KEY: generating a protected key file ({}) is only supported on Unix",
        path.display()
    )
}

/// Refuses a master key that is obviously not random.
pub fn check_strength(key: &MasterKey) -> anyhow::Result<()> {
    let bytes = key.0.expose_secret();
    if bytes.iter().all(|b| *b == bytes[0]) {
        bail!("the master key is a repeated byte; generate one with `openssl rand -base64 32`");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_secrets_open_only_with_the_same_key_and_owner() {
        let master = MasterKey::generate();
        let sealer = Sealer::new(&master, "slack-bot-tokens-v1");
        let sealed = sealer.seal("xoxb-123-secret", "slack:T1");
        assert!(sealed.starts_with("v1:"));
        assert!(!sealed.contains("xoxb"));
        assert_ne!(
            sealed,
            sealer.seal("xoxb-123-secret", "slack:T1"),
            "fresh nonce"
        );
        assert_eq!(sealer.open(&sealed, "slack:T1").unwrap(), "xoxb-123-secret");
        // Moved to another workspace's row: refused.
        assert!(sealer.open(&sealed, "slack:T2").is_err());
        // Another master key: a clear error, not garbage.
        let other = Sealer::new(&MasterKey::generate(), "slack-bot-tokens-v1");
        let error = other.open(&sealed, "slack:T1").unwrap_err().to_string();
        assert!(error.contains("another master key"), "{error}");
        // Tampered.
        let mut tampered = sealed.clone();
        tampered.replace_range(sealed.len() - 4.., "AAAA");
        assert!(sealer.open(&tampered, "slack:T1").is_err());
    }

    #[test]
    fn purposes_get_different_keys() {
        let key = MasterKey::generate();
        assert_ne!(key.derive("companion-links"), key.derive("credentials"));
        assert_eq!(key.derive("companion-links"), key.derive("companion-links"));
    }

    #[test]
    fn a_generated_key_file_is_reused_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rf.key");
        let (first, source) = MasterKey::load(None, &path).unwrap();
        assert_eq!(source, KeySource::Generated);
        let (again, source) = MasterKey::load(None, &path).unwrap();
        assert_eq!(source, KeySource::KeyFile);
        assert_eq!(first.to_base64(), again.to_base64());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn bad_keys_are_explained() {
        let short = MasterKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(short.to_string().contains("32 bytes"), "{short}");
        assert!(
            MasterKey::from_base64("!!!")
                .unwrap_err()
                .to_string()
                .contains("base64")
        );
        let zeros = MasterKey::from_base64(&STANDARD.encode([0u8; 32])).unwrap();
        assert!(check_strength(&zeros).is_err());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(
            format!("{:?}", MasterKey::generate()),
            "MasterKey([REDACTED])"
        );
    }
}
