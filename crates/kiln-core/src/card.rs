//! Model cards in Hugging Face's format: YAML front matter (`license` as an SPDX id, or
//! `other` with `license_name`/`license_link`; `datasets`, `metrics`, `base_model`), then
//! Markdown. Every version registered gets one, written from its manifest plus what the
//! operator gives (`--license`, `--card FILE`), stored as its `card` blob (`README.md` in an
//! export) and signed with the other files.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::registry::VersionManifest;

/// Longest card text accepted (`--card`).
pub const MAX_CARD_BYTES: usize = 256 << 10;

/// A version's licence: an SPDX id (canonical case, e.g. `Apache-2.0`), or `other` with a
/// name and, optionally, where to read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct License {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// A licence or card the operator gave that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CardError(pub String);

impl License {
    /// `--license ID [--license-name NAME] [--license-link URL]`: an SPDX licence id (any
    /// case), or `other` (implied by a name) with a name.
    pub fn parse(id: Option<&str>, name: Option<&str>, link: Option<&str>) -> Result<Option<Self>, CardError> {
        let name = name.map(str::trim).filter(|n| !n.is_empty());
        let link = link.map(str::trim).filter(|l| !l.is_empty());
        let id = match (id.map(str::trim).filter(|i| !i.is_empty()), name) {
            (None, None) if link.is_some() => {
                return Err(CardError(
                    "--license-link needs --license-name (the licence's name)".into(),
                ));
            }
            (None, None) => return Ok(None),
            (None, Some(_)) => "other",
            (Some(id), _) => id,
        };
        if id.eq_ignore_ascii_case("other") {
            let name = name.ok_or_else(|| {
                CardError("--license other needs --license-name (and, best, --license-link URL)".into())
            })?;
            return Ok(Some(Self {
                id: "other".into(),
                name: Some(name.to_owned()),
                link: link.map(str::to_owned),
            }));
        }
        if name.is_some() || link.is_some() {
            return Err(CardError(format!(
                "--license-name and --license-link describe a licence that is not in SPDX's list; {id} is, so give it alone (or use --license other)"
            )));
        }
        let canonical = spdx::license_id(id)
            .map(|l| l.name)
            .or_else(|| {
                spdx::identifiers::LICENSES
                    .iter()
                    .find(|l| l.name.eq_ignore_ascii_case(id))
                    .map(|l| l.name)
            })
            .ok_or_else(|| {
                CardError(format!(
                    "{id:?} is not an SPDX licence id (e.g. Apache-2.0, MIT, CC-BY-4.0; https://spdx.org/licenses/); for another licence give --license other --license-name NAME --license-link URL"
                ))
            })?;
        Ok(Some(Self {
            id: canonical.to_owned(),
            name: None,
            link: None,
        }))
    }

    /// How a person reads it: `Apache-2.0`, or `other: ACME research licence`.
    pub fn describe(&self) -> String {
        match &self.name {
            Some(name) => format!("{}: {name}", self.id),
            None => self.id.clone(),
        }
    }
}

/// Checks card text the operator gave: it is the body; kiln writes the front matter.
pub fn check_text(text: &str) -> Result<(), CardError> {
    if text.len() > MAX_CARD_BYTES {
        return Err(CardError(format!(
            "the card text is {} bytes; the most kiln stores is {MAX_CARD_BYTES}",
            text.len()
        )));
    }
    if text.trim_start().starts_with("---") {
        return Err(CardError(
            "the card text starts with YAML front matter; give the Markdown body only — kiln writes the front matter (licence, datasets, metrics, base model) from the version".into(),
        ));
    }
    Ok(())
}

