//! The launch form: a training job (architecture, dataset, hyperparameters with defaults)
//! or an evaluation of a version. [`LaunchForm::body`] is the one place that maps the form
//! to the JSON the daemon's `POST /api/v1/jobs` takes.
//!
//! ```text
//! ┌ Launch training ─────────────────────────┐
//! │ architecture   ◀ cnn ▶                    │
//! │ dataset        ◀ fashion-mnist ▶          │
//! │ epochs         2_                         │
//! │ sample limit   all                        │
//! │ …                                         │
//! │ enter launch · esc cancel · ←/→ choose    │
//! └───────────────────────────────────────────┘
//! ```

use serde_json::{Value, json};

/// Architectures the daemon's zoo builds.
pub const ARCHS: [&str; 4] = ["mlp", "cnn", "rnn", "mf"];
/// Built-in datasets.
pub const DATASETS: [&str; 3] = ["fashion-mnist", "fortunes", "ratings-synth"];
const OPTIMIZERS: [&str; 3] = ["adam", "adamw", "sgd"];
/// What the sample-limit field says when every training sample is used.
const NO_LIMIT: &str = "all";

/// Training or evaluation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Train,
    Eval,
}

/// One field's value.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Choice { options: Vec<String>, index: usize },
    Text(String),
}

/// One labelled field.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub label: &'static str,
    pub value: FieldValue,
}

impl Field {
    fn choice(label: &'static str, options: &[&str], selected: &str) -> Self {
        let index = options.iter().position(|o| *o == selected).unwrap_or(0);
        let options = options.iter().map(|s| (*s).to_owned()).collect();
        Self {
            label,
            value: FieldValue::Choice { options, index },
        }
    }

    fn text(label: &'static str, value: &str) -> Self {
        Self {
            label,
            value: FieldValue::Text(value.to_owned()),
        }
    }

    /// The value as text.
    pub fn text_value(&self) -> &str {
        match &self.value {
            FieldValue::Choice { options, index } => options.get(*index).map_or("", String::as_str),
            FieldValue::Text(s) => s,
        }
    }
}

/// The form's state.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchForm {
    pub kind: FormKind,
    pub fields: Vec<Field>,
    pub focus: usize,
    pub error: Option<String>,
    name_edited: bool,
}

/// The dataset an architecture trains on by default.
pub fn default_dataset(arch: &str) -> &'static str {
    match arch {
        "rnn" => "fortunes",
        "mf" => "ratings-synth",
        _ => "fashion-mnist",
    }
}

/// The default model name for an architecture and dataset: `fmnist-cnn`.
pub fn default_model_name(arch: &str, data: &str) -> String {
    let short = match data {
        "fashion-mnist" => "fmnist",
        "ratings-synth" => "ratings",
        other => other,
    };
    format!("{short}-{arch}")
}

impl LaunchForm {
    /// A training form with kiln's defaults for `arch`.
    pub fn train(arch: &str) -> Self {
        let data = default_dataset(arch);
        Self {
            kind: FormKind::Train,
            fields: vec![
                Field::choice("architecture", &ARCHS, arch),
                Field::choice("dataset", &DATASETS, data),
                Field::text("epochs", "2"),
                Field::text("sample limit", NO_LIMIT),
                Field::text("batch size", "64"),
                Field::text("learning rate", "0.001"),
                Field::choice("optimizer", &OPTIMIZERS, "adam"),
                Field::text("model name", &default_model_name(arch, data)),
            ],
            focus: 0,
            error: None,
            name_edited: false,
        }
    }

    /// An evaluation form for `model_ref` (`model@version`).
    pub fn eval(model_ref: &str, dataset: &str) -> Self {
        Self {
            kind: FormKind::Eval,
            fields: vec![
                Field::text("version", model_ref),
                Field::choice("dataset", &DATASETS, dataset),
            ],
            focus: 0,
            error: None,
            name_edited: true,
        }
    }

