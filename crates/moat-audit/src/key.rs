//! Seal keys. The crate never looks a key up: the caller passes the bytes it resolved.

use base64::Engine;
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::record::{format_time, Seal};
use crate::AuditError;

/// The private key that seals the chain. No `Debug`, and the key is zeroized on drop.
pub struct AuditSigner {
    key: SigningKey,
    key_id: String,
}

/// The public key that checks seals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditVerifyingKey {
    key: VerifyingKey,
    key_id: String,
}

/// A new key pair, PEM-encoded: PKCS#8 for the private key, SPKI for the public one
/// (the forms `openssl genpkey -algorithm ed25519` and `openssl pkey -pubout` use).
pub struct KeyPairPem {
    /// Keep this secret: `moat audit keygen` writes it to a file only its owner can read.
    pub private_pem: Zeroizing<String>,
    /// Give this to whoever verifies the log.
    pub public_pem: String,
    /// The key id seals carry.
    pub key_id: String,
}

/// Generates a key pair from the operating system's CSPRNG.
///
/// # Errors
/// When the CSPRNG or the encoder fails.
pub fn generate_key_pair() -> Result<KeyPairPem, AuditError> {
    let mut seed = Zeroizing::new([0u8; 32]);
    getrandom::getrandom(seed.as_mut()).map_err(|e| key_err("private", e))?;
    let key = SigningKey::from_bytes(&seed);
    let private_pem = key.to_pkcs8_pem(LineEnding::LF).map_err(|e| key_err("private", e))?;
    let public_pem = key.verifying_key().to_public_key_pem(LineEnding::LF).map_err(|e| key_err("public", e))?;
    Ok(KeyPairPem { private_pem, public_pem, key_id: key_id(&key.verifying_key()) })
}

fn key_err(what: &'static str, e: impl std::fmt::Display) -> AuditError {
    AuditError::Key { what, reason: e.to_string() }
}

fn key_id(key: &VerifyingKey) -> String {
    let digest = hex::encode(Sha256::digest(key.as_bytes()));
    digest.get(..16).unwrap_or_default().to_owned()
}

/// Base64 (standard or URL-safe, padded or not) or hex of exactly 32 bytes.
fn decode_32(text: &str) -> Option<Zeroizing<[u8; 32]>> {
    let text = text.trim();
    let engines = [
        &base64::engine::general_purpose::STANDARD,
        &base64::engine::general_purpose::STANDARD_NO_PAD,
        &base64::engine::general_purpose::URL_SAFE,
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
    ];
    let decoded = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        hex::decode(text).ok()?
    } else {
        engines.iter().find_map(|e| e.decode(text).ok())?
    };
    let decoded = Zeroizing::new(decoded);
    let mut out = Zeroizing::new([0u8; 32]);
    if decoded.len() != 32 {
        return None;
    }
    out.copy_from_slice(&decoded);
    Some(out)
}

