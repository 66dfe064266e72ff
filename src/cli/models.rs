//! `kiln models …`: list, show, import, alias, remove and verify registry entries, all
//! through kilnd's control API.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::daemon::connect;
use super::error::{CliError, NOT_FOUND};
use super::output::{emit, warn_problems};
use super::signing;
use super::table;
use kiln_core::api::{ImportRequest, ModelDetail, ModelList, VerifyReport, VersionList, VersionManifest, VersionView};
use kiln_core::client::{Blocking, Client};
use kiln_core::kinds::Arch;
use kiln_core::names::{ModelRef, Name, Selector};

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List models (or, with --versions, every version), reporting unreadable entries.
    Ls {
        /// List every version instead of one line per model.
        #[arg(long)]
        versions: bool,
        /// Only versions matching all these words (model, architecture, dataset, alias, task).
        #[arg(long, requires = "versions")]
        filter: Option<String>,
    },
    /// Show a model (`<model>`) or one version (`<model>@<version|alias>`).
    Show { reference: ModelRef },
    /// Import external weights (safetensors, burn record .bpk, PyTorch .pt), or a model folder
    /// (`kiln models export`, or one `model_signing sign key` signed), as a new version.
    Import {
        model: Name,
        /// A weights file, or a model folder: its files are kept byte for byte and its
        /// model.sig, when a trusted key made it, becomes the version's signature.
        weights: PathBuf,
        /// Architecture: mlp, cnn, rnn or mf (a folder's config.json gives it).
        #[arg(long, requires = "config")]
        arch: Option<Arch>,
        /// JSON config of the architecture (a file, or inline JSON).
        #[arg(long, requires = "arch")]
        config: Option<String>,
        /// Refuse a folder unless a trusted key signed exactly its files (model.sig).
        #[arg(long)]
        require_signature: bool,
        #[command(flatten)]
        card: super::signing::CardArgs,
        /// The .safetensors file was written by PyTorch (Linear weights are transposed).
        #[arg(long)]
        pytorch_layout: bool,
        /// Task recorded when the model is new, e.g. image-classification.
        #[arg(long, default_value = "")]
        task: String,
    },
    /// Point an alias (e.g. production) at a version: `kiln models alias m@3 production`.
    Alias { reference: ModelRef, alias: Name },
    /// Remove an alias from a model.
    Unalias { model: Name, alias: Name },
    /// Remove a version; refuses one an alias points at unless --force, and always the version
    /// being served (roll back or deploy another version first).
    Rm {
        reference: ModelRef,
        /// Also remove the aliases pointing at the version.
        #[arg(long)]
        force: bool,
    },
    /// Sign a version with your key (`kiln keys gen`): an OpenSSF model-signing signature
    /// over its files, stored beside it.
    Sign {
        reference: ModelRef,
        /// The key to sign with [default: `key` under [signing] in config.toml, or your only key].
        #[arg(long)]
        key: Option<Name>,
    },
    /// Check a version's signature and files (exit 0: signed by a trusted key, every file
    /// intact; 4: a file changed or the signature is damaged; 5: unsigned or untrusted
    /// signer). Without a version: re-hash every blob, check every manifest and every
    /// signature (exit 4 when anything is damaged).
    Verify { reference: Option<ModelRef> },
    /// Write a version's files (model.safetensors, config.json, README.md, …) and its
    /// signature (model.sig) into a new folder, which `model_signing verify key` accepts.
    Export {
        reference: ModelRef,
        /// The folder to create (must not exist, or be empty).
        #[arg(long)]
        dir: PathBuf,
    },
}

