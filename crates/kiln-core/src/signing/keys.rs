//! Signing keys in the files `openssl` and `model_signing` use: a P-256 private key as PKCS#8
//! PEM (`-----BEGIN PRIVATE KEY-----`; SEC1 `EC PRIVATE KEY` is read too) and a public key as
//! SPKI PEM (`-----BEGIN PUBLIC KEY-----`). kiln signs with P-256 and verifies P-256, P-384
//! and P-521, like model_signing 1.1.1 (`_signing/sign_ec_key.py`); ed25519, RSA and other
//! keys are refused by name.
//!
//! A public key's *hint* is what model_signing writes to `verificationMaterial.publicKey.hint`:
//! the hex sha256 of the key's SPKI PEM text as `cryptography` re-encodes it (uncompressed
//! point, 64-column base64, `\n` line ends), not of the file's bytes.

use std::fmt;
use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::pkcs8::{DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _};
use p256::pkcs8::{LineEnding, PrivateKeyInfo, SubjectPublicKeyInfoRef};
use rand_core::OsRng;
use sha2::{Digest as _, Sha256};

pub use p256::elliptic_curve::zeroize::Zeroizing;

use super::error::SigningError;
use super::pem::{self, KeyAlgorithm, PemBlock};
use crate::fsx;

/// The elliptic curves model signing accepts (model_signing's `_check_supported_ec_key`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Curve {
    /// NIST P-256 (`prime256v1`, `secp256r1`), signed over SHA-256.
    P256,
    /// NIST P-384 (`secp384r1`), signed over SHA-384.
    P384,
    /// NIST P-521 (`secp521r1`), signed over SHA-512.
    P521,
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::P256 => "P-256",
            Self::P384 => "P-384",
            Self::P521 => "P-521",
        })
    }
}

/// A P-256 private key that signs models. Its `Debug` and `Display` show only the curve and
/// the public key's hint, never the secret.
#[derive(Clone)]
pub struct PrivateKey {
    key: p256::ecdsa::SigningKey,
    public: PublicKey,
}

impl PrivateKey {
    /// A fresh random P-256 key from the operating system's generator.
    pub fn generate() -> Self {
        Self::from_signing_key(p256::ecdsa::SigningKey::random(&mut OsRng))
    }

    /// Reads a PKCS#8 (or SEC1) PEM private key, refusing other key types by name.
    pub fn from_pem(text: &str) -> Result<Self, SigningError> {
        let block = pem::key_block(text, "private key")?;
        match block.label.as_str() {
            "PRIVATE KEY" => Self::from_pkcs8_der(&block.der),
            "EC PRIVATE KEY" => Self::from_sec1_der(&block.der),
            "ENCRYPTED PRIVATE KEY" => Err(SigningError::EncryptedKey),
            "RSA PRIVATE KEY" => Err(unsupported("RSA")),
            "DSA PRIVATE KEY" => Err(unsupported("DSA")),
            _ => Err(wrong_private_block(block)),
        }
    }

    /// Reads a private key file (see [`PrivateKey::from_pem`]).
    pub fn read(path: &Path) -> Result<Self, SigningError> {
        let text = read_key_text(path)?;
        Self::from_pem(&text).map_err(|e| in_file(path, e))
    }

