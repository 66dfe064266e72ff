//! `kilnd import`: external weights become a new registry version.
//!
//! The weights are loaded strictly into the architecture built from `--config`, a forward
//! pass proves they compute, and then they are re-saved as safetensors (burn layout) into the
//! blob store, so every stored version loads the same way whatever it was imported from.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use burn::tensor::Device;
use kiln_core::card::License;
use kiln_core::kinds::Arch;
use kiln_core::names::{Digest, Name};
use kiln_core::registry::signature::verify_with_trusted;
use kiln_core::registry::{
    Extras, ModelRecord, Registry, VersionDraft, VersionManifest, WriteLock, now_rfc3339, role_of_file,
};
use kiln_core::signing::folder::default_ignore_paths;
use kiln_core::signing::statement::Serialization;
use kiln_core::signing::walk::{IgnoreSet, hash_folder};
use kiln_core::signing::{Bundle, SIGNATURE_FILE, verify_folder};

use kiln_engine::device::LIBTORCH_VERSION;
use kiln_engine::model::ArchConfig;
use kiln_engine::weights::{self, WeightsFormat};

/// Arguments of `kilnd import`.
#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// Model to add the version to (created when new).
    #[arg(long)]
    pub model: Name,
    /// Weights file (.safetensors, .bpk burn record, .pt/.pth PyTorch state dict), or a model
    /// folder (`model.safetensors`, `config.json`, …, maybe `model.sig`) kept byte for byte.
    #[arg(long)]
    pub weights: PathBuf,
    /// Architecture (required for a weights file).
    #[arg(long)]
    pub arch: Option<Arch>,
    /// The architecture's JSON config, as a file path or inline JSON (with --arch).
    #[arg(long)]
    pub config: Option<String>,
    /// The .safetensors file was written by PyTorch (transpose Linear weights).
    #[arg(long)]
    pub pytorch_layout: bool,
    /// Task recorded when the model is new, e.g. image-classification.
    #[arg(long, default_value = "")]
    pub task: String,
    /// Description recorded when the model is new.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Refuse a folder unless its `model.sig` was made by a trusted key over exactly its files.
    #[arg(long)]
    pub require_signature: bool,
    /// The licence, as an SPDX id or `other` (with --license-name).
    #[arg(long)]
    pub license: Option<String>,
    #[arg(long)]
    pub license_name: Option<String>,
    #[arg(long)]
    pub license_link: Option<String>,
    /// Read the model card's description (Markdown) from stdin.
    #[arg(long)]
    pub card_stdin: bool,
}

/// A user mistake (exit code 2) as opposed to a failure of the machine.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

fn bad(message: impl Into<String>) -> anyhow::Error {
    BadInput(message.into()).into()
}

/// Imports the weights (or model folder) and returns the new version's manifest.
pub fn run(home: &std::path::Path, args: &ImportArgs) -> anyhow::Result<VersionManifest> {
    let license = License::parse(
        args.license.as_deref(),
        args.license_name.as_deref(),
        args.license_link.as_deref(),
    )
    .map_err(|e| bad(e.0))?;
    let card = match args.card_stdin {
        true => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .context("cannot read the card from stdin")?;
            kiln_core::card::check_text(&text).map_err(|e| bad(e.0))?;
            Some(text)
        }
        false => None,
    };
    if args.weights.is_dir() {
        return import_folder(home, args, license, card);
    }
    if args.require_signature {
        return Err(bad(format!(
            "--require-signature needs a model folder with its model.sig; {} is a single file",
            args.weights.display()
        )));
    }
    let (Some(arch), Some(config)) = (args.arch, args.config.as_deref()) else {
        return Err(bad(
            "importing a weights file needs --arch and --config (a model folder's config.json gives them instead)",
        ));
    };
    let arch = ArchConfig::from_json(arch, read_config(config)?).map_err(|e| bad(e.to_string()))?;
    if !args.weights.is_file() {
        return Err(bad(format!("weights file {} does not exist", args.weights.display())));
    }
    let format = WeightsFormat::detect(&args.weights, args.pytorch_layout).map_err(|e| bad(e.to_string()))?;
    let device = Device::libtorch();
    let mut model = arch.init(&device);
    weights::load_file(&mut model, &args.weights, format).map_err(|e| bad(e.to_string()))?;
    model
        .smoke_forward(&device)
        .map_err(|e| bad(format!("{}: {e}", args.weights.display())))?;
    let bytes = weights::to_safetensors(&model)?;

    let registry = Registry::open(home)?;
    let digest = registry.blobs().put_bytes(&bytes)?;
    let lock = registry.lock()?;
    ensure_model(&registry, &lock, args)?;
    let draft = draft(
        arch.architecture(),
        [("weights".to_owned(), digest)].into(),
        source_of(&args.weights),
        license,
    );
    let extras = Extras {
        card: card.as_deref(),
        ..Extras::default()
    };
    Ok(registry.add_version(&lock, &args.model, draft, &extras)?)
}