pub fn run(cmd: &ModelsCommand, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    match cmd {
        ModelsCommand::Ls { versions: false, .. } => list_models(&client, json),
        ModelsCommand::Ls { versions: true, filter } => list_versions(&client, filter.as_deref(), json),
        ModelsCommand::Show { reference } => show(&client, reference, json),
        ModelsCommand::Import {
            model,
            weights,
            arch,
            config,
            pytorch_layout,
            task,
            require_signature,
            card,
        } => {
            let (license, card) = card.resolve()?;
            let request = ImportRequest {
                weights: weights_path(weights)?,
                arch: *arch,
                config: config.as_deref().map(read_config).transpose()?,
                pytorch_layout: *pytorch_layout,
                task: task.clone(),
                description: String::new(),
                require_signature: *require_signature,
                license,
                card,
            };
            import(&client, model, &request, json)
        }
        ModelsCommand::Alias { reference, alias } => set_alias(&client, reference, alias, json),
        ModelsCommand::Unalias { model, alias } => {
            let removed = client.run(|c| c.remove_alias(model, alias))?;
            let was = removed.was;
            emit(json, &removed, || {
                format!("removed alias {model}@{alias} (was version {was})")
            })?;
            Ok(0)
        }
        ModelsCommand::Rm { reference, force } => remove(&client, reference, *force, json),
        ModelsCommand::Verify { reference: None } => signing::verify_all(&client, json, verify_text),
        ModelsCommand::Verify {
            reference: Some(reference),
        } => signing::verify_version(&client, reference, json),
        ModelsCommand::Sign { reference, key } => signing::sign(&client, reference, key.as_ref(), json),
        ModelsCommand::Export { reference, dir } => signing::export(&client, reference, dir, json),
    }
}

fn list_models(client: &Blocking, json: bool) -> Result<u8, CliError> {
    let list = client.run(|c| c.models())?;
    if !json {
        warn_problems(&list.problems);
    }
    emit(json, &list, || models_table(&list))?;
    Ok(0)
}

fn models_table(list: &ModelList) -> String {
    if list.models.is_empty() {
        return "no models yet: `kiln models import` or `kiln train` adds one".to_owned();
    }
    let rows: Vec<Vec<String>> = list
        .models
        .iter()
        .map(|s| {
            let aliases: Vec<String> = s.aliases.iter().map(|(a, v)| format!("{a}→{v}")).collect();
            let latest = s.latest.map(|v| v.to_string()).unwrap_or_else(|| "-".into());
            vec![
                s.name.to_string(),
                s.versions.to_string(),
                latest,
                aliases.join(" "),
                s.task.clone(),
            ]
        })
        .collect();
    table::render(&["MODEL", "VERSIONS", "LATEST", "ALIASES", "TASK"], &rows)
        .trim_end()
        .to_owned()
}

fn list_versions(client: &Blocking, filter: Option<&str>, json: bool) -> Result<u8, CliError> {
    let list = client.run(|c| c.versions(filter.unwrap_or("")))?;
    if !json {
        warn_problems(&list.problems);
    }
    emit(json, &list, || versions_table(&list))?;
    Ok(0)
}

fn versions_table(list: &VersionList) -> String {
    let cells: Vec<Vec<String>> = list
        .versions
        .iter()
        .map(|r| {
            let metric = r
                .metric
                .as_ref()
                .map(|(k, v)| format!("{k}={v:.4}"))
                .unwrap_or_default();
            vec![
                format!("{}@{}", r.model, r.version),
                r.architecture.to_string(),
                r.dataset.clone().unwrap_or_default(),
                r.aliases.join(" "),
                metric,
                r.created_at.clone(),
            ]
        })
        .collect();
    table::render(&["VERSION", "ARCH", "DATASET", "ALIASES", "METRIC", "CREATED"], &cells)
        .trim_end()
        .to_owned()
}

fn show(client: &Blocking, reference: &ModelRef, json: bool) -> Result<u8, CliError> {
    if reference.selector == Selector::Latest {
        let view = client.run(|c| c.model(&reference.model))?;
        if !json {
            warn_problems(&view.problems);
        }
        emit(json, &view, || describe_model(&view.model).trim_end().to_owned())?;
        return Ok(0);
    }
    let view = client.run(|c| c.version(&reference.model, &reference.selector))?;
    let signature = client.run(|c| c.signature(&view.version.model, view.version.version))?;
    emit(json, &view, || {
        let mut out = describe_version_view(&view);
        out.push_str(&format!("\nsignature     {}", signature.status.describe()));
        out
    })?;
    Ok(0)
}

/// A version with the aliases pointing at it and its evaluations.
fn describe_version_view(view: &VersionView) -> String {
    let mut out = describe_version(&view.version);
    if !view.aliases.is_empty() {
        let aliases: Vec<&str> = view.aliases.iter().map(Name::as_str).collect();
        out.push_str(&format!("aliases       {}\n", aliases.join(" ")));
    }
    for e in &view.evals {
        let figures: Vec<String> = e.metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        out.push_str(&format!(
            "eval          {} {} ({}) {}\n",
            e.created_at,
            e.dataset,
            e.split,
            figures.join(" ")
        ));
    }
    let m = &view.version;
    if let Some(license) = &m.draft.license {
        out.push_str(&format!("licence       {}\n", license.describe()));
    }
    let files: Vec<String> = m.files().into_iter().map(|(name, _)| name).collect();
    out.push_str(&format!("files         {}\n", files.join(" ")));
    if let Some(compression) = &m.draft.compression {
        let parent = m
            .draft
            .parent
            .as_ref()
            .map(|p| format!("{}@{}", p.model, p.version))
            .unwrap_or_else(|| "parent".into());
        out.push_str(
            "
compression   ",
        );
        out.push_str(&compression.render(&parent, &format!("{}@{}", m.model, m.version)));
    }
    out.trim_end().to_owned()
}

