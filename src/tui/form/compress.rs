//! The optimize form (`o` on a version): prune or quantize it into a child version. The
//! fields start at the CLI's defaults (`kiln prune` / `kiln quantize`), only those of the
//! chosen method are shown, and the request is checked with the core's own
//! [`CompressRequest::check`] before anything is sent.
//!
//! ```text
//! ┌ Optimize: prune or quantize ─────────────┐
//! │ version          fmnist-cnn@3             │
//! │ method           ◀ prune ▶                │
//! │ sparsity         0.5                      │
//! │ structured       no                       │
//! │ finetune epochs  1                        │
//! │ sample limit     all                      │
//! └───────────────────────────────────────────┘
//! ```

use std::fmt;
use std::str::FromStr;

use clap::ValueEnum;
use kiln_core::compression::{CompressRequest, Method, Precision, PruneSettings, QuantizeSettings};

use super::{Field, FormKind, LaunchForm, NO_LIMIT, all};

/// The sparsity the form starts at: half the weights.
const DEFAULT_SPARSITY: f64 = 0.5;
/// The `structured` choice, off first.
const NO_YES: [&str; 2] = ["no", "yes"];
/// Fields only pruning reads.
const PRUNE_ONLY: [&str; 3] = ["sparsity", "structured", "finetune epochs"];
/// Fields only quantizing reads.
const QUANTIZE_ONLY: [&str; 1] = ["precision"];
/// The field focused when the form opens (the version is already filled in).
const FIRST_FOCUS: usize = 1;

/// The two ways to compress, as the form offers them (the core's [`Method`] carries the
/// settings of each).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum MethodKind {
    /// Remove the smallest weights (or whole units and filters), then fine-tune.
    Prune,
    /// Store the weights in a lower precision.
    Quantize,
}

impl fmt::Display for MethodKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.to_possible_value() {
            Some(value) => f.write_str(value.get_name()),
            None => Ok(()),
        }
    }
}

impl FromStr for MethodKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as ValueEnum>::from_str(s, false).map_err(|_| format!("unknown method '{s}': prune or quantize"))
    }
}

/// The precisions a version can be quantized to (f32 is what the weights already are).
fn target_precisions() -> Vec<Precision> {
    all::<Precision>()
        .into_iter()
        .filter(|p| *p != Precision::F32)
        .collect()
}

impl LaunchForm {
    /// An optimize form for `model_ref` (`model@version`), at the CLI's defaults.
    pub fn compress(model_ref: &str) -> Self {
        let defaults = PruneSettings::new(DEFAULT_SPARSITY);
        Self {
            kind: FormKind::Compress,
            fields: vec![
                Field::text("version", model_ref),
                Field::choice("method", all::<MethodKind>(), &MethodKind::Prune),
                Field::text("sparsity", &defaults.sparsity.to_string()),
                Field::choice("structured", NO_YES, &NO_YES[usize::from(defaults.structured)]),
                Field::text("finetune epochs", &defaults.finetune_epochs.to_string()),
                Field::choice("precision", target_precisions(), &Precision::Int8),
                Field::text("sample limit", NO_LIMIT),
            ],
            focus: FIRST_FOCUS,
            error: None,
            name_edited: true,
        }
    }

    /// Whether the field called `label` applies to the chosen method.
    pub(super) fn compress_applies(&self, label: &str) -> bool {
        match self.chosen::<MethodKind>("method") {
            Ok(MethodKind::Prune) => !QUANTIZE_ONLY.contains(&label),
            Ok(MethodKind::Quantize) => !PRUNE_ONLY.contains(&label),
            Err(_) => true,
        }
    }

    /// The compression to submit, checked as the CLI checks it.
    pub(super) fn compress_request(&self) -> Result<CompressRequest, String> {
        let method = match self.chosen::<MethodKind>("method")? {
            MethodKind::Prune => Method::Prune(self.prune_settings()?),
            MethodKind::Quantize => Method::Quantize(QuantizeSettings {
                precision: self.chosen("precision")?,
            }),
        };
        let mut request = CompressRequest::new(self.reference()?, method);
        request.limit = self.limit()?;
        request.check()?;
        Ok(request)
    }

