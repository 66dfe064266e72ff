//! The study spec (`kiln tune study.toml`): read from TOML, every problem refused before
//! anything runs with the line it is on and how to fix it.
//!
//! ```toml
//! name = "fmnist-mlp-lr"
//! base = { arch = "mlp", data = "fashion-mnist", epochs = 6, limit = 20000 }
//! objective = { metric = "val_accuracy", direction = "maximize" }
//! budget = { trials = 24, concurrent = 2, wall_clock = "30m" }
//! sampler = "tpe"           # grid | random | tpe
//! seed = 7
//! early_stop = "asha"       # none | median | asha, or { rule = "asha", min_epochs = 1, reduction_factor = 3 }
//! [params]
//! lr = { log_uniform = [1e-4, 3e-2] }
//! batch_size = { choice = [32, 64, 128] }
//! "config.hidden" = { choice = [[128], [256, 128]] }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use super::{Direction, Objective, ObjectiveMetric, Params};
use crate::jobs::TrainRequest;
use crate::kinds::Arch;
use crate::names::Name;

/// Training options a study may tune (besides `config.<field>`).
pub const TUNABLE: &[&str] = &["epochs", "batch_size", "lr", "optimizer", "schedule", "seed", "limit"];

/// Keys `base` may set.
const BASE_KEYS: &[&str] = &[
    "arch",
    "config",
    "data",
    "data_path",
    "epochs",
    "batch_size",
    "lr",
    "optimizer",
    "schedule",
    "seed",
    "device",
    "limit",
    "model",
    "from",
];

/// How trials' parameters are proposed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SamplerKind {
    /// Every combination of the `choice` parameters, in order.
    Grid,
    /// Independent draws, seeded.
    Random,
    /// Tree-structured Parzen estimator (random for the first trials).
    #[default]
    Tpe,
}
crate::kinds::word_enum!(SamplerKind, "sampler");

/// When a trial is stopped early on its per-epoch validation figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "lowercase")]
pub enum EarlyStop {
    /// Every trial runs all its epochs.
    #[default]
    None,
    /// Stop a trial whose best value so far is worse than the median of other trials' at the
    /// same epoch, once `startup_trials` trials have finished and after `min_epochs`.
    Median { min_epochs: usize, startup_trials: usize },
    /// Asynchronous successive halving: at rungs `min_epochs * reduction_factor^k`, a trial
    /// goes on only if it is in the top `1/reduction_factor` of the trials that reached the rung.
    Asha { min_epochs: usize, reduction_factor: usize },
}

impl std::fmt::Display for EarlyStop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Median {
                min_epochs,
                startup_trials,
            } => write!(f, "median (min_epochs {min_epochs}, startup_trials {startup_trials})"),
            Self::Asha {
                min_epochs,
                reduction_factor,
            } => write!(f, "asha (min_epochs {min_epochs}, reduction_factor {reduction_factor})"),
        }
    }
}

/// The most trials a budget may ask for.
pub const MAX_TRIALS: usize = 10_000;

/// How much a study may spend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Budget {
    pub trials: usize,
    pub concurrent: usize,
    /// No trial starts after this many seconds (running ones finish).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_clock_secs: Option<u64>,
    /// Trials sharing one GPU when its memory allows (1: one trial per GPU).
    pub per_gpu: usize,
}

/// A parameter's search space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamSpace {
    Uniform {
        low: f64,
        high: f64,
    },
    LogUniform {
        low: f64,
        high: f64,
    },
    /// Whole numbers from `low` to `high`, both included.
    Int {
        low: i64,
        high: i64,
    },
    Choice(Vec<serde_json::Value>),
}

/// One tuned parameter and the spec line it was given on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParamDef {
    /// `lr`, `batch_size`, …, or `config.<field>`.
    pub name: String,
    pub line: usize,
    pub space: ParamSpace,
}

/// A validated study spec.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudySpec {
    pub name: Name,
    /// Every trial's training request before its parameters are applied.
    pub base: TrainRequest,
    pub objective: Objective,
    pub budget: Budget,
    pub sampler: SamplerKind,
    pub seed: u64,
    pub early_stop: EarlyStop,
    /// Sorted by name.
    pub params: Vec<ParamDef>,
    /// Spec line of each top-level key and parameter, for the daemon's own checks.
    #[serde(default)]
    pub lines: BTreeMap<String, usize>,
}

