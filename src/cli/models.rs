//! `kiln models …`: list, show, import, alias, remove and verify registry entries.

use std::path::PathBuf;

use clap::Subcommand;
use serde_json::json;

use super::{CliError, table};
use kiln_core::home::kiln_home;
use kiln_core::names::{ModelRef, Name, Selector};
use kiln_core::registry::{Catalog, ModelDetail, ModelSummary, Problem, Registry, VersionManifest};

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
    /// Import external weights (safetensors, burn record .bpk, PyTorch .pt) as a new version.
    Import {
        model: Name,
        weights: PathBuf,
        /// Architecture: mlp, cnn, rnn or mf.
        #[arg(long)]
        arch: String,
        /// JSON config of the architecture (a file, or inline JSON).
        #[arg(long)]
        config: String,
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
    /// Remove a version; refuses one an alias points at unless --force.
    Rm {
        reference: ModelRef,
        /// Also remove the aliases pointing at the version.
        #[arg(long)]
        force: bool,
    },
    /// Re-hash every blob and check every manifest; exit code 4 when anything is damaged.
    Verify,
}

pub fn run(cmd: &ModelsCommand, json: bool) -> Result<u8, CliError> {
    let registry = Registry::open(&kiln_home()?)?;
    match cmd {
        ModelsCommand::Ls { versions: false, .. } => list_models(&registry, json),
        ModelsCommand::Ls { versions: true, filter } => list_versions(&registry, filter.as_deref(), json),
        ModelsCommand::Show { reference } => show(&registry, reference, json),
        ModelsCommand::Import {
            model,
            weights,
            arch,
            config,
            pytorch_layout,
            task,
        } => import(model, weights, arch, config, *pytorch_layout, task, json),
        ModelsCommand::Alias { reference, alias } => set_alias(&registry, reference, alias, json),
        ModelsCommand::Unalias { model, alias } => {
            let version = registry.remove_alias(&registry.lock()?, model, alias)?;
            print_done(json, json!({ "model": model, "alias": alias, "was": version }), || {
                format!("removed alias {model}@{alias} (was version {version})")
            });
            Ok(0)
        }
        ModelsCommand::Rm { reference, force } => remove(&registry, reference, *force, json),
        ModelsCommand::Verify => verify(&registry, json),
    }
}

fn print_done(json: bool, doc: serde_json::Value, text: impl FnOnce() -> String) {
    if json {
        println!("{doc}")
    } else {
        println!("{}", text())
    }
}

fn warn_problems(problems: &[Problem]) {
    for p in problems {
        let model = p
            .model
            .as_deref()
            .map(|m| format!(" of model '{m}'"))
            .unwrap_or_default();
        eprintln!(
            "kiln: warning: skipped unreadable entry{model}: {} ({})",
            p.path.display(),
            p.reason
        );
    }
}

