//! Model-signing errors, each naming the problem and what to do about it.

use std::fmt;
use std::path::PathBuf;

/// How to make a key model signing accepts (shown in key errors).
const KEYGEN_HINT: &str = "create an ECDSA P-256 key with `openssl ecparam -name prime256v1 -genkey -noout | \
     openssl pkcs8 -topk8 -nocrypt -out key.pem` and its public half with `openssl ec -in key.pem -pubout -out key.pub`";

/// Everything that can go wrong reading keys, signing a model or verifying one.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", path.display())]
    KeyFile { path: PathBuf, source: Box<SigningError> },
    #[error("not a PEM {expected}: {reason}; pass the PEM file (`-----BEGIN ...-----`) that holds the key")]
    NotPem { expected: &'static str, reason: String },
    #[error("expected a PEM {expected} but found a `{found}` block; {advice}")]
    WrongPemBlock {
        expected: &'static str,
        found: String,
        advice: &'static str,
    },
    #[error(
        "{kind} keys are not supported: model signing (OpenSSF model_signing key mode) uses ECDSA on P-256, P-384 or P-521; {KEYGEN_HINT}"
    )]
    UnsupportedKeyType { kind: String },
    #[error("{curve} private keys can verify but not sign in kiln; kiln signs with P-256 — {KEYGEN_HINT}")]
    CannotSignWithCurve { curve: super::keys::Curve },
    #[error(
        "the private key is encrypted; kiln reads unencrypted PKCS#8 keys — decrypt a copy with `openssl pkcs8 -in key.pem -out key-plain.pem` and keep it private"
    )]
    EncryptedKey,
    #[error("malformed {what}: {reason}; regenerate the key or re-export it as PEM")]
    MalformedKey { what: &'static str, reason: String },
    #[error("not a Sigstore bundle: {reason}; pass the `model.sig` written by `model_signing sign key` or kiln")]
    BundleJson { reason: String },
    #[error("unsupported bundle media type '{found}': kiln reads '{expected}' (what model_signing 1.x writes)")]
    BundleMediaType { found: String, expected: &'static str },
    #[error(
        "the bundle was not signed with a key ({found}); kiln verifies key-mode signatures only (`model_signing sign key`)"
    )]
    NotKeyMode { found: &'static str },
    #[error(
        "the bundle's '{field}' is not valid base64 ({reason}); the signature file is damaged — sign the model again"
    )]
    BadBase64 { field: &'static str, reason: String },
    #[error("the DSSE envelope has payload type '{found}' but model signatures use '{expected}'")]
    PayloadType { found: String, expected: &'static str },
    #[error("the DSSE envelope holds no signature; sign the model again")]
    NoSignature,
    #[error(
        "the signature was made with another key: its key hint is {bundle_hint} but this public key's is {key_hint}; verify with the signer's public key"
    )]
    KeyMismatch { bundle_hint: String, key_hint: String },
    #[error(
        "the signature does not verify with this {curve} public key (hint {key_hint}): the bundle was altered or signed by another key"
    )]
    BadSignature {
        curve: super::keys::Curve,
        key_hint: String,
    },
    #[error("the signed statement is not a model signature: {reason}")]
    Statement { reason: String },
    #[error(
        "unsupported serialization (method '{method}', hash '{hash_type}'): kiln verifies model_signing's default `files` method with sha256; re-sign without --shard/--hash options"
    )]
    UnsupportedSerialization { method: String, hash_type: String },
    #[error(
        "the signed manifest is inconsistent: the subject digest is {subject} but its resources hash to {actual}; the signature file was forged or damaged"
    )]
    InconsistentManifest { subject: String, actual: String },
    #[error("the manifest lists '{0}' twice; a model's file names must be unique")]
    DuplicateResource(String),
    #[error("{} is a symbolic link; model signing does not follow links by default — replace it with the file it points to", path.display())]
    Symlink { path: PathBuf },
    #[error("{} is neither a file nor a folder (a socket, pipe, device or broken link); remove it from the model folder", path.display())]
    SpecialFile { path: PathBuf },
    #[error("{} has a name that is not UTF-8; rename it (model signatures name files in UTF-8)", path.display())]
    NonUtf8Name { path: PathBuf },
    #[error("{} is not a folder; model signing signs a model folder", path.display())]
    NotAFolder { path: PathBuf },
    #[error("the model does not match its signature: {0}")]
    Mismatch(MismatchReport),
    /// A key store request that cannot be done, with what to do instead.
    #[error("{0}")]
    Store(String),
}

impl SigningError {
    /// Wraps an I/O error with what was being done and to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.into();
        move |source| Self::Io { action, path, source }
    }

    /// Wraps a malformed-bundle reason.
    pub(crate) fn bundle(reason: impl fmt::Display) -> Self {
        Self::BundleJson {
            reason: reason.to_string(),
        }
    }

    /// Wraps a reason the signed statement is not a model signature.
    pub(crate) fn statement(reason: impl fmt::Display) -> Self {
        Self::Statement {
            reason: reason.to_string(),
        }
    }
}

/// One file whose content differs from what was signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFile {
    /// The file's name relative to the model folder, `/`-separated.
    pub name: String,
    /// Hex sha256 the signature records.
    pub expected: String,
    /// Hex sha256 of the file on disk.
    pub actual: String,
}

/// Exactly how a model folder differs from its signed manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MismatchReport {
    /// Files whose content changed, in name order.
    pub changed: Vec<ChangedFile>,
    /// Signed files that are no longer in the folder.
    pub missing: Vec<String>,
    /// Files in the folder that the signature does not cover.
    pub extra: Vec<String>,
}

impl MismatchReport {
    /// Whether the folder matches the signature exactly.
    pub fn is_empty(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.extra.is_empty()
    }
}

impl fmt::Display for MismatchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        for c in &self.changed {
            parts.push(format!(
                "'{}' changed (signed sha256 {}, now {})",
                c.name, c.expected, c.actual
            ));
        }
        if !self.missing.is_empty() {
            parts.push(format!("missing {}", quoted_list(&self.missing)));
        }
        if !self.extra.is_empty() {
            parts.push(format!("not covered by the signature {}", quoted_list(&self.extra)));
        }
        write!(f, "{}", parts.join("; "))
    }
}

/// `'a', 'b'` for a list of names.
fn quoted_list(names: &[String]) -> String {
    names.iter().map(|n| format!("'{n}'")).collect::<Vec<_>>().join(", ")
}