fn ensure_model(registry: &Registry, lock: &WriteLock, args: &ImportArgs) -> anyhow::Result<()> {
    let record = ModelRecord {
        name: args.model.clone(),
        task: args.task.clone(),
        description: args.description.clone(),
        created_at: now_rfc3339(),
        owner: None,
        license: None,
    };
    registry.ensure_model(lock, record)?;
    Ok(())
}

fn source_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!("import:{name}")
}

fn draft(
    architecture: kiln_core::registry::Architecture,
    blobs: BTreeMap<String, Digest>,
    source: String,
    license: Option<License>,
) -> VersionDraft {
    VersionDraft {
        architecture,
        dataset: None,
        hyperparameters: Default::default(),
        seed: None,
        metrics: Default::default(),
        parent: None,
        job_id: None,
        blobs,
        device: Some("cpu".to_owned()),
        source: Some(source),
        libtorch_version: Some(LIBTORCH_VERSION.to_owned()),
        study: None,
        compression: None,
        license,
        checkpoint: None,
    }
}

/// A model folder: every file becomes a blob under its name (so its signature still holds
/// for the stored version), `model.safetensors` must load into `config.json`'s architecture,
/// and a `model.sig` made by a trusted key over exactly these files is kept as the
/// version's signature.
fn import_folder(
    home: &Path,
    args: &ImportArgs,
    license: Option<License>,
    card: Option<String>,
) -> anyhow::Result<VersionManifest> {
    let dir = &args.weights;
    let signature = check_folder_signature(dir, args.require_signature)?;
    let ignore = default_ignore_paths(Some(SIGNATURE_FILE));
    let listing = hash_folder(dir, &Serialization::files(ignore.clone()), &IgnoreSet::new(&ignore))
        .map_err(|e| bad(e.to_string()))?;
    let names: Vec<&str> = listing.files().iter().map(|f| f.name.as_str()).collect();
    if !names.contains(&"model.safetensors") {
        return Err(bad(format!(
            "{} has no model.safetensors (files: {}); a model folder holds its weights as model.safetensors",
            dir.display(),
            names.join(", ")
        )));
    }
    if card.is_some() && names.contains(&"README.md") {
        return Err(bad(format!(
            "{} already has a model card (README.md); edit it there instead of passing --card",
            dir.display()
        )));
    }
    let architecture = match (names.contains(&"config.json"), args.arch, args.config.as_deref()) {
        (true, None, None) => {
            let text = std::fs::read(dir.join("config.json")).context("cannot read config.json")?;
            serde_json::from_slice::<kiln_core::registry::Architecture>(&text).map_err(|e| {
                bad(format!(
                    "{}/config.json is not a kiln architecture ({e}); it should read {{\"name\": \"cnn\", \"config\": {{…}}}}, or pass --arch and --config",
                    dir.display()
                ))
            })?
        }
        (true, _, _) => {
            return Err(bad(format!(
                "{} has a config.json; drop --arch/--config (the folder's own config is what was signed)",
                dir.display()
            )));
        }
        (false, Some(arch), Some(config)) => ArchConfig::from_json(arch, read_config(config)?)
            .map_err(|e| bad(e.to_string()))?
            .architecture(),
        (false, _, _) => {
            return Err(bad(format!(
                "{} has no config.json; pass --arch and --config to say what model.safetensors holds",
                dir.display()
            )));
        }
    };
    let arch = ArchConfig::from_json(architecture.name, architecture.config.clone()).map_err(|e| bad(e.to_string()))?;
    let weights_path = dir.join("model.safetensors");
    let device = Device::libtorch();
    let mut model = arch.init(&device);
    weights::load_file(&mut model, &weights_path, WeightsFormat::Safetensors)
        .map_err(|e| bad(format!("{}: {e}", weights_path.display())))?;
    model
        .smoke_forward(&device)
        .map_err(|e| bad(format!("{}: {e}", weights_path.display())))?;

    let registry = Registry::open(home)?;
    let mut blobs = BTreeMap::new();
    for name in &names {
        let path = dir.join(name);
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        blobs.insert(role_of_file(name), registry.blobs().put_bytes(&bytes)?);
    }
    let lock = registry.lock()?;
    ensure_model(&registry, &lock, args)?;
    let draft = draft(architecture, blobs, source_of(dir), license);
    let extras = Extras {
        card: card.as_deref(),
        // A signed folder's version is exactly its files: nothing is added to them.
        exact: signature.is_some(),
        ..Extras::default()
    };
    let manifest = registry.add_version(&lock, &args.model, draft, &extras)?;
    if let Some((bundle, signer)) = signature {
        registry.write_signature(&lock, &manifest.model, manifest.version, &bundle)?;
        eprintln!(
            "kilnd import: {}@{} keeps its signature by {signer}",
            manifest.model, manifest.version
        );
    }
    Ok(manifest)
}

