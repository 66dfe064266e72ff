//! Model signing compatible with OpenSSF model signing (`model_signing` 1.1.1, key mode):
//! a model folder's files are hashed into an in-toto statement, signed with ECDSA inside a
//! DSSE envelope, and stored as a Sigstore bundle (`model.sig`) that `model_signing verify
//! key` accepts — and kiln verifies what `model_signing sign key` writes.
//!
//! ```text
//! folder ──walk──▶ Manifest ──to_statement──▶ Statement ──JSON──▶ DSSE Envelope ──▶ Bundle (model.sig)
//!   files, sha256    name order, root digest   in-toto v1           PAE + ECDSA P-256    v0.3 JSON, key hint
//! ```
//!
//! * [`keys`]: P-256 key pairs as PKCS#8 / SPKI PEM, the public key hint, other keys refused;
//! * [`walk`] and [`manifest`]: hashing a folder like model_signing's `files` serialization;
//! * [`statement`], [`dsse`], [`bundle`]: the signed formats, written once as types;
//! * [`folder`]: [`sign_folder`] and [`verify_folder`], which names every changed, missing
//!   and extra file.
//!
//! Key mode only: keyless (Sigstore/Fulcio/Rekor) signing needs the network.

pub mod bundle;
pub mod dsse;
mod error;
pub mod folder;
pub mod keys;
pub mod manifest;
mod pem;
pub mod statement;
pub mod store;
pub mod walk;

#[cfg(test)]
mod interop_tests;
#[cfg(test)]
mod tests;

pub use bundle::{BUNDLE_MEDIA_TYPE, Bundle};
pub use error::{ChangedFile, MismatchReport, SigningError};
pub use folder::{SIGNATURE_FILE, sign_folder, sign_manifest, verify_bundle, verify_folder};
pub use keys::{Curve, PrivateKey, PublicKey};
pub use manifest::{FileDigest, Manifest};
pub use store::{KeyEntry, KeyStore};