/// The card of `manifest` (whose `license` it uses), with `text` as its description.
pub fn render(manifest: &VersionManifest, text: Option<&str>) -> String {
    let draft = &manifest.draft;
    let mut out = String::from("---\n");
    if let Some(license) = &draft.license {
        // The Hub writes licence ids in lower case (`apache-2.0`).
        let _ = writeln!(out, "license: {}", yaml(&license.id.to_lowercase()));
        if let Some(name) = &license.name {
            let _ = writeln!(out, "license_name: {}", yaml(name));
        }
        if let Some(link) = &license.link {
            let _ = writeln!(out, "license_link: {}", yaml(link));
        }
    }
    out.push_str("library_name: kiln\n");
    let _ = writeln!(out, "tags:\n- kiln\n- {}", yaml(&draft.architecture.name.to_string()));
    if let Some(dataset) = &draft.dataset {
        let _ = writeln!(out, "datasets:\n- {}", yaml(&dataset.id));
    }
    // The Hub lists metric ids (`accuracy`), not which split they were measured on.
    let mut metrics: Vec<&str> = draft
        .metrics
        .keys()
        .map(|k| {
            ["test_", "val_", "train_"]
                .iter()
                .fold(k.as_str(), |n, p| n.trim_start_matches(p))
        })
        .collect();
    metrics.sort_unstable();
    metrics.dedup();
    if !metrics.is_empty() {
        out.push_str("metrics:\n");
        for name in metrics {
            let _ = writeln!(out, "- {}", yaml(name));
        }
    }
    if let Some(parent) = &draft.parent {
        let _ = writeln!(
            out,
            "base_model: {}",
            yaml(&format!("{}@{}", parent.model, parent.version))
        );
    }
    out.push_str("---\n\n");
    let _ = writeln!(out, "# {} version {}\n", manifest.model, manifest.version);
    match text.map(str::trim).filter(|t| !t.is_empty()) {
        Some(text) => {
            out.push_str(text);
            out.push_str("\n\n");
        }
        None => {
            let _ = writeln!(
                out,
                "A `{}` model registered by kiln {}.\n",
                draft.architecture.name, manifest.kiln_version
            );
        }
    }
    out.push_str("## Training\n\n");
    let _ = writeln!(
        out,
        "- Architecture: `{}` `{}`",
        draft.architecture.name, draft.architecture.config
    );
    if let Some(dataset) = &draft.dataset {
        let digest = dataset.digest.as_ref().map(|d| format!(" ({d})")).unwrap_or_default();
        let _ = writeln!(out, "- Dataset: {}{digest}", dataset.id);
    }
    if let Some(parent) = &draft.parent {
        let _ = writeln!(out, "- Fine-tuned from: {}@{}", parent.model, parent.version);
    }
    if !draft.hyperparameters.is_empty() {
        let parts: Vec<String> = draft.hyperparameters.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let _ = writeln!(out, "- Hyperparameters: {}", parts.join(", "));
    }
    if let Some(seed) = draft.seed {
        let _ = writeln!(out, "- Seed: {seed}");
    }
    if let Some(job) = &draft.job_id {
        let _ = writeln!(out, "- Job: {job}");
    }
    if let Some(source) = &draft.source {
        let _ = writeln!(out, "- Source: {source}");
    }
    if let Some(device) = &draft.device {
        let _ = writeln!(out, "- Device: {device}");
    }
    let torch = draft.libtorch_version.as_deref().unwrap_or("unknown");
    let _ = writeln!(out, "- kiln {}, libtorch {torch}", manifest.kiln_version);
    if !draft.metrics.is_empty() {
        out.push_str("\n## Evaluation\n\n| metric | value |\n| --- | --- |\n");
        for (name, value) in &draft.metrics {
            let _ = writeln!(out, "| {name} | {value:.4} |");
        }
    }
    out.push_str("\n## Licence\n\n");
    match &draft.license {
        Some(License { id, name: None, .. }) => {
            let _ = writeln!(out, "{id} (https://spdx.org/licenses/{id}.html)");
        }
        Some(License {
            name: Some(name), link, ..
        }) => {
            let _ = writeln!(
                out,
                "{name}{}",
                link.as_ref().map(|l| format!(" ({l})")).unwrap_or_default()
            );
        }
        None => out.push_str("No licence was given when this version was registered.\n"),
    }
    out
}

/// A YAML scalar: plain when it is safely plain, else a JSON (double-quoted) string, which
/// YAML reads the same.
fn yaml(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@' | '/'))
        && !value.starts_with(['-', '.', '@'])
        && !matches!(value, "true" | "false" | "null" | "yes" | "no" | "on" | "off");
    if plain && value.parse::<f64>().is_err() {
        value.to_owned()
    } else {
        serde_json::to_string(value).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spdx_ids_are_canonicalised_and_others_need_a_name() {
        let mit = License::parse(Some("mit"), None, None).expect("ok").expect("ok");
        assert_eq!(mit.id, "MIT");
        assert_eq!(
            License::parse(Some("Apache-2.0"), None, None)
                .expect("ok")
                .expect("ok")
                .id,
            "Apache-2.0"
        );
        assert!(
            License::parse(Some("not-a-licence"), None, None)
                .expect_err("refused")
                .0
                .contains("not an SPDX licence id")
        );
        assert!(
            License::parse(Some("other"), None, None)
                .expect_err("refused")
                .0
                .contains("--license-name")
        );
        let other = License::parse(None, Some("ACME research"), Some("https://acme.example/l"))
            .expect("ok")
            .expect("ok");
        assert_eq!(other.id, "other");
        assert_eq!(License::parse(None, None, None).expect("ok"), None);
        assert!(License::parse(Some("MIT"), Some("x"), None).is_err());
    }

    #[test]
    fn card_text_with_front_matter_is_refused() {
        assert!(check_text("---\nlicense: mit\n---\nhi").is_err());
        assert!(check_text("# My model\n").is_ok());
    }

    #[test]
    fn yaml_scalars_quote_what_yaml_would_misread() {
        assert_eq!(yaml("apache-2.0"), "apache-2.0");
        assert_eq!(yaml("yes"), "\"yes\"");
        assert_eq!(yaml("1.0"), "\"1.0\"");
        assert_eq!(yaml("a: b"), "\"a: b\"");
    }
}
