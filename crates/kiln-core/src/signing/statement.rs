//! The in-toto Statement v1 that model_signing 1.1.1 signs (`_signing/signing.py`, `Payload`),
//! as wire types written once:
//!
//! ```json
//! { "_type": "https://in-toto.io/Statement/v1",
//!   "subject": [{ "name": "<folder name>", "digest": { "sha256": "<root digest>" } }],
//!   "predicateType": "https://model_signing/signature/v1.0",
//!   "predicate": {
//!     "serialization": { "method": "files", "hash_type": "sha256", "allow_symlinks": false,
//!                        "ignore_paths": ["model.sig", ".git", ...] },
//!     "resources": [{ "name": "a/b.bin", "algorithm": "sha256", "digest": "<hex>" }, ...] } }
//! ```
//!
//! The root digest is sha256 over the raw resource digests, concatenated in the listed (name)
//! order. model_signing writes the payload with protobuf's `MessageToJson` (2-space indent,
//! key order not fixed); verifiers parse it, so only the content has to match.

use serde::{Deserialize, Serialize};

/// `_type` of an in-toto Statement v1.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// `predicateType` of a model_signing v1.0 signature.
pub const PREDICATE_TYPE: &str = "https://model_signing/signature/v1.0";
/// `predicateType` model_signing wrote before 1.0 (refused with a re-sign hint).
pub const PREDICATE_TYPE_V0_1: &str = "https://model_signing/Digests/v0.1";
/// `serialization.method` of model_signing's default file-by-file hashing.
pub const METHOD_FILES: &str = "files";
/// The one hash kiln computes and accepts (`hash_type` and each resource's `algorithm`).
pub const SHA256: &str = "sha256";

/// An in-toto Statement v1 carrying a model signature predicate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Statement {
    #[serde(rename = "_type")]
    pub statement_type: String,
    pub subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    pub predicate: Predicate,
}

/// The signed model: its folder name and the root digest over all resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Subject {
    pub name: String,
    pub digest: SubjectDigest,
}

/// The subject's digest set; model signing records only sha256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubjectDigest {
    pub sha256: String,
}

/// `predicate`: how the model was hashed and every file's digest. Other fields are ignored,
/// as the v1.0 predicate asks of verifiers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predicate {
    pub serialization: Serialization,
    pub resources: Vec<Resource>,
}

/// `predicate.serialization`, as model_signing's `_FileSerialization.serialization_parameters`
/// writes it. Kept as strings on the wire so an unknown method is reported, not a parse error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Serialization {
    pub method: String,
    pub hash_type: String,
    pub allow_symlinks: bool,
    /// Paths relative to the model folder that were not hashed (written only when non-empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignore_paths: Vec<String>,
}

/// One hashed file (`predicate.resources[]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resource {
    /// `/`-separated path relative to the model folder.
    pub name: String,
    pub algorithm: String,
    /// Lowercase hex digest.
    pub digest: String,
}

impl Serialization {
    /// model_signing's default: files hashed whole with sha256, symlinks refused.
    pub fn files(ignore_paths: Vec<String>) -> Self {
        Self {
            method: METHOD_FILES.to_owned(),
            hash_type: SHA256.to_owned(),
            allow_symlinks: false,
            ignore_paths,
        }
    }

    /// Whether kiln can recompute this serialization (`files` with sha256).
    pub fn is_supported(&self) -> bool {
        self.method == METHOD_FILES && self.hash_type == SHA256
    }
}