fn describe_model(detail: &ModelDetail) -> String {
    let r = &detail.record;
    let mut out = format!(
        "model      {}\ntask       {}\ncreated    {}\n",
        r.name, r.task, r.created_at
    );
    if !r.description.is_empty() {
        out.push_str(&format!("about      {}\n", r.description));
    }
    out.push('\n');
    let rows: Vec<Vec<String>> = detail
        .versions
        .iter()
        .map(|v| {
            let aliases: Vec<String> = detail.aliases_of(v.version).iter().map(|a| a.to_string()).collect();
            let parent = v
                .draft
                .parent
                .as_ref()
                .map(|p| format!("{}@{}", p.model, p.version))
                .unwrap_or_default();
            vec![
                v.version.to_string(),
                v.draft.architecture.name.to_string(),
                aliases.join(" "),
                parent,
                v.created_at.clone(),
            ]
        })
        .collect();
    out.push_str(&table::render(
        &["VERSION", "ARCH", "ALIASES", "PARENT", "CREATED"],
        &rows,
    ));
    out
}

fn describe_version(m: &VersionManifest) -> String {
    let d = &m.draft;
    let mut out = format!(
        "version       {}@{}\ncreated       {}\n",
        m.model, m.version, m.created_at
    );
    out.push_str(&format!(
        "architecture  {} {}\n",
        d.architecture.name, d.architecture.config
    ));
    let optional = [
        (
            "dataset",
            d.dataset.as_ref().map(|ds| {
                format!(
                    "{} {}",
                    ds.id,
                    ds.digest.as_ref().map(ToString::to_string).unwrap_or_default()
                )
            }),
        ),
        (
            "parent",
            d.parent.as_ref().map(|p| format!("{}@{}", p.model, p.version)),
        ),
        (
            "study",
            d.study
                .as_ref()
                .map(|s| format!("{} trial {} (job {}, epoch {})", s.study, s.trial, s.job, s.epoch)),
        ),
        ("seed", d.seed.map(|s| s.to_string())),
        ("job", d.job_id.clone()),
        ("device", d.device.clone()),
        ("source", d.source.clone()),
        ("libtorch", d.libtorch_version.clone()),
    ];
    for (key, value) in optional.iter().filter_map(|(k, v)| v.as_ref().map(|v| (k, v))) {
        out.push_str(&format!("{key:<14}{value}\n"));
    }
    for (key, value) in &d.hyperparameters {
        out.push_str(&format!("hparam        {key}={value}\n"));
    }
    for (key, value) in &d.metrics {
        out.push_str(&format!("metric        {key}={value:.6}\n"));
    }
    for (role, digest) in &d.blobs {
        out.push_str(&format!("blob          {role} {digest}\n"));
    }
    out
}

/// The version `reference` names, as a number or an alias; the newest when it names none.
async fn selected(client: &Client, reference: &ModelRef) -> Result<Selector, CliError> {
    if reference.selector != Selector::Latest {
        return Ok(reference.selector.clone());
    }
    let view = client.model(&reference.model).await?;
    let latest = view.model.latest().ok_or_else(|| CliError {
        code: NOT_FOUND,
        message: format!("model '{}' has no versions", reference.model),
    })?;
    Ok(Selector::Version(latest.version))
}

fn set_alias(client: &Blocking, reference: &ModelRef, alias: &Name, json: bool) -> Result<u8, CliError> {
    let model = &reference.model;
    let set = client.run(|c| async move {
        let version = selected(c, reference).await?;
        Ok::<_, CliError>(c.set_alias(model, alias, version).await?)
    })?;
    let version = set.version;
    emit(json, &set, || format!("{model}@{alias} → version {version}"))?;
    Ok(0)
}

