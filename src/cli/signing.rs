//! `kiln models sign|verify|export`, and the licence and card flags `kiln train` and `kiln
//! models import` share. Signing happens here, with the operator's private key from the
//! config folder: the key never crosses the control API; the daemon checks the signature
//! against the trust store and the version's files before it stores it.

use std::path::{Path, PathBuf};

use kiln_core::api::{SignRequest, SignatureStatus, SignatureView, Signatures, VerifyReport};
use kiln_core::card::License;
use kiln_core::client::Blocking;
use kiln_core::names::{ModelRef, Name};
use kiln_core::registry::{file_name_of, signing_manifest};
use kiln_core::settings::Settings;
use kiln_core::signing::{Bundle, KeyStore, SIGNATURE_FILE, sign_manifest};

use super::error::{CORRUPT, CliError, REFUSED};
use super::output::emit;
use super::table;

/// `--license`, `--license-name`, `--license-link`, `--card`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct CardArgs {
    /// The version's licence: an SPDX id (Apache-2.0, MIT, CC-BY-4.0, …), or `other` with
    /// --license-name. Written into the model card and the manifest.
    #[arg(long)]
    pub license: Option<String>,
    /// The name of a licence that is not in SPDX's list (implies `--license other`).
    #[arg(long)]
    pub license_name: Option<String>,
    /// Where that licence can be read.
    #[arg(long, requires = "license_name")]
    pub license_link: Option<PathBuf>,
    /// A Markdown file: the model card's description (kiln adds the front matter, training
    /// facts and metrics).
    #[arg(long)]
    pub card: Option<PathBuf>,
}

impl CardArgs {
    /// The licence and the card text, checked.
    pub fn resolve(&self) -> Result<(Option<License>, Option<String>), CliError> {
        let link = self.license_link.as_ref().map(|l| l.to_string_lossy().into_owned());
        let license = License::parse(self.license.as_deref(), self.license_name.as_deref(), link.as_deref())
            .map_err(|e| CliError::bad_input(e.0))?;
        let card = match &self.card {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| CliError::bad_input(format!("cannot read the card {}: {e}", path.display())))?;
                kiln_core::card::check_text(&text)
                    .map_err(|e| CliError::bad_input(format!("{}: {}", path.display(), e.0)))?;
                Some(text)
            }
            None => None,
        };
        Ok((license, card))
    }
}

fn settings() -> Result<Settings, CliError> {
    Settings::load().map_err(CliError::bad_input)
}

/// `kiln models sign m@v [--key NAME]`.
pub fn sign(client: &Blocking, reference: &ModelRef, key: Option<&Name>, json: bool) -> Result<u8, CliError> {
    let settings = settings()?;
    let store = settings.key_store();
    let name = pick_key(&store, key, settings.signing.key.as_ref())?;
    let private = store.private(&name).map_err(|e| CliError::bad_input(e.to_string()))?;
    let view = client.run(|c| c.version(&reference.model, &reference.selector))?;
    let manifest = signing_manifest(&view.version).map_err(|e| CliError::failure(e.to_string()))?;
    let bundle = sign_manifest(&manifest, &private).map_err(|e| CliError::failure(e.to_string()))?;
    let request = SignRequest {
        bundle: serde_json::from_str(&bundle.to_json()).map_err(|e| CliError::failure(e.to_string()))?,
    };
    let (model, version) = (&view.version.model, view.version.version);
    let signed = client.run(|c| c.sign(model, version, &request))?;
    emit(json, &signed, || {
        format!(
            "signed {model}@{version} with key {name}: {} file(s); `kiln models export {model}@{version} --dir DIR` writes it with its model.sig",
            manifest.files().len()
        )
    })?;
    Ok(0)
}

