//! Signing a model folder and verifying one, as `model_signing sign key` / `verify key` do
//! with their default options (`_cli.py`; `signing.py`, `verifying.py` `Config`).
//!
//! Signing ignores the signature file and the top-level git paths and records them in
//! `serialization.ignore_paths`. Verifying checks the key hint and the signature first, then
//! rehashes the folder — leaving out the git paths, the signature file and the recorded
//! `ignore_paths` — and reports every changed, missing and extra file.

use std::fs;
use std::path::{Component, Path};

use super::bundle::Bundle;
use super::dsse::Envelope;
use super::error::SigningError;
use super::keys::{PrivateKey, PublicKey};
use super::manifest::Manifest;
use super::statement::{Serialization, Statement};
use super::walk::{GIT_PATHS, IgnoreSet, hash_folder};

/// The signature's file name inside a model folder (model_signing's default).
pub const SIGNATURE_FILE: &str = "model.sig";

/// What model_signing's CLI records in `ignore_paths` when the signature sits at
/// `signature` inside the folder: the signature first, then the git paths.
pub fn default_ignore_paths(signature: Option<&str>) -> Vec<String> {
    signature.into_iter().chain(GIT_PATHS).map(str::to_owned).collect()
}

/// Signs a manifest: the statement as 2-space-indented JSON (the layout protobuf's
/// `MessageToJson` gives model_signing), in a DSSE envelope, in a key-mode bundle.
pub fn sign_manifest(manifest: &Manifest, key: &PrivateKey) -> Result<Bundle, SigningError> {
    let payload = serde_json::to_vec_pretty(&manifest.to_statement()).map_err(SigningError::statement)?;
    Ok(Bundle {
        key_hint: Some(key.public_key().hint()),
        envelope: Envelope::sign_in_toto(payload, key),
    })
}

/// Hashes `folder` and writes its signature to `signature` (usually
/// `folder/`[`SIGNATURE_FILE`]); returns the signed manifest.
pub fn sign_folder(folder: &Path, signature: &Path, key: &PrivateKey) -> Result<Manifest, SigningError> {
    let inside = relative_inside(folder, signature);
    let ignore_paths = default_ignore_paths(inside.as_deref());
    let manifest = hash_folder(
        folder,
        &Serialization::files(ignore_paths.clone()),
        &IgnoreSet::new(&ignore_paths),
    )?;
    sign_manifest(&manifest, key)?.write(signature)?;
    Ok(manifest)
}

/// Checks a bundle's key hint and signature against `key` and returns the manifest it signs.
/// Fails with [`SigningError::KeyMismatch`] or [`SigningError::BadSignature`] for the wrong
/// key, before anything in the payload is trusted.
pub fn verify_bundle(bundle: &Bundle, key: &PublicKey) -> Result<Manifest, SigningError> {
    if let Some(bundle_hint) = &bundle.key_hint {
        let key_hint = key.hint();
        if !bundle_hint.eq_ignore_ascii_case(&key_hint) {
            return Err(SigningError::KeyMismatch {
                bundle_hint: bundle_hint.clone(),
                key_hint,
            });
        }
    }
    let payload = bundle.envelope.verify_in_toto(key)?;
    let statement: Statement = serde_json::from_slice(payload)
        .map_err(|e| SigningError::statement(format!("its payload is not an in-toto statement ({e})")))?;
    Manifest::from_statement(statement)
}

/// Verifies `folder` against the signature file at `signature` with `key`: the signature
/// must verify, and every file must match — otherwise [`SigningError::Mismatch`] names each
/// changed, missing and extra file. Returns the signed manifest.
pub fn verify_folder(folder: &Path, signature: &Path, key: &PublicKey) -> Result<Manifest, SigningError> {
    let signed = verify_bundle(&Bundle::read(signature)?, key)?;
    let inside = relative_inside(folder, signature);
    let ignore = IgnoreSet::new(
        default_ignore_paths(inside.as_deref())
            .iter()
            .chain(&signed.serialization.ignore_paths),
    );
    let actual = hash_folder(folder, &signed.serialization, &ignore)?;
    let report = signed.diff(&actual);
    if report.is_empty() {
        Ok(signed)
    } else {
        Err(SigningError::Mismatch(report))
    }
}

/// `path` relative to `folder` as a `/`-separated name, when it lies inside it (compared after
/// resolving both, like model_signing's `_resolve_ignore_paths`; `path` need not exist yet).
fn relative_inside(folder: &Path, path: &Path) -> Option<String> {
    let folder = fs::canonicalize(folder).ok()?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let resolved = fs::canonicalize(parent).ok()?.join(path.file_name()?);
    let rel = resolved.strip_prefix(&folder).ok()?;
    let parts = rel
        .components()
        .map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    (!parts.is_empty()).then(|| parts.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ignore_paths_lead_with_the_signature() {
        assert_eq!(
            default_ignore_paths(Some("model.sig")),
            ["model.sig", ".git", ".gitattributes", ".github", ".gitignore"]
        );
        assert_eq!(default_ignore_paths(None).len(), 4);
    }

    #[test]
    fn relative_inside_resolves_paths() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path().join("m");
        fs::create_dir_all(model.join("sub")).expect("mkdir");
        assert_eq!(
            relative_inside(&model, &model.join("model.sig")).as_deref(),
            Some("model.sig")
        );
        assert_eq!(
            relative_inside(&model, &model.join("sub/../sub/s.sig")).as_deref(),
            Some("sub/s.sig")
        );
        assert_eq!(relative_inside(&model, &dir.path().join("m.sig")), None);
    }
}