    /// The dialog title.
    pub fn title(&self) -> &'static str {
        match self.kind {
            FormKind::Train => "Launch training",
            FormKind::Eval => "Launch evaluation",
        }
    }

    fn value(&self, label: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map_or("", Field::text_value)
    }

    /// Moves the focus by `delta` fields, wrapping.
    pub fn move_focus(&mut self, delta: isize) {
        let n = self.fields.len() as isize;
        self.focus = ((self.focus as isize + delta).rem_euclid(n)) as usize;
    }

    /// Cycles the focused choice by `delta`; an architecture change re-derives the defaults.
    pub fn cycle(&mut self, delta: isize) {
        let Some(Field {
            label,
            value: FieldValue::Choice { options, index },
        }) = self.fields.get_mut(self.focus)
        else {
            return;
        };
        let n = options.len() as isize;
        *index = ((*index as isize + delta).rem_euclid(n)) as usize;
        let label = *label;
        if label == "architecture" {
            let arch = self.value("architecture").to_owned();
            self.set_choice("dataset", default_dataset(&arch));
        }
        if matches!(label, "architecture" | "dataset") && !self.name_edited {
            let name = default_model_name(self.value("architecture"), self.value("dataset"));
            self.set_text("model name", &name);
        }
    }

    fn set_choice(&mut self, label: &str, selected: &str) {
        if let Some(FieldValue::Choice { options, index }) =
            self.fields.iter_mut().find(|f| f.label == label).map(|f| &mut f.value)
        {
            *index = options.iter().position(|o| o == selected).unwrap_or(*index);
        }
    }

    fn set_text(&mut self, label: &str, text: &str) {
        if let Some(FieldValue::Text(s)) = self.fields.iter_mut().find(|f| f.label == label).map(|f| &mut f.value) {
            *s = text.to_owned();
        }
    }

    /// Types a character into the focused text field.
    pub fn type_char(&mut self, c: char) {
        let focus_label = self.fields.get(self.focus).map(|f| f.label);
        if let Some(Field {
            value: FieldValue::Text(s),
            ..
        }) = self.fields.get_mut(self.focus)
        {
            s.push(c);
            self.name_edited |= focus_label == Some("model name");
        }
    }

    /// Deletes the last character of the focused text field.
    pub fn backspace(&mut self) {
        if let Some(Field {
            value: FieldValue::Text(s),
            ..
        }) = self.fields.get_mut(self.focus)
        {
            s.pop();
        }
    }

    /// The `POST /api/v1/jobs` body, or what is wrong with the form.
    pub fn body(&self) -> Result<Value, String> {
        match self.kind {
            FormKind::Train => self.train_body(),
            FormKind::Eval => {
                let model_ref = self.value("version").trim();
                if !model_ref.contains('@') {
                    return Err("version must look like model@3".into());
                }
                Ok(json!({ "kind": "eval", "reference": model_ref, "data": self.value("dataset") }))
            }
        }
    }

    fn train_body(&self) -> Result<Value, String> {
        let number = |label: &str| -> Result<f64, String> {
            let text = self.value(label).trim();
            match text.parse::<f64>() {
                Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
                _ => Err(format!("{label} must be a positive number, not '{text}'")),
            }
        };
        let whole = |label: &str| -> Result<u64, String> {
            let v = number(label)?;
            (v.fract() == 0.0)
                .then_some(v as u64)
                .ok_or_else(|| format!("{label} must be a whole number"))
        };
        let model = self.value("model name").trim();
        if kiln_core::names::Name::new(model).is_err() {
            return Err(format!("model name '{model}' must match [a-z0-9][a-z0-9._-]{{0,63}}"));
        }
        let limit = match self.value("sample limit").trim() {
            "" | NO_LIMIT => None,
            _ => Some(whole("sample limit").map_err(|e| format!("{e}, or {NO_LIMIT}"))?),
        };
        let mut body = json!({
            "arch": self.value("architecture"),
            "data": self.value("dataset"),
            "epochs": whole("epochs")?,
            "batch_size": whole("batch size")?,
            "lr": number("learning rate")?,
            "optimizer": self.value("optimizer"),
            "seed": 42,
            "model": model,
        });
        if let Some(limit) = limit {
            body["limit"] = json!(limit);
        }
        Ok(body)
    }
}

/// The first-run job: a small CNN on Fashion-MNIST with the defaults.
pub fn first_run_body() -> Value {
    LaunchForm::train("cnn")
        .body()
        .unwrap_or_else(|_| json!({ "arch": "cnn", "data": "fashion-mnist" }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_limit_caps_the_training_set() {
        let mut form = LaunchForm::train("mlp");
        form.focus = 3;
        assert_eq!(form.fields[3].label, "sample limit");
        for _ in 0..NO_LIMIT.len() {
            form.backspace();
        }
        assert_eq!(
            form.body().ok().and_then(|b| b.get("limit").cloned()),
            None,
            "empty: no limit"
        );
        "6000".chars().for_each(|c| form.type_char(c));
        assert_eq!(form.body().ok().map(|b| b["limit"].clone()), Some(json!(6000)));
        form.type_char('.');
        form.type_char('5');
        assert_eq!(
            form.body().err().as_deref(),
            Some("sample limit must be a whole number, or all")
        );
    }

    #[test]
    fn defaults_follow_the_architecture_until_the_name_is_edited() {
        let mut form = LaunchForm::train("cnn");
        assert_eq!(form.value("model name"), "fmnist-cnn");
        form.cycle(1); // cnn -> rnn
        assert_eq!(form.value("dataset"), "fortunes");
        assert_eq!(form.value("model name"), "fortunes-rnn");
        form.focus = 7;
        form.type_char('2');
        form.focus = 0;
        form.cycle(1); // rnn -> mf
        assert_eq!(form.value("model name"), "fortunes-rnn2");
    }

    #[test]
    fn body_validates_and_maps_fields() {
        let body = first_run_body();
        assert_eq!(body["arch"], "cnn");
        assert_eq!(body["data"], "fashion-mnist");
        assert_eq!(body["epochs"], 2);
        assert_eq!(body["batch_size"], 64);
        assert_eq!(body["model"], "fmnist-cnn");
        let mut form = LaunchForm::train("mlp");
        form.focus = 2;
        form.backspace();
        form.type_char('x');
        assert_eq!(
            form.body().err().as_deref(),
            Some("epochs must be a positive number, not 'x'")
        );
        assert_eq!(body.get("limit"), None, "'all' sends no limit");
        let eval = LaunchForm::eval("fmnist-cnn@3", "fashion-mnist").body();
        assert_eq!(eval.ok().map(|b| b["reference"].clone()), Some(json!("fmnist-cnn@3")));
    }
}