/// The folder's signature when it verifies with a trusted key over exactly its files. A
/// signature that does not match the files refuses the import whatever the flags; one by an
/// unknown key, or none, refuses it only with `--require-signature`.
fn check_folder_signature(dir: &Path, required: bool) -> anyhow::Result<Option<(Bundle, Name)>> {
    let path = dir.join(SIGNATURE_FILE);
    if !path.is_file() {
        if required {
            return Err(bad(format!(
                "{} has no {SIGNATURE_FILE}, and --require-signature refuses unsigned models; sign the folder (`model_signing sign key`, or export it with `kiln models export`) or import without the flag",
                dir.display()
            )));
        }
        return Ok(None);
    }
    let bundle = Bundle::read(&path).map_err(|e| bad(e.to_string()))?;
    let (keys, trust_dir) = crate::signing::trusted().map_err(bad)?;
    let (signer, key, _) = match verify_with_trusted(&bundle, &keys, &trust_dir) {
        Ok(found) => found,
        Err(status) if required => return Err(bad(format!("{}: {}", path.display(), status.describe()))),
        Err(status) => {
            eprintln!(
                "kilnd import: the signature is not kept ({}); the version is unsigned",
                status.describe()
            );
            return Ok(None);
        }
    };
    verify_folder(dir, &path, &key).map_err(|e| bad(format!("{}: {e}", dir.display())))?;
    Ok(Some((bundle, signer)))
}

fn read_config(config: &str) -> anyhow::Result<serde_json::Value> {
    let trimmed = config.trim_start();
    let text = if trimmed.starts_with('{') {
        config.to_owned()
    } else {
        std::fs::read_to_string(config).with_context(|| format!("cannot read config file {config}"))?
    };
    serde_json::from_str(&text).map_err(|e| anyhow!(BadInput(format!("config {config} is not valid JSON: {e}"))))
}