/// The key to sign with: `--key`, else `[signing] key`, else the only own key.
fn pick_key(store: &KeyStore, asked: Option<&Name>, configured: Option<&Name>) -> Result<Name, CliError> {
    if let Some(name) = asked.or(configured) {
        return Ok(name.clone());
    }
    let own: Vec<Name> = store
        .list()
        .map_err(|e| CliError::failure(e.to_string()))?
        .into_iter()
        .filter(|k| k.own)
        .map(|k| k.name)
        .collect();
    match own.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::bad_input(
            "no signing key here: create one with `kiln keys gen --name NAME`",
        )),
        many => Err(CliError::bad_input(format!(
            "several keys can sign ({}); pick one with --key, or set `key` under [signing] in config.toml",
            many.iter().map(Name::as_str).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// `kiln models verify m@v`: exit 0 when a trusted key signed it and every file matches, 4
/// when a file changed or the signature is damaged, 5 when unsigned or the signer is not
/// trusted.
pub fn verify_version(client: &Blocking, reference: &ModelRef, json: bool) -> Result<u8, CliError> {
    let view = client.run(|c| c.version(&reference.model, &reference.selector))?;
    let (model, version) = (&view.version.model, view.version.version);
    let signature: SignatureView = client.run(|c| c.signature(model, version))?;
    emit(json, &signature, || {
        format!("{model}@{version}: {}", signature.status.describe())
    })?;
    Ok(exit_code(&signature.status))
}

fn exit_code(status: &SignatureStatus) -> u8 {
    match status {
        SignatureStatus::Signed { .. } => 0,
        SignatureStatus::Tampered { .. } | SignatureStatus::Invalid { .. } => CORRUPT,
        SignatureStatus::Unsigned | SignatureStatus::Untrusted { .. } => REFUSED,
    }
}

/// What `kiln models verify` (no version) prints: the blob check, then every version's
/// signature.
#[derive(Debug, serde::Serialize)]
struct Everything {
    #[serde(flatten)]
    integrity: VerifyReport,
    signatures: Signatures,
}

/// `kiln models verify`: every blob re-hashed and every signature checked; exit 4 when
/// anything is damaged or tampered with (unsigned versions are listed, not failed).
pub fn verify_all(
    client: &Blocking,
    json: bool,
    integrity_text: impl Fn(&VerifyReport) -> String,
) -> Result<u8, CliError> {
    let integrity = client.run(|c| c.verify())?;
    let signatures = client.run(|c| c.signatures())?;
    let damaged = signatures.versions.iter().any(|v| exit_code(&v.status) == CORRUPT);
    let code = if !integrity.ok || damaged { CORRUPT } else { 0 };
    let all = Everything { integrity, signatures };
    emit(json, &all, || {
        let rows: Vec<Vec<String>> = all
            .signatures
            .versions
            .iter()
            .map(|v| {
                let detail = match &v.status {
                    SignatureStatus::Signed { .. } | SignatureStatus::Unsigned => String::new(),
                    other => other.describe(),
                };
                vec![format!("{}@{}", v.model, v.version), v.status.badge(), detail]
            })
            .collect();
        let mut out = integrity_text(&all.integrity);
        if !rows.is_empty() {
            out.push_str("\n\n");
            out.push_str(table::render(&["VERSION", "SIGNATURE", "DETAIL"], &rows).trim_end());
        }
        out
    })?;
    Ok(code)
}

/// `kiln models export m@v --dir OUT`: the version's files under their names
/// (`model.safetensors`, `config.json`, `README.md`, …) and its signature as `model.sig`,
/// which `model_signing verify key --signature OUT/model.sig --public_key key.pub OUT`
/// accepts. OUT must be new or empty: nothing is overwritten.
pub fn export(client: &Blocking, reference: &ModelRef, dir: &Path, json: bool) -> Result<u8, CliError> {
    let view = client.run(|c| c.version(&reference.model, &reference.selector))?;
    let manifest = view.version;
    let (model, version) = (&manifest.model, manifest.version);
    if dir.exists() {
        let empty = std::fs::read_dir(dir)
            .map_err(|e| CliError::bad_input(format!("cannot read {}: {e}", dir.display())))?
            .next()
            .is_none();
        if !empty {
            return Err(CliError::bad_input(format!(
                "{} is not empty; export into a new folder (nothing is overwritten)",
                dir.display()
            )));
        }
    }
    let signature = client.run(|c| c.signature(model, version))?;
    if matches!(
        signature.status,
        SignatureStatus::Tampered { .. } | SignatureStatus::Invalid { .. }
    ) {
        return Err(CliError {
            code: CORRUPT,
            message: format!("{model}@{version} is not exported: {}", signature.status.describe()),
        });
    }
    // Written beside the target and renamed into place: a failed export leaves no half folder.
    let staging = kiln_core::fsx::temp_path_for(dir);
    std::fs::create_dir_all(&staging)
        .map_err(|e| CliError::failure(format!("cannot create {}: {e}", staging.display())))?;
    let written = write_files(client, &manifest, &staging, signature.bundle.as_ref());
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&staging);
        return Err(e);
    }
    if dir.exists() {
        let _ = std::fs::remove_dir(dir);
    }
    std::fs::rename(&staging, dir).map_err(|e| {
        let _ = std::fs::remove_dir_all(&staging);
        CliError::failure(format!("cannot move the export into {}: {e}", dir.display()))
    })?;
    let files: Vec<String> = manifest.files().into_iter().map(|(name, _)| name).collect();
    let note = match &signature.status {
        SignatureStatus::Unsigned => {
            format!("unsigned: `kiln models sign {model}@{version}` first to ship a {SIGNATURE_FILE}")
        }
        status => format!("{SIGNATURE_FILE}: {}", status.badge()),
    };
    emit(json, &signature, || {
        format!(
            "exported {model}@{version} to {}: {} ({note})",
            dir.display(),
            files.join(", ")
        )
    })?;
    Ok(0)
}

fn write_files(
    client: &Blocking,
    manifest: &kiln_core::registry::VersionManifest,
    dir: &Path,
    bundle: Option<&serde_json::Value>,
) -> Result<(), CliError> {
    for (role, digest) in &manifest.draft.blobs {
        let bytes = client.run(|c| c.blob(digest))?;
        let path = dir.join(file_name_of(role));
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| CliError::failure(format!("cannot create {}: {e}", parent.display())))?;
        }
        std::fs::write(&path, bytes).map_err(|e| CliError::failure(format!("cannot write {}: {e}", path.display())))?;
    }
    if let Some(bundle) = bundle {
        let bundle = Bundle::from_json(&bundle.to_string()).map_err(|e| CliError::failure(e.to_string()))?;
        bundle
            .write(&dir.join(SIGNATURE_FILE))
            .map_err(|e| CliError::failure(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_tell_damage_from_missing_trust() {
        let signer = Name::new("alice").expect("ok");
        let signed = SignatureStatus::Signed {
            signer: signer.clone(),
            key_hint: "ab".into(),
        };
        assert_eq!(exit_code(&signed), 0);
        let tampered = SignatureStatus::Tampered {
            signer,
            changed: vec!["model.safetensors".into()],
            missing: vec![],
            extra: vec![],
        };
        assert_eq!(exit_code(&tampered), CORRUPT);
        assert_eq!(exit_code(&SignatureStatus::Unsigned), REFUSED);
    }
}