    /// The key as PKCS#8 PEM (`openssl pkcs8 -topk8 -nocrypt` form), wiped from memory on drop.
    pub fn to_pem(&self) -> Result<Zeroizing<String>, SigningError> {
        self.key
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| SigningError::MalformedKey {
                what: "private key",
                reason: e.to_string(),
            })
    }

    /// Writes the key as PKCS#8 PEM, readable only by its owner (mode 0600), atomically.
    pub fn write(&self, path: &Path) -> Result<(), SigningError> {
        let pem = self.to_pem()?;
        write_private_file(path, pem.as_bytes()).map_err(SigningError::io("write private key", path))
    }

    /// The public half, for verifiers.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// ECDSA P-256 over SHA-256 of `message`, DER-encoded (what `cryptography`'s `sign` returns).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        let signature: p256::ecdsa::Signature = self.key.sign(message);
        signature.to_der().as_bytes().to_vec()
    }

    fn from_signing_key(key: p256::ecdsa::SigningKey) -> Self {
        let public = PublicKey::from_p256(*key.verifying_key());
        Self { key, public }
    }

    fn from_pkcs8_der(der: &[u8]) -> Result<Self, SigningError> {
        let info = PrivateKeyInfo::try_from(der).map_err(|e| malformed("private key", e))?;
        match pem::algorithm_of(&info.algorithm) {
            KeyAlgorithm::Ec(Curve::P256) => p256::ecdsa::SigningKey::from_pkcs8_der(der)
                .map(Self::from_signing_key)
                .map_err(|e| malformed("private key", e)),
            KeyAlgorithm::Ec(curve) => Err(SigningError::CannotSignWithCurve { curve }),
            KeyAlgorithm::Other(kind) => Err(SigningError::UnsupportedKeyType { kind }),
        }
    }

    fn from_sec1_der(der: &[u8]) -> Result<Self, SigningError> {
        if let Ok(secret) = p256::SecretKey::from_sec1_der(der) {
            return Ok(Self::from_signing_key(secret.into()));
        }
        if p384::SecretKey::from_sec1_der(der).is_ok() {
            return Err(SigningError::CannotSignWithCurve { curve: Curve::P384 });
        }
        if p521::SecretKey::from_sec1_der(der).is_ok() {
            return Err(SigningError::CannotSignWithCurve { curve: Curve::P521 });
        }
        Err(unsupported("EC (SEC1 key on another curve)"))
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("curve", &Curve::P256)
            .field("public_key_hint", &self.public.hint())
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} private key (public key hint {})",
            Curve::P256,
            self.public.hint()
        )
    }
}

/// The ECDSA verifier for one curve.
#[derive(Clone)]
enum Verifier {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
    P521(p521::ecdsa::VerifyingKey),
}

/// An ECDSA public key that verifies model signatures, with its canonical SPKI PEM.
/// Two keys are equal when their canonical PEM (and so their hint) is.
#[derive(Clone)]
pub struct PublicKey {
    verifier: Verifier,
    pem: String,
}

impl PublicKey {
    /// Reads an SPKI PEM public key, refusing other key types by name.
    pub fn from_pem(text: &str) -> Result<Self, SigningError> {
        let block = pem::key_block(text, "public key")?;
        match block.label.as_str() {
            "PUBLIC KEY" => Self::from_spki_der(&block.der),
            "RSA PUBLIC KEY" => Err(unsupported("RSA")),
            _ => Err(wrong_public_block(block)),
        }
    }

    /// Reads a public key file (see [`PublicKey::from_pem`]).
    pub fn read(path: &Path) -> Result<Self, SigningError> {
        let text = read_key_text(path)?;
        Self::from_pem(&text).map_err(|e| in_file(path, e))
    }

    /// Writes the key as SPKI PEM (`openssl ec -pubout` form), atomically.
    pub fn write(&self, path: &Path) -> Result<(), SigningError> {
        fsx::write_atomic(path, self.pem.as_bytes()).map_err(SigningError::io("write public key", path))
    }

    /// The SPKI PEM text, exactly as the hint hashes it.
    pub fn to_pem(&self) -> &str {
        &self.pem
    }

    /// The curve the key lives on.
    pub fn curve(&self) -> Curve {
        match self.verifier {
            Verifier::P256(_) => Curve::P256,
            Verifier::P384(_) => Curve::P384,
            Verifier::P521(_) => Curve::P521,
        }
    }

    /// model_signing's key hint: hex sha256 of [`PublicKey::to_pem`].
    pub fn hint(&self) -> String {
        pem::hex(&Sha256::digest(self.pem.as_bytes()))
    }