/// A spec that cannot run: where and why, with the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(" line {l}")).unwrap_or_default())]
pub struct SpecError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    name: Spanned<String>,
    base: Spanned<toml::Table>,
    objective: Spanned<RawObjective>,
    budget: Spanned<RawBudget>,
    #[serde(default)]
    sampler: Option<Spanned<String>>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    early_stop: Option<Spanned<toml::Value>>,
    #[serde(default)]
    params: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawObjective {
    metric: Spanned<String>,
    #[serde(default)]
    direction: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBudget {
    trials: usize,
    #[serde(default = "one")]
    concurrent: usize,
    #[serde(default)]
    wall_clock: Option<Spanned<String>>,
    #[serde(default = "one")]
    per_gpu: usize,
}

fn one() -> usize {
    1
}

/// Reads and checks a spec; `file` names it in errors.
pub fn parse(source: &str, file: &str) -> Result<StudySpec, SpecError> {
    let at = |span: std::ops::Range<usize>, message: String| SpecError {
        file: file.to_owned(),
        line: Some(line_of(source, span.start)),
        message,
    };
    let raw: RawSpec = toml::from_str(source).map_err(|e| SpecError {
        file: file.to_owned(),
        line: e.span().map(|s| line_of(source, s.start)),
        message: e.message().trim().to_owned() + fix_for_toml(e.message()),
    })?;
    let mut lines = BTreeMap::new();
    let name = Name::new(raw.name.get_ref()).map_err(|e| at(raw.name.span(), format!("name: {e}")))?;
    lines.insert("name".to_owned(), line_of(source, raw.name.span().start));
    lines.insert("base".to_owned(), line_of(source, raw.base.span().start));
    let base = base_request(raw.base.get_ref(), &name).map_err(|m| at(raw.base.span(), m))?;
    let objective = objective(&raw.objective, base.arch, &at)?;
    let budget = budget(&raw.budget, &at)?;
    let sampler = match &raw.sampler {
        Some(s) => s.get_ref().parse().map_err(|e| at(s.span(), format!("sampler: {e}")))?,
        None => SamplerKind::default(),
    };
    let early_stop = match &raw.early_stop {
        Some(v) => early_stop(v.get_ref(), base.epochs).map_err(|m| at(v.span(), m))?,
        None => EarlyStop::None,
    };
    let mut params = Vec::new();
    for (key, value) in &raw.params {
        let line = line_of(source, key.span().start);
        let def = param(key.get_ref(), value.get_ref(), &base)
            .map_err(|m| at(key.span(), format!("parameter `{}`: {m}", key.get_ref())))?;
        lines.insert(format!("params.{}", key.get_ref()), line);
        params.push(ParamDef {
            name: key.get_ref().clone(),
            line,
            space: def,
        });
    }
    if params.is_empty() {
        return Err(SpecError {
            file: file.to_owned(),
            line: None,
            message: "no [params] to tune: add e.g. `lr = { log_uniform = [1e-4, 1e-2] }` under [params]".into(),
        });
    }
    if sampler == SamplerKind::Grid
        && let Some(p) = params
            .iter()
            .find(|p| matches!(p.space, ParamSpace::Uniform { .. } | ParamSpace::LogUniform { .. }))
    {
        return Err(SpecError {
            file: file.to_owned(),
            line: Some(p.line),
            message: format!(
                "parameter `{}`: the grid sampler needs values to enumerate; give `{{ choice = [...] }}` or \
                 `{{ int = [low, high] }}`, or use sampler = \"random\" or \"tpe\"",
                p.name
            ),
        });
    }
    Ok(StudySpec {
        name,
        base,
        objective,
        budget,
        sampler,
        seed: raw.seed.unwrap_or(0),
        early_stop,
        params,
        lines,
    })
}

/// 1-based line of byte `offset`.
fn line_of(source: &str, offset: usize) -> usize {
    source.as_bytes()[..offset.min(source.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn fix_for_toml(message: &str) -> &'static str {
    if message.contains("missing field") {
        "; see `kiln tune --help` for a complete example"
    } else {
        ""
    }
}

/// The trials' common training request: `base` with the study's name as the model.
fn base_request(table: &toml::Table, name: &Name) -> Result<TrainRequest, String> {
    if let Some(key) = table.keys().find(|k| !BASE_KEYS.contains(&k.as_str())) {
        return Err(format!(
            "base: unknown training option `{key}`: base takes {}",
            BASE_KEYS.join(", ")
        ));
    }
    let mut json = serde_json::to_value(table).map_err(|e| format!("base: {e}"))?;
    if let Some(object) = json.as_object_mut() {
        object
            .entry("model")
            .or_insert_with(|| serde_json::Value::String(name.to_string()));
    }
    let request: TrainRequest = serde_json::from_value(json).map_err(|e| format!("base: {e}"))?;
    check_request(&request).map_err(|m| format!("base: {m}"))?;
    Ok(request)
}

/// The limits the daemon checks on every job, and a config that is a table.
fn check_request(r: &TrainRequest) -> Result<(), String> {
    r.check_limits()?;
    if !r.config.is_object() {
        return Err(format!(
            "config must be a table of {} settings, e.g. {{ hidden = [64] }}",
            r.arch
        ));
    }
    Ok(())
}

fn objective(
    raw: &Spanned<RawObjective>,
    arch: Arch,
    at: &impl Fn(std::ops::Range<usize>, String) -> SpecError,
) -> Result<Objective, SpecError> {
    let metric_span = raw.get_ref().metric.span();
    let metric: ObjectiveMetric = raw
        .get_ref()
        .metric
        .get_ref()
        .parse()
        .map_err(|e| at(metric_span.clone(), format!("objective: {e}")))?;
    match (arch, metric) {
        (Arch::Mf, ObjectiveMetric::ValAccuracy) => {
            return Err(at(
                metric_span,
                "objective: mf predicts ratings and has no accuracy; use val_rmse or val_loss".into(),
            ));
        }
        (Arch::Mlp | Arch::Cnn | Arch::Rnn, ObjectiveMetric::ValRmse) => {
            return Err(at(
                metric_span,
                format!("objective: {arch} is a classifier and has no rmse; use val_accuracy or val_loss"),
            ));
        }
        _ => {}
    }
    let natural = match metric {
        ObjectiveMetric::ValAccuracy => Direction::Maximize,
        ObjectiveMetric::ValRmse | ObjectiveMetric::ValLoss => Direction::Minimize,
    };
    let direction = match &raw.get_ref().direction {
        Some(d) => {
            let direction: Direction = d
                .get_ref()
                .parse()
                .map_err(|e| at(d.span(), format!("objective: {e}")))?;
            if direction != natural {
                return Err(at(
                    d.span(),
                    format!(
                        "objective: {metric} is better when it is {}; set direction = \"{natural}\"",
                        if natural == Direction::Maximize {
                            "higher"
                        } else {
                            "lower"
                        }
                    ),
                ));
            }
            direction
        }
        None => natural,
    };
    Ok(Objective { metric, direction })
}

fn budget(
    raw: &Spanned<RawBudget>,
    at: &impl Fn(std::ops::Range<usize>, String) -> SpecError,
) -> Result<Budget, SpecError> {
    let b = raw.get_ref();
    if b.trials == 0 || b.trials > MAX_TRIALS {
        return Err(at(
            raw.span(),
            format!("budget: trials must be 1 to {MAX_TRIALS}, not {}", b.trials),
        ));
    }
    if b.concurrent == 0 || b.per_gpu == 0 {
        return Err(at(
            raw.span(),
            "budget: concurrent and per_gpu must be at least 1".into(),
        ));
    }
    let wall_clock_secs = match &b.wall_clock {
        Some(w) => {
            let d = humantime::parse_duration(w.get_ref()).map_err(|e| {
                at(
                    w.span(),
                    format!(
                        "budget: wall_clock \"{}\": {e}; write e.g. \"30m\" or \"2h\"",
                        w.get_ref()
                    ),
                )
            })?;
            if d.as_secs() == 0 {
                return Err(at(w.span(), "budget: wall_clock must be at least 1s".into()));
            }
            Some(d.as_secs())
        }
        None => None,
    };
    Ok(Budget {
        trials: b.trials,
        concurrent: b.concurrent,
        wall_clock_secs,
        per_gpu: b.per_gpu,
    })
}

fn early_stop(value: &toml::Value, epochs: usize) -> Result<EarlyStop, String> {
    const FIX: &str =
        "write \"none\", \"median\", \"asha\", or e.g. { rule = \"asha\", min_epochs = 1, reduction_factor = 3 }";
    let (rule, table) = match value {
        toml::Value::String(rule) => (rule.as_str(), toml::Table::new()),
        toml::Value::Table(t) => match t.get("rule").and_then(toml::Value::as_str) {
            Some(rule) => (rule, t.clone()),
            None => return Err(format!("early_stop: the table needs a rule; {FIX}")),
        },
        other => return Err(format!("early_stop: {other} is not a rule; {FIX}")),
    };
    let allowed: &[&str] = match rule {
        "none" => &["rule"],
        "median" => &["rule", "min_epochs", "startup_trials"],
        "asha" => &["rule", "min_epochs", "reduction_factor"],
        other => return Err(format!("early_stop: unknown rule '{other}'; {FIX}")),
    };
    if let Some(key) = table.keys().find(|k| !allowed.contains(&k.as_str())) {
        return Err(format!(
            "early_stop: {rule} takes no `{key}`; it takes {}",
            allowed[1..].join(", ")
        ));
    }
    let number = |key: &str, default: usize| -> Result<usize, String> {
        match table.get(key) {
            None => Ok(default),
            Some(toml::Value::Integer(n)) if *n >= 0 => Ok(*n as usize),
            Some(other) => Err(format!("early_stop: {key} must be a whole number, not {other}")),
        }
    };
    let stop = match rule {
        "none" => EarlyStop::None,
        "median" => EarlyStop::Median {
            min_epochs: number("min_epochs", 1)?,
            startup_trials: number("startup_trials", 3)?,
        },
        _ => EarlyStop::Asha {
            min_epochs: number("min_epochs", 1)?,
            reduction_factor: number("reduction_factor", 3)?,
        },
    };
    match stop {
        EarlyStop::Median { min_epochs, .. } | EarlyStop::Asha { min_epochs, .. }
            if min_epochs == 0 || min_epochs >= epochs =>
        {
            Err(format!(
                "early_stop: min_epochs must be 1 to {} (below base.epochs = {epochs}), not {min_epochs}",
                epochs.saturating_sub(1)
            ))
        }
        EarlyStop::Asha { reduction_factor, .. } if reduction_factor < 2 => Err(format!(
            "early_stop: reduction_factor must be at least 2, not {reduction_factor}"
        )),
        stop => Ok(stop),
    }
}

/// Reads one `[params]` entry and checks every value it can take against the base request.
fn param(name: &str, value: &toml::Value, base: &TrainRequest) -> Result<ParamSpace, String> {
    let known = TUNABLE.contains(&name)
        || name
            .strip_prefix("config.")
            .is_some_and(|f| !f.is_empty() && !f.contains('.'));
    if !known {
        return Err(format!(
            "unknown parameter: tune one of {}, or an architecture field as \"config.<field>\"",
            TUNABLE.join(", ")
        ));
    }
    let toml::Value::Table(table) = value else {
        return Err(SPACE_FIX.into());
    };
    let mut entries = table.iter();
    let (Some((kind, bounds)), None) = (entries.next(), entries.next()) else {
        return Err(SPACE_FIX.into());
    };
    let space = match kind.as_str() {
        "choice" => {
            let values = bounds
                .as_array()
                .ok_or("choice takes a list of values, e.g. { choice = [32, 64] }")?;
            if values.is_empty() {
                return Err("the choice list is empty; give at least one value".into());
            }
            let values: Vec<serde_json::Value> = values
                .iter()
                .map(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            ParamSpace::Choice(values)
        }
        "int" => {
            let (low, high) = pair(bounds, |v| v.as_integer().map(|n| n as f64))?;
            if low > high {
                return Err(format!("the range [{low}, {high}] is inverted; write [{high}, {low}]"));
            }
            ParamSpace::Int {
                low: low as i64,
                high: high as i64,
            }
        }
        "uniform" | "log_uniform" => {
            let (low, high) = pair(bounds, |v| v.as_float().or_else(|| v.as_integer().map(|n| n as f64)))?;
            if !(low.is_finite() && high.is_finite()) {
                return Err("the range's ends must be finite numbers".into());
            }
            if low >= high {
                return Err(if low == high {
                    format!("the range [{low}, {high}] is empty; give two different ends or use {{ choice = [{low}] }}")
                } else {
                    format!("the range [{low}, {high}] is inverted; write [{high}, {low}]")
                });
            }
            if kind == "log_uniform" {
                if low <= 0.0 {
                    return Err(format!(
                        "a log range must stay above 0, not start at {low}; start it at a small positive value such as 1e-6, or use uniform"
                    ));
                }
                ParamSpace::LogUniform { low, high }
            } else {
                ParamSpace::Uniform { low, high }
            }
        }
        _ => return Err(SPACE_FIX.into()),
    };
    for value in corner_values(&space) {
        apply(base, &Params::from([(name.to_owned(), value.clone())]))
            .map_err(|e| format!("the value {value} does not fit: {e}"))?;
    }
    Ok(space)
}

const SPACE_FIX: &str = "give its space as one of { choice = [...] }, { uniform = [low, high] }, \
{ log_uniform = [low, high] }, { int = [low, high] }";

fn pair(bounds: &toml::Value, number: impl Fn(&toml::Value) -> Option<f64>) -> Result<(f64, f64), String> {
    match bounds.as_array().map(Vec::as_slice) {
        Some([a, b]) => match (number(a), number(b)) {
            (Some(a), Some(b)) => Ok((a, b)),
            _ => Err(format!("the range {bounds} must hold two numbers")),
        },
        _ => Err(format!("a range is two numbers [low, high], not {bounds}")),
    }
}

/// Values that stand for the whole space when checking it fits the request: every choice,
/// and a range's two ends.
pub fn corner_values(space: &ParamSpace) -> Vec<serde_json::Value> {
    match space {
        ParamSpace::Choice(values) => values.clone(),
        ParamSpace::Int { low, high } => vec![(*low).into(), (*high).into()],
        ParamSpace::Uniform { low, high } | ParamSpace::LogUniform { low, high } => vec![(*low).into(), (*high).into()],
    }
}

/// `base` with `params` applied: `config.<field>` into the architecture config, the rest as
/// training options. Fails when a value does not fit its option's type or limits.
pub fn apply(base: &TrainRequest, params: &Params) -> Result<TrainRequest, String> {
    let mut json = serde_json::to_value(base).map_err(|e| e.to_string())?;
    for (name, value) in params {
        let target = match name.strip_prefix("config.") {
            Some(field) => json
                .get_mut("config")
                .and_then(|c| c.as_object_mut())
                .map(|c| (c, field)),
            None => json.as_object_mut().map(|o| (o, name.as_str())),
        };
        let Some((object, key)) = target else {
            return Err(format!("cannot set {name}"));
        };
        object.insert(key.to_owned(), value.clone());
    }
    let request: TrainRequest = serde_json::from_value(json).map_err(|e| e.to_string())?;
    check_request(&request)?;
    Ok(request)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ISSUE_EXAMPLE: &str = r#"name = "fmnist-mlp-lr"
base = { arch = "mlp", data = "fashion-mnist", epochs = 6, limit = 20000 }
objective = { metric = "val_accuracy", direction = "maximize" }   # or val_rmse / minimize
budget = { trials = 24, concurrent = 2, wall_clock = "30m" }
sampler = "tpe"            # grid | random | tpe; seed = 7
early_stop = "asha"        # none | median | asha (min_epochs, reduction factor)
[params]
lr = { log_uniform = [1e-4, 3e-2] }
batch_size = { choice = [32, 64, 128] }
optimizer = { choice = ["adam", "adamw", "sgd"] }
"config.hidden" = { choice = [[128], [256, 128], [512, 256]] }
"#;

    fn error_of(source: &str) -> SpecError {
        match parse(source, "s.toml") {
            Ok(spec) => panic!("accepted: {spec:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_issue_example_reads_with_its_defaults() {
        let spec = parse(ISSUE_EXAMPLE, "s.toml").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(spec.name.as_str(), "fmnist-mlp-lr");
        assert_eq!(
            spec.base.model.as_str(),
            "fmnist-mlp-lr",
            "the model defaults to the study's name"
        );
        assert_eq!((spec.base.epochs, spec.base.limit), (6, Some(20000)));
        assert_eq!(spec.budget.wall_clock_secs, Some(1800));
        assert_eq!(spec.sampler, SamplerKind::Tpe);
        assert_eq!(
            spec.early_stop,
            EarlyStop::Asha {
                min_epochs: 1,
                reduction_factor: 3
            }
        );
        let names: Vec<&str> = spec.params.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["batch_size", "config.hidden", "lr", "optimizer"]);
        assert_eq!(spec.params.iter().find(|p| p.name == "lr").map(|p| p.line), Some(8));
    }

    #[test]
    fn parameters_apply_to_the_request_and_its_config() {
        let spec = parse(ISSUE_EXAMPLE, "s.toml").unwrap_or_else(|e| panic!("{e}"));
        let params = Params::from([
            ("lr".to_owned(), serde_json::json!(0.01)),
            ("optimizer".to_owned(), serde_json::json!("sgd")),
            ("config.hidden".to_owned(), serde_json::json!([64])),
        ]);
        let request = apply(&spec.base, &params).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(request.lr, 0.01);
        assert_eq!(request.optimizer, crate::kinds::Optimizer::Sgd);
        assert_eq!(request.config["hidden"], serde_json::json!([64]));
    }

    #[test]
    fn bad_specs_name_their_line_and_the_fix() {
        let cases = [
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "lr = { log_uniform = [0.0, 3e-2] }",
                8,
                "above 0",
            ),
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "lr = { uniform = [3e-2, 1e-4] }",
                8,
                "inverted",
            ),
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "lr = { uniform = [1e-2, 1e-2] }",
                8,
                "empty",
            ),
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "lr = { choice = [] }",
                8,
                "empty",
            ),
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "momentum = { choice = [0.9] }",
                8,
                "unknown parameter",
            ),
            (
                "lr = { log_uniform = [1e-4, 3e-2] }",
                "seed = { uniform = [1.5, 2.5] }",
                8,
                "does not fit",
            ),
            ("sampler = \"tpe\"", "sampler = \"bayes\"", 5, "unknown sampler"),
            ("early_stop = \"asha\"", "early_stop = \"hyperband\"", 6, "unknown rule"),
            (
                "early_stop = \"asha\"",
                "early_stop = { rule = \"asha\", min_epochs = 6 }",
                6,
                "min_epochs",
            ),
            ("budget = {", "budget = { trials = 0 } #", 4, "trials must be"),
            (
                "objective = {",
                "objective = { metric = \"val_rmse\" } #",
                3,
                "classifier",
            ),
            (
                "base = {",
                "base = { arch = \"mlp\", data = \"fashion-mnist\", epoch = 3 } #",
                2,
                "unknown training option",
            ),
        ];
        for (find, replace, line, why) in cases {
            let source: String = ISSUE_EXAMPLE
                .lines()
                .map(|l| {
                    if l.starts_with(find) {
                        replace.to_owned()
                    } else {
                        l.to_owned()
                    }
                })
                .collect::<Vec<_>>()
                .join("\n");
            let e = error_of(&source);
            assert_eq!(e.line, Some(line), "{replace}: {e}");
            assert!(e.to_string().contains(why), "{replace}: {e}");
            assert!(e.to_string().starts_with(&format!("s.toml line {line}: ")), "{e}");
        }
        let grid = ISSUE_EXAMPLE.replace("sampler = \"tpe\"", "sampler = \"grid\"");
        let e = error_of(&grid);
        assert!(e.to_string().contains("grid sampler needs values"), "{e}");
        let syntax = error_of("name = \"x\"\nbase = {");
        assert_eq!(syntax.line, Some(2), "{syntax}");
    }
}
