//! The launch form: a training job (architecture, dataset, hyperparameters with defaults),
//! an evaluation of a version, or its compression (`compress.rs`: prune or quantize).
//! [`LaunchForm::request`] is the one place that maps the form to the typed [`JobRequest`]
//! the daemon's `POST /api/v1/jobs` takes. The choice lists are the core's closed sets
//! ([`Arch`], [`DatasetKind::BUILT_IN`], [`Optimizer`], `Precision`).
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

use std::fmt::Display;
use std::str::FromStr;

use kiln_core::jobs::{EvalRequest, JobRequest, TrainRequest};
use kiln_core::kinds::{Arch, DataSource, DatasetKind, Optimizer};
use kiln_core::names::{ModelRef, Name};

mod compress;

/// What the sample-limit field says when every training sample is used.
const NO_LIMIT: &str = "all";
/// The architecture the first-run job and an unfocused launch form start from.
pub const FIRST_ARCH: Arch = Arch::Cnn;

/// Training, evaluation or compression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    Train,
    Eval,
    /// Prune or quantize a version into a child version (the optimize form).
    Compress,
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
    fn choice<T: Display>(label: &'static str, options: impl IntoIterator<Item = T>, selected: &T) -> Self {
        let options: Vec<String> = options.into_iter().map(|o| o.to_string()).collect();
        let selected = selected.to_string();
        let index = options.iter().position(|o| *o == selected).unwrap_or(0);
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

/// The default model name for an architecture and dataset: `fmnist-cnn`.
pub fn default_model_name(arch: Arch, data: DatasetKind) -> String {
    format!("{}-{arch}", data.short_name())
}

fn all<T: clap::ValueEnum + Clone>() -> Vec<T> {
    T::value_variants().to_vec()
}

impl LaunchForm {
    /// A training form with kiln's defaults for `arch`.
    pub fn train(arch: Arch) -> Self {
        let data = arch.default_dataset();
        Self {
            kind: FormKind::Train,
            fields: vec![
                Field::choice("architecture", all::<Arch>(), &arch),
                Field::choice("dataset", DatasetKind::BUILT_IN, &data),
                Field::text("epochs", "2"),
                Field::text("sample limit", NO_LIMIT),
                Field::text("batch size", "64"),
                Field::text("learning rate", "0.001"),
                Field::choice("optimizer", all::<Optimizer>(), &Optimizer::Adam),
                Field::text("model name", &default_model_name(arch, data)),
            ],
            focus: 0,
            error: None,
            name_edited: false,
        }
    }

    /// An evaluation form for `model_ref` (`model@version`).
    pub fn eval(model_ref: &str, dataset: DatasetKind) -> Self {
        Self {
            kind: FormKind::Eval,
            fields: vec![
                Field::text("version", model_ref),
                Field::choice("dataset", DatasetKind::BUILT_IN, &dataset),
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
            FormKind::Compress => "Optimize: prune or quantize",
        }
    }

    /// What the job does, in a word (`launching training…`).
    pub fn what(&self) -> &'static str {
        match self.kind {
            FormKind::Train => "training",
            FormKind::Eval => "evaluation",
            FormKind::Compress => "compression",
        }
    }

    /// Whether field `index` applies to what the form now describes (the optimize form hides
    /// the pruning fields while quantizing, and the precision while pruning).
    pub fn shown(&self, index: usize) -> bool {
        match (self.kind, self.fields.get(index)) {
            (FormKind::Compress, Some(field)) => self.compress_applies(field.label),
            (_, field) => field.is_some(),
        }
    }

    /// The fields shown, with their indexes.
    pub fn shown_fields(&self) -> impl Iterator<Item = (usize, &Field)> {
        self.fields.iter().enumerate().filter(|(i, _)| self.shown(*i))
    }

    fn value(&self, label: &str) -> &str {
        self.fields
            .iter()
            .find(|f| f.label == label)
            .map_or("", Field::text_value)
    }

    /// A choice field's value as the closed set it was built from.
    fn chosen<T: FromStr<Err: Display>>(&self, label: &str) -> Result<T, String> {
        self.value(label).parse().map_err(|e: T::Err| e.to_string())
    }

    /// Moves the focus by `delta` shown fields, wrapping.
    pub fn move_focus(&mut self, delta: isize) {
        let n = self.fields.len() as isize;
        for _ in 0..delta.unsigned_abs() {
            for _ in 0..n {
                self.focus = ((self.focus as isize + delta.signum()).rem_euclid(n)) as usize;
                if self.shown(self.focus) {
                    break;
                }
            }
        }
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
        let Ok(arch) = self.chosen::<Arch>("architecture") else {
            return;
        };
        if label == "architecture" {
            self.set_choice("dataset", &arch.default_dataset().to_string());
        }
        if matches!(label, "architecture" | "dataset")
            && !self.name_edited
            && let Ok(data) = self.chosen::<DatasetKind>("dataset")
        {
            self.set_text("model name", &default_model_name(arch, data));
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

    /// The job to submit, or what is wrong with the form.
    pub fn request(&self) -> Result<JobRequest, String> {
        match self.kind {
            FormKind::Train => self.train_request().map(JobRequest::Train),
            FormKind::Eval => self.eval_request().map(JobRequest::Eval),
            FormKind::Compress => self.compress_request().map(JobRequest::Compress),
        }
    }

    fn data(&self) -> Result<DataSource, String> {
        let kind = self.chosen::<DatasetKind>("dataset")?;
        DataSource::built_in(kind).ok_or_else(|| format!("{kind} is not a built-in dataset"))
    }

    /// The `version` field as a `model@version` reference.
    fn reference(&self) -> Result<ModelRef, String> {
        let model_ref = self.value("version").trim();
        if !model_ref.contains('@') {
            return Err("version must look like model@3".into());
        }
        model_ref.parse::<ModelRef>().map_err(|e| e.to_string())
    }

    fn eval_request(&self) -> Result<EvalRequest, String> {
        Ok(EvalRequest {
            reference: self.reference()?,
            data: self.data()?,
            data_path: None,
            limit: None,
            split: None,
        })
    }

    fn number(&self, label: &str) -> Result<f64, String> {
        let text = self.value(label).trim();
        match text.parse::<f64>() {
            Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
            _ => Err(format!("{label} must be a positive number, not '{text}'")),
        }
    }

    fn whole(&self, label: &str) -> Result<usize, String> {
        let v = self.number(label)?;
        (v.fract() == 0.0 && v <= usize::MAX as f64)
            .then_some(v as usize)
            .ok_or_else(|| format!("{label} must be a whole number"))
    }

    /// The `sample limit` field: `all` (or empty) for no limit.
    fn limit(&self) -> Result<Option<usize>, String> {
        Ok(match self.value("sample limit").trim() {
            "" | NO_LIMIT => None,
            _ => Some(self.whole("sample limit").map_err(|e| format!("{e}, or {NO_LIMIT}"))?),
        })
    }

    fn train_request(&self) -> Result<TrainRequest, String> {
        let model = self.value("model name").trim();
        let model =
            Name::new(model).map_err(|_| format!("model name '{model}' must match [a-z0-9][a-z0-9._-]{{0,63}}"))?;
        let limit = self.limit()?;
        let mut request = TrainRequest::new(self.chosen("architecture")?, self.data()?, model);
        request.epochs = self.whole("epochs")?;
        request.batch_size = self.whole("batch size")?;
        request.lr = self.number("learning rate")?;
        request.optimizer = self.chosen("optimizer")?;
        request.limit = limit;
        Ok(request)
    }
}

/// The first-run job: a small CNN on Fashion-MNIST with the form's defaults.
pub fn first_run_request() -> Result<JobRequest, String> {
    LaunchForm::train(FIRST_ARCH).request()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train(form: &LaunchForm) -> Result<TrainRequest, String> {
        match form.request()? {
            JobRequest::Train(t) => Ok(t),
            other => Err(format!("not a training request: {other:?}")),
        }
    }

    #[test]
    fn a_sample_limit_caps_the_training_set() {
        let mut form = LaunchForm::train(Arch::Mlp);
        form.focus = 3;
        assert_eq!(form.fields[3].label, "sample limit");
        for _ in 0..NO_LIMIT.len() {
            form.backspace();
        }
        assert_eq!(train(&form).map(|t| t.limit), Ok(None), "empty: no limit");
        "6000".chars().for_each(|c| form.type_char(c));
        assert_eq!(train(&form).map(|t| t.limit), Ok(Some(6000)));
        form.type_char('.');
        form.type_char('5');
        assert_eq!(
            form.request().err().as_deref(),
            Some("sample limit must be a whole number, or all")
        );
    }

    #[test]
    fn defaults_follow_the_architecture_until_the_name_is_edited() {
        let mut form = LaunchForm::train(Arch::Cnn);
        assert_eq!(form.value("model name"), "fmnist-cnn");
        form.cycle(1); // cnn -> rnn
        assert_eq!(form.value("dataset"), "fortunes");
        assert_eq!(form.value("model name"), "fortunes-rnn");
        form.focus = 7;
        form.type_char('2');
        form.focus = 0;
        form.cycle(1); // rnn -> mf
        assert_eq!(form.value("dataset"), "ratings-synth");
        assert_eq!(form.value("model name"), "fortunes-rnn2");
    }

    #[test]
    fn the_form_builds_the_train_request_it_shows() {
        let Ok(JobRequest::Train(first)) = first_run_request() else {
            panic!("the first-run form must be valid");
        };
        let mut expected = TrainRequest::new(
            Arch::Cnn,
            DataSource::FashionMnist,
            Name::new("fmnist-cnn").unwrap_or_else(|e| panic!("{e}")),
        );
        expected.epochs = 2;
        assert_eq!(first, expected, "the form's defaults, and the request's for the rest");
        assert_eq!(
            (first.batch_size, first.lr, first.optimizer, first.limit),
            (64, 1e-3, Optimizer::Adam, None)
        );

        let mut form = LaunchForm::train(Arch::Mlp);
        form.focus = 6;
        form.cycle(-1); // adam -> sgd
        assert_eq!(
            train(&form).map(|t| (t.arch, t.optimizer)),
            Ok((Arch::Mlp, Optimizer::Sgd))
        );
        form.focus = 2;
        form.backspace();
        form.type_char('x');
        assert_eq!(
            form.request().err().as_deref(),
            Some("epochs must be a positive number, not 'x'")
        );
    }

    #[test]
    fn the_eval_form_builds_an_eval_request() {
        let eval = LaunchForm::eval("fmnist-cnn@3", DatasetKind::Fortunes).request();
        let Ok(JobRequest::Eval(eval)) = eval else {
            panic!("expected an eval request, got {eval:?}");
        };
        assert_eq!(eval.reference.to_string(), "fmnist-cnn@3");
        assert_eq!(eval.data, DataSource::Fortunes { categories: Vec::new() });
        let bare = LaunchForm::eval("fmnist-cnn", DatasetKind::FashionMnist).request();
        assert_eq!(bare.err().as_deref(), Some("version must look like model@3"));
    }

    #[test]
    fn every_choice_comes_from_its_closed_set() {
        let form = LaunchForm::train(Arch::Cnn);
        let options = |label: &str| match form.fields.iter().find(|f| f.label == label).map(|f| &f.value) {
            Some(FieldValue::Choice { options, .. }) => options.clone(),
            other => panic!("{label} is not a choice: {other:?}"),
        };
        assert_eq!(options("architecture"), Arch::names());
        assert_eq!(options("dataset"), ["fashion-mnist", "fortunes", "ratings-synth"]);
        assert_eq!(options("optimizer"), Optimizer::names());
    }
}