    /// Checks a DER ECDSA `signature` over `message`, hashing with the curve's hash
    /// (SHA-256/384/512, model_signing's `get_ec_key_hash`).
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), SigningError> {
        let ok = match &self.verifier {
            Verifier::P256(k) => {
                p256::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Verifier::P384(k) => {
                p384::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
            Verifier::P521(k) => {
                p521::ecdsa::Signature::from_der(signature).is_ok_and(|s| k.verify(message, &s).is_ok())
            }
        };
        ok.then_some(()).ok_or_else(|| SigningError::BadSignature {
            curve: self.curve(),
            key_hint: self.hint(),
        })
    }

    fn from_p256(key: p256::ecdsa::VerifyingKey) -> Self {
        // Encoding a valid point as SPKI cannot fail; an empty PEM would only make the hint
        // mismatch, never verify something it should not.
        let pem = key.to_public_key_pem(LineEnding::LF).unwrap_or_default();
        Self {
            verifier: Verifier::P256(key),
            pem,
        }
    }

    fn from_spki_der(der: &[u8]) -> Result<Self, SigningError> {
        let info = SubjectPublicKeyInfoRef::try_from(der).map_err(|e| malformed("public key", e))?;
        let (verifier, pem) = match pem::algorithm_of(&info.algorithm) {
            KeyAlgorithm::Ec(Curve::P256) => {
                let key = p256::PublicKey::from_public_key_der(der).map_err(|e| malformed("public key", e))?;
                (Verifier::P256(key.into()), key.to_public_key_pem(LineEnding::LF))
            }
            KeyAlgorithm::Ec(Curve::P384) => {
                let key = p384::PublicKey::from_public_key_der(der).map_err(|e| malformed("public key", e))?;
                (Verifier::P384(key.into()), key.to_public_key_pem(LineEnding::LF))
            }
            KeyAlgorithm::Ec(Curve::P521) => {
                let key = p521::PublicKey::from_public_key_der(der).map_err(|e| malformed("public key", e))?;
                let verifier =
                    p521::ecdsa::VerifyingKey::from_affine(*key.as_affine()).map_err(|e| malformed("public key", e))?;
                (Verifier::P521(verifier), key.to_public_key_pem(LineEnding::LF))
            }
            KeyAlgorithm::Other(kind) => return Err(SigningError::UnsupportedKeyType { kind }),
        };
        let pem = pem.map_err(|e| malformed("public key", e))?;
        Ok(Self { verifier, pem })
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl Eq for PublicKey {}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey")
            .field("curve", &self.curve())
            .field("hint", &self.hint())
            .finish()
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} public key (hint {})", self.curve(), self.hint())
    }
}

/// Reads a key file as text.
fn read_key_text(path: &Path) -> Result<String, SigningError> {
    let bytes = std::fs::read(path).map_err(SigningError::io("read key", path))?;
    String::from_utf8(bytes).map_err(|_| {
        in_file(
            path,
            SigningError::NotPem {
                expected: "key",
                reason: "the file is binary (DER?); convert it with `openssl pkey -inform DER -in KEY -out key.pem`"
                    .to_owned(),
            },
        )
    })
}

/// Writes `bytes` to a fresh owner-only temp file, syncs it, then renames it over `path`.
fn write_private_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = fsx::temp_path_for(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fsx::publish(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Prefixes a key error with the file it came from.
fn in_file(path: &Path, source: SigningError) -> SigningError {
    SigningError::KeyFile {
        path: PathBuf::from(path),
        source: Box::new(source),
    }
}

fn unsupported(kind: &str) -> SigningError {
    SigningError::UnsupportedKeyType { kind: kind.to_owned() }
}

fn malformed(what: &'static str, reason: impl fmt::Display) -> SigningError {
    SigningError::MalformedKey {
        what,
        reason: reason.to_string(),
    }
}

/// A private-key slot holding some other PEM block.
fn wrong_private_block(block: PemBlock) -> SigningError {
    let advice = match block.label.as_str() {
        "PUBLIC KEY" => "this is a public key — pass the private key (key.pem) to sign",
        "OPENSSH PRIVATE KEY" => "convert an OpenSSH ECDSA P-256 key with `ssh-keygen -p -m PKCS8 -f KEY`",
        _ => "pass a PKCS#8 `PRIVATE KEY` PEM",
    };
    SigningError::WrongPemBlock {
        expected: "private key",
        found: block.label,
        advice,
    }
}

/// A public-key slot holding some other PEM block.
fn wrong_public_block(block: PemBlock) -> SigningError {
    let advice = match block.label.as_str() {
        "PRIVATE KEY" | "EC PRIVATE KEY" => {
            "this is a private key — pass its public half (`openssl ec -in key.pem -pubout -out key.pub`)"
        }
        "CERTIFICATE" => "certificate mode is not supported; pass the signer's public key",
        _ => "pass an SPKI `PUBLIC KEY` PEM",
    };
    SigningError::WrongPemBlock {
        expected: "public key",
        found: block.label,
        advice,
    }
}