fn remove(client: &Blocking, reference: &ModelRef, force: bool, json: bool) -> Result<u8, CliError> {
    let Selector::Version(version) = reference.selector else {
        return Err(CliError::bad_input(format!(
            "name the version to remove by number, e.g. {}@3",
            reference.model
        )));
    };
    let model = &reference.model;
    let removed = client.run(|c| c.remove_version(model, version, force))?;
    emit(json, &removed, || {
        let note = if removed.aliases_removed.is_empty() {
            String::new()
        } else {
            let names: Vec<&str> = removed.aliases_removed.iter().map(Name::as_str).collect();
            format!(" and alias {}", names.join(", "))
        };
        format!("removed {model}@{version}{note}")
    })?;
    Ok(0)
}

fn verify_text(report: &VerifyReport) -> String {
    let mut out = String::new();
    for p in &report.corrupt_blobs {
        out.push_str(&format!("CORRUPT  {}: {}\n", p.path.display(), p.reason));
    }
    for m in &report.missing_blobs {
        out.push_str(&format!("MISSING  {} needs {} blob {}\n", m.version, m.role, m.digest));
    }
    for p in &report.problems {
        out.push_str(&format!("UNREADABLE  {}: {}\n", p.path.display(), p.reason));
    }
    let bad = report.corrupt_blobs.len() + report.missing_blobs.len() + report.problems.len();
    let verdict = if bad == 0 {
        "all good".to_owned()
    } else {
        format!("{bad} problem(s)")
    };
    out.push_str(&format!("checked {} blobs: {verdict}", report.blobs_checked));
    out
}

/// The weights file as an absolute path: the daemon that reads it may run elsewhere.
fn weights_path(weights: &Path) -> Result<PathBuf, CliError> {
    std::fs::canonicalize(weights)
        .map_err(|e| CliError::bad_input(format!("weights file {} does not exist ({e})", weights.display())))
}

/// `--config`: inline JSON (starting with `{`) or the path of a JSON file.
fn read_config(config: &str) -> Result<serde_json::Value, CliError> {
    let text = if config.trim_start().starts_with('{') {
        config.to_owned()
    } else {
        std::fs::read_to_string(config)
            .map_err(|e| CliError::failure(format!("cannot read config file {config}: {e}")))?
    };
    serde_json::from_str(&text).map_err(|e| CliError::bad_input(format!("config {config} is not valid JSON: {e}")))
}

fn import(client: &Blocking, model: &Name, request: &ImportRequest, json: bool) -> Result<u8, CliError> {
    let manifest: VersionManifest = client.run(|c| c.import(model, request))?;
    emit(json, &manifest, || manifest.imported_line())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake_daemon as fake;

    #[test]
    fn a_refused_removal_surfaces_the_daemons_message_with_exit_code_5() {
        let message = r#"{"error":"m@2 is being served; deploy another version or roll back first"}"#;
        let daemon = fake::answer_once("409 Conflict", message);
        let reference: ModelRef = "m@2".parse().unwrap_or_else(|e| panic!("{e}"));
        let refused = remove(&daemon.client(), &reference, true, false).expect_err("refused");
        assert_eq!(refused.code, 5);
        assert!(refused.message.contains("m@2 is being served"), "{}", refused.message);
        assert_eq!(
            daemon.request_line(),
            "DELETE /api/v1/models/m/versions/2?force=true HTTP/1.1"
        );
    }

    #[test]
    fn config_is_inline_json_or_a_file() {
        let inline = read_config(r#" {"hidden": [8]}"#).map(|v| v["hidden"][0].clone());
        assert_eq!(inline.ok(), Some(serde_json::json!(8)));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("config.json");
        std::fs::write(&file, r#"{"classes": 3}"#).unwrap_or_else(|e| panic!("{e}"));
        let from_file = read_config(&file.to_string_lossy()).map(|v| v["classes"].clone());
        assert_eq!(from_file.ok(), Some(serde_json::json!(3)));
        assert_eq!(read_config("{").map_err(|e| e.code).err(), Some(2));
        assert_eq!(read_config("/no/such/config.json").map_err(|e| e.code).err(), Some(1));
    }

    #[test]
    fn a_relative_weights_path_becomes_absolute_and_a_missing_one_is_refused() {
        let here = weights_path(Path::new("Cargo.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert!(here.is_absolute() && here.ends_with("Cargo.toml"), "{}", here.display());
        assert_eq!(weights_path(Path::new("no-such.pt")).map_err(|e| e.code).err(), Some(2));
    }
}