impl AuditSigner {
    /// Reads a private key: PKCS#8 PEM, or the 32-byte seed as base64, hex or raw bytes.
    ///
    /// # Errors
    /// [`AuditError::Key`] when the bytes are none of these. The message never quotes them.
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, AuditError> {
        let key = if let Ok(text) = std::str::from_utf8(bytes) {
            if text.trim_start().starts_with("-----BEGIN") {
                SigningKey::from_pkcs8_pem(text.trim())
                    .map_err(|_| key_err("private", "the PEM is not an Ed25519 PKCS#8 private key"))?
            } else if let Some(seed) = decode_32(text) {
                SigningKey::from_bytes(&seed)
            } else if bytes.len() == 32 {
                raw_seed(bytes)?
            } else {
                return Err(key_err("private", "expected PKCS#8 PEM or a 32-byte seed in base64 or hex"));
            }
        } else if bytes.len() == 32 {
            raw_seed(bytes)?
        } else {
            return Err(key_err("private", "expected PKCS#8 PEM or a 32-byte seed"));
        };
        let key_id = key_id(&key.verifying_key());
        Ok(AuditSigner { key, key_id })
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> AuditVerifyingKey {
        AuditVerifyingKey { key: self.key.verifying_key(), key_id: self.key_id.clone() }
    }

    /// Seals the chain head: record `seq` has hash `head`.
    pub fn seal(&self, seq: u64, head: &str, now: moat_store::UnixMillis) -> Seal {
        let time = format_time(now);
        let msg = Seal::signed_bytes(seq, head, &time, &self.key_id);
        let sig: Signature = self.key.sign(&msg);
        Seal {
            v: 1,
            seq,
            head: head.to_owned(),
            time,
            key_id: self.key_id.clone(),
            sig: base64::engine::general_purpose::STANDARD.encode(sig.to_bytes()),
        }
    }
}

fn raw_seed(bytes: &[u8]) -> Result<SigningKey, AuditError> {
    let seed: [u8; 32] = bytes.try_into().map_err(|_| key_err("private", "expected 32 bytes"))?;
    let seed = Zeroizing::new(seed);
    Ok(SigningKey::from_bytes(&seed))
}

impl AuditVerifyingKey {
    /// Reads a public key: SPKI PEM, a PKCS#8 private key PEM (its public half is used),
    /// or the 32-byte key as base64, hex or raw bytes.
    ///
    /// # Errors
    /// [`AuditError::Key`] when the bytes are none of these.
    pub fn from_key_bytes(bytes: &[u8]) -> Result<Self, AuditError> {
        let key = match std::str::from_utf8(bytes) {
            Ok(text) if text.trim_start().starts_with("-----BEGIN PRIVATE KEY") => {
                return Ok(AuditSigner::from_key_bytes(bytes)?.verifying_key());
            }
            Ok(text) if text.trim_start().starts_with("-----BEGIN") => {
                VerifyingKey::from_public_key_pem(text.trim())
                    .map_err(|_| key_err("public", "the PEM is not an Ed25519 public key"))?
            }
            Ok(text) if decode_32(text).is_some() => {
                let raw = decode_32(text).unwrap_or_default();
                VerifyingKey::from_bytes(&raw).map_err(|e| key_err("public", e))?
            }
            _ => {
                let raw: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| key_err("public", "expected SPKI PEM or a 32-byte key in base64 or hex"))?;
                VerifyingKey::from_bytes(&raw).map_err(|e| key_err("public", e))?
            }
        };
        let key_id = key_id(&key);
        Ok(AuditVerifyingKey { key, key_id })
    }

    /// The key id seals made with the matching private key carry.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks a seal's key id and signature.
    ///
    /// # Errors
    /// A sentence saying what is wrong.
    pub fn check(&self, seal: &Seal) -> Result<(), String> {
        if seal.key_id != self.key_id {
            return Err(format!("sealed with key `{}`, not with the given key `{}`", seal.key_id, self.key_id));
        }
        let sig = base64::engine::general_purpose::STANDARD
            .decode(&seal.sig)
            .ok()
            .and_then(|b| Signature::from_slice(&b).ok())
            .ok_or_else(|| "the signature is not a valid Ed25519 signature encoding".to_owned())?;
        let msg = Seal::signed_bytes(seal.seq, &seal.head, &seal.time, &seal.key_id);
        self.key.verify(&msg, &sig).map_err(|_| "the signature does not verify".to_owned())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use moat_store::UnixMillis;

    #[test]
    fn generated_pem_round_trips_and_seals_verify() {
        let pair = generate_key_pair().unwrap();
        assert!(pair.private_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(pair.public_pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let signer = AuditSigner::from_key_bytes(pair.private_pem.as_bytes()).unwrap();
        let public = AuditVerifyingKey::from_key_bytes(pair.public_pem.as_bytes()).unwrap();
        assert_eq!(public.key_id(), pair.key_id);
        assert_eq!(signer.verifying_key(), public);

        let seal = signer.seal(42, &"ab".repeat(32), UnixMillis(1_764_171_062_000));
        public.check(&seal).unwrap();
        // Any change to what was signed fails.
        let mut moved = seal.clone();
        moved.seq = 41;
        assert!(public.check(&moved).is_err());
        let mut other_head = seal.clone();
        other_head.head = "cd".repeat(32);
        assert!(public.check(&other_head).is_err());
        // Another key's seal is named as such.
        let other = AuditSigner::from_key_bytes(generate_key_pair().unwrap().private_pem.as_bytes()).unwrap();
        let err = public.check(&other.seal(42, &seal.head, UnixMillis(0))).unwrap_err();
        assert!(err.contains("not with the given key"), "{err}");
    }

    #[test]
    fn seeds_in_base64_hex_and_raw_are_accepted() {
        let seed = [7u8; 32];
        let a = AuditSigner::from_key_bytes(&seed).unwrap();
        let b = AuditSigner::from_key_bytes(hex::encode(seed).as_bytes()).unwrap();
        let c = AuditSigner::from_key_bytes(base64::engine::general_purpose::STANDARD.encode(seed).as_bytes()).unwrap();
        assert_eq!(a.verifying_key(), b.verifying_key());
        assert_eq!(a.verifying_key(), c.verifying_key());
        let err = AuditSigner::from_key_bytes(b"not a key at all").err().unwrap().to_string();
        assert!(!err.contains("not a key at all"), "{err}");
    }
}