    fn prune_settings(&self) -> Result<PruneSettings, String> {
        let text = self.value("sparsity").trim();
        let sparsity = text
            .parse::<f64>()
            .map_err(|_| format!("sparsity must be a number strictly between 0 and 1, not '{text}'"))?;
        let mut settings = PruneSettings::new(sparsity);
        settings.structured = self.value("structured") == NO_YES[1];
        settings.finetune_epochs = self.count("finetune epochs")?;
        Ok(settings)
    }

    /// A whole number that may be 0.
    fn count(&self, label: &str) -> Result<usize, String> {
        let text = self.value(label).trim();
        text.parse()
            .map_err(|_| format!("{label} must be a whole number (0 or more), not '{text}'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kiln_core::jobs::JobRequest;

    fn compress(form: &LaunchForm) -> Result<CompressRequest, String> {
        match form.request()? {
            JobRequest::Compress(c) => Ok(c),
            other => Err(format!("not a compression: {other:?}")),
        }
    }

    fn focus(form: &mut LaunchForm, label: &str) {
        form.focus = form.fields.iter().position(|f| f.label == label).unwrap_or(0);
    }

    fn retype(form: &mut LaunchForm, label: &str, text: &str) {
        focus(form, label);
        while !form.value(label).is_empty() {
            form.backspace();
        }
        text.chars().for_each(|c| form.type_char(c));
    }

    #[test]
    fn the_defaults_are_the_clis_and_build_a_prune_request() {
        let form = LaunchForm::compress("fmnist-cnn@3");
        let request = compress(&form).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.reference.to_string(), "fmnist-cnn@3");
        assert_eq!(request.method, Method::Prune(PruneSettings::new(0.5)));
        assert_eq!((request.limit, request.model, request.data), (None, None, None));
        let shown: Vec<&str> = form.shown_fields().map(|(_, f)| f.label).collect();
        assert_eq!(
            shown,
            [
                "version",
                "method",
                "sparsity",
                "structured",
                "finetune epochs",
                "sample limit"
            ]
        );
    }

    #[test]
    fn quantizing_shows_the_precision_and_skips_the_pruning_fields() {
        let mut form = LaunchForm::compress("fmnist-cnn@3");
        assert_eq!(form.fields[form.focus].label, "method");
        form.cycle(1);
        form.move_focus(1);
        assert_eq!(
            form.fields[form.focus].label, "precision",
            "focus skips the hidden fields"
        );
        form.move_focus(-1);
        assert_eq!(form.fields[form.focus].label, "method");
        let options = match &form.fields[5].value {
            super::super::FieldValue::Choice { options, .. } => options.clone(),
            other => panic!("precision is not a choice: {other:?}"),
        };
        assert_eq!(options, ["bf16", "fp16", "int8"]);
        let request = compress(&form).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            request.method,
            Method::Quantize(QuantizeSettings {
                precision: Precision::Int8
            })
        );
    }

    #[test]
    fn settings_are_checked_before_anything_is_sent() {
        let mut form = LaunchForm::compress("fmnist-cnn@3");
        retype(&mut form, "sparsity", "1.5");
        let err = form.request().err().unwrap_or_default();
        assert!(err.contains("strictly between 0 and 1"), "{err}");
        retype(&mut form, "sparsity", "half");
        let err = form.request().err().unwrap_or_default();
        assert_eq!(err, "sparsity must be a number strictly between 0 and 1, not 'half'");
        retype(&mut form, "sparsity", "0.8");
        retype(&mut form, "finetune epochs", "0");
        retype(&mut form, "sample limit", "2000");
        focus(&mut form, "structured");
        form.cycle(1);
        let request = compress(&form).unwrap_or_else(|e| panic!("{e}"));
        let Method::Prune(settings) = &request.method else {
            panic!("not a pruning: {request:?}");
        };
        assert_eq!(
            (settings.sparsity, settings.structured, settings.finetune_epochs),
            (0.8, true, 0)
        );
        assert_eq!(request.limit, Some(2000));
        retype(&mut form, "sample limit", "0");
        assert_eq!(
            form.request().err().as_deref(),
            Some("sample limit must be a positive number, not '0', or all")
        );
    }
}