fn list_models(registry: &Registry, json: bool) -> Result<u8, CliError> {
    let listing = registry.scan()?;
    let summaries: Vec<ModelSummary> = listing.models.iter().map(ModelSummary::from).collect();
    if json {
        println!("{}", json!({ "models": summaries, "problems": listing.problems }));
        return Ok(0);
    }
    warn_problems(&listing.problems);
    if summaries.is_empty() {
        println!("no models yet: `kiln models import` or `kiln train` adds one");
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = summaries
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
    print!(
        "{}",
        table::render(&["MODEL", "VERSIONS", "LATEST", "ALIASES", "TASK"], &rows)
    );
    Ok(0)
}

fn list_versions(registry: &Registry, filter: Option<&str>, json: bool) -> Result<u8, CliError> {
    let listing = registry.scan()?;
    let catalog = Catalog::from_listing(&listing);
    let matches = catalog.filter(filter.unwrap_or(""));
    let rows: Vec<_> = matches.iter().map(|&i| &catalog.rows()[i]).collect();
    if json {
        println!("{}", json!({ "versions": rows, "problems": listing.problems }));
        return Ok(0);
    }
    warn_problems(&listing.problems);
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let metric = r
                .metric
                .as_ref()
                .map(|(k, v)| format!("{k}={v:.4}"))
                .unwrap_or_default();
            vec![
                format!("{}@{}", r.model, r.version),
                r.architecture.clone(),
                r.dataset.clone().unwrap_or_default(),
                r.aliases.join(" "),
                metric,
                r.created_at.clone(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["VERSION", "ARCH", "DATASET", "ALIASES", "METRIC", "CREATED"], &cells)
    );
    Ok(0)
}

fn show(registry: &Registry, reference: &ModelRef, json: bool) -> Result<u8, CliError> {
    if reference.selector == Selector::Latest {
        let (detail, problems) = registry.model(&reference.model)?;
        if json {
            println!("{}", json!({ "model": detail, "problems": problems }));
        } else {
            warn_problems(&problems);
            print!("{}", describe_model(&detail));
        }
        return Ok(0);
    }
    let version = registry.resolve(reference)?;
    let manifest = registry.version(&reference.model, version)?;
    let aliases = registry.aliases(&reference.model)?;
    let pointing: Vec<&Name> = aliases.iter().filter(|(_, v)| **v == version).map(|(a, _)| a).collect();
    let evals = registry.evals(&reference.model, version)?;
    if json {
        println!(
            "{}",
            json!({ "version": manifest, "aliases": pointing, "evals": evals })
        );
        return Ok(0);
    }
    print!("{}", describe_version(&manifest));
    if !pointing.is_empty() {
        println!(
            "aliases       {}",
            pointing.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(" ")
        );
    }
    for e in &evals {
        let figures: Vec<String> = e.metrics.iter().map(|(k, v)| format!("{k}={v:.4}")).collect();
        println!(
            "eval          {} {} ({}) {}",
            e.created_at,
            e.dataset,
            e.split,
            figures.join(" ")
        );
    }
    Ok(0)
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
                v.draft.architecture.name.clone(),
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

fn set_alias(registry: &Registry, reference: &ModelRef, alias: &Name, json: bool) -> Result<u8, CliError> {
    let version = registry.resolve(reference)?;
    let model = &reference.model;
    registry.set_alias(&registry.lock()?, model, alias, version)?;
    print_done(
        json,
        json!({ "model": model, "alias": alias, "version": version }),
        || format!("{model}@{alias} → version {version}"),
    );
    Ok(0)
}

fn remove(registry: &Registry, reference: &ModelRef, force: bool, json: bool) -> Result<u8, CliError> {
    let Selector::Version(version) = reference.selector else {
        return Err(CliError {
            code: 2,
            message: format!("name the version to remove by number, e.g. {}@3", reference.model),
        });
    };
    let model = &reference.model;
    let dropped = registry.remove_version(&registry.lock()?, model, version, force)?;
    print_done(
        json,
        json!({ "model": model, "removed": version, "aliases_removed": dropped }),
        || {
            let note = if dropped.is_empty() {
                String::new()
            } else {
                format!(
                    " and alias {}",
                    dropped.iter().map(Name::as_str).collect::<Vec<_>>().join(", ")
                )
            };
            format!("removed {model}@{version}{note}")
        },
    );
    Ok(0)
}

fn verify(registry: &Registry, json: bool) -> Result<u8, CliError> {
    let (checked, blob_problems) = registry.blobs().verify_all()?;
    let listing = registry.scan()?;
    let mut missing = Vec::new();
    for v in listing.models.iter().flat_map(|m| &m.versions) {
        for (role, digest) in &v.draft.blobs {
            if !registry.blobs().contains(digest) {
                missing
                    .push(json!({ "version": format!("{}@{}", v.model, v.version), "role": role, "digest": digest }));
            }
        }
    }
    let bad = blob_problems.len() + missing.len() + listing.problems.len();
    if json {
        let blobs: Vec<_> = blob_problems
            .iter()
            .map(|p| json!({ "path": p.path, "reason": p.reason }))
            .collect();
        println!(
            "{}",
            json!({ "blobs_checked": checked, "corrupt_blobs": blobs, "missing_blobs": missing, "problems": listing.problems, "ok": bad == 0 })
        );
    } else {
        for p in &blob_problems {
            println!("CORRUPT  {}: {}", p.path.display(), p.reason);
        }
        for m in &missing {
            println!("MISSING  {} needs {} blob {}", m["version"], m["role"], m["digest"]);
        }
        for p in &listing.problems {
            println!("UNREADABLE  {}: {}", p.path.display(), p.reason);
        }
        println!(
            "checked {checked} blobs: {}",
            if bad == 0 {
                "all good".to_owned()
            } else {
                format!("{bad} problem(s)")
            }
        );
    }
    Ok(if bad == 0 { 0 } else { 4 })
}

fn import(
    model: &Name,
    weights: &PathBuf,
    arch: &str,
    config: &str,
    pytorch_layout: bool,
    task: &str,
    json: bool,
) -> Result<u8, CliError> {
    let mut cmd = super::train::kilnd_command()?;
    cmd.arg("import")
        .arg("--model")
        .arg(model.as_str())
        .arg("--weights")
        .arg(weights);
    cmd.args(["--arch", arch, "--config", config, "--task", task]);
    if pytorch_layout {
        cmd.arg("--pytorch-layout");
    }
    if json {
        cmd.arg("--json");
    }
    super::train::run_passthrough(cmd)
}
