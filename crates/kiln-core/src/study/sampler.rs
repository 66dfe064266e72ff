//! Parameter proposal for a study's trials: the grid in nested-loop order, seeded random
//! draws, and a tree-structured Parzen estimator (Optuna-style, one parameter at a time) that
//! learns from ended trials.
//!
//! Every proposal is a pure function of the spec, the trial number and the trials so far, so
//! a restarted daemon proposes the same parameters again. Each parameter draws from its own
//! stream, `Rng::seeded(seed, number).fork(name)`: adding a parameter leaves the others' draws
//! unchanged, and TPE's random start-up draws exactly what the random sampler would.

use serde_json::Value;

use super::rng::Rng;
use super::{ParamSpace, Params, SamplerKind, StudySpec, Trial, TrialState};

/// Candidates TPE draws from the good trials' density for each parameter.
const N_EI_CANDIDATES: usize = 24;
/// The most trials TPE counts as good.
const MAX_GOOD: usize = 25;

/// How many combinations the grid has (the product of every parameter's count of values),
/// saturating at `usize::MAX`.
pub fn grid_size(spec: &StudySpec) -> usize {
    spec.params
        .iter()
        .map(|p| axis_len(&p.space))
        .fold(1, usize::saturating_mul)
}

/// How many values a parameter takes on the grid; a continuous range (which the spec refuses
/// for the grid) counts as one value, its low end.
fn axis_len(space: &ParamSpace) -> usize {
    match space {
        ParamSpace::Choice(values) => values.len().max(1),
        ParamSpace::Int { low, high } => {
            let span = i128::from(*high) - i128::from(*low) + 1;
            usize::try_from(span.max(1)).unwrap_or(usize::MAX)
        }
        ParamSpace::Uniform { .. } | ParamSpace::LogUniform { .. } => 1,
    }
}

/// The `i`-th grid value of a parameter (`i < axis_len`).
fn axis_value(space: &ParamSpace, i: usize) -> Option<Value> {
    match space {
        ParamSpace::Choice(values) => values.get(i).cloned(),
        ParamSpace::Int { low, high } => {
            let offset = i64::try_from(i).unwrap_or(i64::MAX);
            Some(Value::from(low.saturating_add(offset).min(*high)))
        }
        ParamSpace::Uniform { low, .. } | ParamSpace::LogUniform { low, .. } => Some(Value::from(*low)),
    }
}

/// The `index`-th grid combination: parameters in the spec's (name) order, the last varying
/// fastest, as in nested loops.
pub fn grid_point(spec: &StudySpec, index: usize) -> Params {
    let mut rest = index;
    let mut params = Params::new();
    for def in spec.params.iter().rev() {
        let len = axis_len(&def.space);
        if let Some(value) = axis_value(&def.space, rest % len) {
            params.insert(def.name.clone(), value);
        }
        rest /= len;
    }
    params
}

/// The parameters of trial `number` (0-based), given every trial so far.
pub fn suggest(spec: &StudySpec, number: u32, trials: &[Trial]) -> Params {
    match spec.sampler {
        SamplerKind::Grid => grid_point(spec, number as usize % grid_size(spec).max(1)),
        SamplerKind::Random => random_params(spec, number),
        SamplerKind::Tpe => tpe_params(spec, number, trials),
    }
}

/// One parameter's own random stream in trial `number`.
fn param_rng(spec: &StudySpec, number: u32, name: &str) -> Rng {
    Rng::seeded(spec.seed, u64::from(number)).fork(name)
}

/// Independent draws of every parameter from its whole space.
fn random_params(spec: &StudySpec, number: u32) -> Params {
    let mut params = Params::new();
    for def in &spec.params {
        if let Some(value) = sample_space(&def.space, &mut param_rng(spec, number, &def.name)) {
            params.insert(def.name.clone(), value);
        }
    }
    params
}

/// A uniform draw from a space (log-uniform for `LogUniform`); `None` for an empty choice.
fn sample_space(space: &ParamSpace, rng: &mut Rng) -> Option<Value> {
    Some(match space {
        ParamSpace::Uniform { low, high } => Value::from(low + rng.uniform() * (high - low)),
        ParamSpace::LogUniform { low, high } => {
            let (a, b) = (low.ln(), high.ln());
            Value::from((a + rng.uniform() * (b - a)).exp().clamp(*low, *high))
        }
        ParamSpace::Int { low, high } => Value::from(int_in(rng, *low, *high)),
        ParamSpace::Choice(values) if values.is_empty() => return None,
        ParamSpace::Choice(values) => values[rng.below(values.len())].clone(),
    })
}

/// A uniform whole number in `[low, high]`.
fn int_in(rng: &mut Rng, low: i64, high: i64) -> i64 {
    let span = i128::from(high) - i128::from(low) + 1;
    let offset = match usize::try_from(span) {
        Ok(n) => rng.below(n) as i128,
        Err(_) => i128::from(rng.next_u64()), // the whole i64 range: every u64 offset fits
    };
    i64::try_from((i128::from(low) + offset).clamp(i128::from(low), i128::from(high))).unwrap_or(low)
}

/// Trials with observations needed before TPE stops drawing at random.
pub fn n_startup(spec: &StudySpec) -> usize {
    (spec.budget.trials / 3).clamp(4, 10)
}

/// Ended trials with a value, best first: completed ones by their best value, then pruned
/// ones by epochs run (more first) and then by best value. Ties go to the earlier trial.
fn ranked<'a>(spec: &StudySpec, trials: &'a [Trial]) -> Vec<&'a Trial> {
    let key = |t: &Trial| {
        let (_, best) = spec.objective.best(t.values.iter().copied())?;
        let loss = spec.objective.as_loss(best);
        match t.state {
            TrialState::Completed => Some((0, 0, loss)),
            TrialState::Pruned => Some((1, usize::MAX - t.values.len(), loss)),
            _ => None,
        }
    };
    let mut keyed: Vec<_> = trials.iter().filter_map(|t| Some((key(t)?, t))).collect();
    keyed.sort_by(|((ca, ea, la), ta), ((cb, eb, lb), tb)| {
        (ca, ea)
            .cmp(&(cb, eb))
            .then(la.total_cmp(lb))
            .then(ta.number.cmp(&tb.number))
    });
    keyed.into_iter().map(|(_, t)| t).collect()
}

/// TPE: random until enough trials have ended, then each parameter from the Parzen
/// estimators of the good and bad trials.
fn tpe_params(spec: &StudySpec, number: u32, trials: &[Trial]) -> Params {
    let ranked = ranked(spec, trials);
    if ranked.len() < n_startup(spec) {
        return random_params(spec, number);
    }
    let n_good = ranked.len().div_ceil(10).clamp(1, MAX_GOOD);
    let (good, bad) = ranked.split_at(n_good);
    let mut params = Params::new();
    for def in &spec.params {
        let of = |ts: &[&Trial]| {
            ts.iter()
                .filter_map(|t| t.params.get(&def.name))
                .cloned()
                .collect::<Vec<_>>()
        };
        let (good, bad) = (of(good), of(bad));
        let mut rng = param_rng(spec, number, &def.name);
        let value = match &def.space {
            ParamSpace::Choice(values) => tpe_choice(values, &good, &bad, &mut rng),
            space => Some(tpe_numeric(space, &good, &bad, &mut rng)),
        };
        if let Some(value) = value {
            params.insert(def.name.clone(), value);
        }
    }
    params
}

/// The candidate from l(x) that maximises log l(x) − log g(x) (first on ties).
fn argmax_ratio<T>(candidates: impl Iterator<Item = T>, score: impl Fn(&T) -> f64) -> Option<T> {
    candidates
        .map(|c| (score(&c), c))
        .fold(None, |best: Option<(f64, T)>, (s, c)| match best {
            Some((b, _)) if s <= b => best,
            _ => Some((s, c)),
        })
        .map(|(_, c)| c)
}

/// A range parameter's TPE draw, kept inside its space.
fn tpe_numeric(space: &ParamSpace, good: &[Value], bad: &[Value], rng: &mut Rng) -> Value {
    let (low, high) = internal_bounds(space);
    let internal = |vs: &[Value]| vs.iter().filter_map(|v| to_internal(space, v)).collect::<Vec<_>>();
    let (l, g) = (
        Parzen::new(&internal(good), low, high),
        Parzen::new(&internal(bad), low, high),
    );
    let candidates: Vec<f64> = (0..N_EI_CANDIDATES).map(|_| l.sample(rng)).collect();
    let x = argmax_ratio(candidates.into_iter(), |&x| l.log_pdf(x) - g.log_pdf(x)).unwrap_or((low + high) / 2.0);
    from_internal(space, x)
}

/// The range TPE models a parameter in: log space for `LogUniform`, and whole numbers
/// widened by half a step so that each one gets its share of the density.
fn internal_bounds(space: &ParamSpace) -> (f64, f64) {
    match space {
        ParamSpace::Uniform { low, high } => (*low, *high),
        ParamSpace::LogUniform { low, high } => (low.ln(), high.ln()),
        ParamSpace::Int { low, high } => (*low as f64 - 0.5, *high as f64 + 0.5),
        ParamSpace::Choice(_) => (0.0, 1.0),
    }
}

/// An observed value in TPE's space; `None` when it does not fit (an edited spec).
fn to_internal(space: &ParamSpace, value: &Value) -> Option<f64> {
    let v = value.as_f64().filter(|v| v.is_finite())?;
    let (low, high) = internal_bounds(space);
    let x = match space {
        ParamSpace::LogUniform { .. } if v > 0.0 => v.ln(),
        ParamSpace::LogUniform { .. } => return None,
        _ => v,
    };
    Some(x.clamp(low, high))
}

/// A point of TPE's space back as the parameter's value, clamped into its space.
fn from_internal(space: &ParamSpace, x: f64) -> Value {
    match space {
        ParamSpace::Uniform { low, high } => Value::from(x.clamp(*low, *high)),
        ParamSpace::LogUniform { low, high } => Value::from(x.exp().clamp(*low, *high)),
        ParamSpace::Int { low, high } => Value::from((x.round() as i64).clamp(*low, *high)),
        ParamSpace::Choice(_) => Value::Null,
    }
}

/// A mixture of equally weighted Gaussians truncated to `[low, high]`: one per observation
/// and a wide prior at the middle of the range.
struct Parzen {
    mus: Vec<f64>,
    sigmas: Vec<f64>,
    low: f64,
    high: f64,
}

impl Parzen {
    /// Optuna's bandwidths: each point's distance to its farther neighbour (the outermost
    /// points' to their only one), clipped to `[(high − low) / min(100, 1 + n), high − low]`.
    fn new(observations: &[f64], low: f64, high: f64) -> Self {
        let width = high - low;
        let mut mus = observations.to_vec();
        mus.push((low + high) / 2.0);
        let mut order: Vec<usize> = (0..mus.len()).collect();
        order.sort_by(|&a, &b| mus[a].total_cmp(&mus[b]));
        let min_sigma = width / (1.0 + mus.len() as f64).min(100.0);
        let mut sigmas = vec![width; mus.len()];
        let sorted: Vec<f64> = order.iter().map(|&i| mus[i]).collect();
        for (rank, &i) in order.iter().enumerate() {
            let prev = rank.checked_sub(1).map(|r| sorted[r]);
            let next = sorted.get(rank + 1).copied();
            // Optuna's default (consider_endpoints = false): the outermost points look inward only.
            let sigma = match (prev, next) {
                (Some(p), Some(n)) => (mus[i] - p).max(n - mus[i]),
                (None, Some(n)) => n - mus[i],
                (Some(p), None) => mus[i] - p,
                (None, None) => width,
            };
            sigmas[i] = sigma.clamp(min_sigma, width);
        }
        if let Some(prior) = sigmas.last_mut() {
            *prior = width;
        }
        Self { mus, sigmas, low, high }
    }

    /// A draw: a component at random, then its truncated Gaussian by rejection (each
    /// component keeps at least a third of its mass inside the range).
    fn sample(&self, rng: &mut Rng) -> f64 {
        let k = rng.below(self.mus.len());
        let (mu, sigma) = (self.mus[k], self.sigmas[k]);
        (0..64)
            .map(|_| mu + sigma * rng.normal())
            .find(|x| (self.low..=self.high).contains(x))
            .unwrap_or(mu)
    }

    /// The log density at `x`.
    fn log_pdf(&self, x: f64) -> f64 {
        let terms: Vec<f64> = self
            .mus
            .iter()
            .zip(&self.sigmas)
            .map(|(&mu, &s)| {
                let z = (x - mu) / s;
                let mass = normal_cdf((self.high - mu) / s) - normal_cdf((self.low - mu) / s);
                -0.5 * z * z - s.ln() - 0.5 * std::f64::consts::TAU.ln() - mass.max(f64::MIN_POSITIVE).ln()
            })
            .collect();
        let top = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        top + terms.iter().map(|t| (t - top).exp()).sum::<f64>().ln() - (terms.len() as f64).ln()
    }
}

/// The standard normal CDF through erf (Abramowitz & Stegun 7.1.26, error below 1.5e-7).
fn normal_cdf(x: f64) -> f64 {
    let z = x.abs() / std::f64::consts::SQRT_2;
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly =
        t * (0.254_829_592 + t * (-0.284_496_736 + t * (1.421_413_741 + t * (-1.453_152_027 + t * 1.061_405_429))));
    let erf = 1.0 - poly * (-z * z).exp();
    0.5 * (1.0 + erf.copysign(x))
}

/// A choice's TPE draw: category weights are observation counts plus one each.
fn tpe_choice(values: &[Value], good: &[Value], bad: &[Value], rng: &mut Rng) -> Option<Value> {
    let last = values.len().checked_sub(1)?;
    let weights = |seen: &[Value]| -> Vec<f64> {
        let w: Vec<f64> = values
            .iter()
            .map(|c| 1.0 + seen.iter().filter(|v| *v == c).count() as f64)
            .collect();
        let total: f64 = w.iter().sum();
        w.into_iter().map(|x| x / total).collect()
    };
    let (l, g) = (weights(good), weights(bad));
    let draw = |rng: &mut Rng| {
        let u = rng.uniform();
        let mut acc = 0.0;
        l.iter().position(|w| {
            acc += w;
            u < acc
        })
    };
    let candidates: Vec<usize> = (0..N_EI_CANDIDATES).map(|_| draw(rng).unwrap_or(last)).collect();
    let best = argmax_ratio(candidates.into_iter(), |&i| l[i].ln() - g[i].ln())?;
    values.get(best).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::spec::{ParamDef, parse};

    fn spec(sampler: &str, trials: usize, params: &str) -> StudySpec {
        let source = format!(
            "name = \"t\"\nbase = {{ arch = \"mlp\", data = \"fashion-mnist\", epochs = 6 }}\n\
             objective = {{ metric = \"val_loss\", direction = \"minimize\" }}\n\
             budget = {{ trials = {trials}, concurrent = 1 }}\nsampler = \"{sampler}\"\nseed = 7\n[params]\n{params}"
        );
        parse(&source, "test.toml").expect("test spec")
    }

    fn finished(number: u32, params: Params, state: TrialState, values: Vec<f64>) -> Trial {
        Trial {
            state,
            values,
            ..Trial::planned(number, params)
        }
    }

    /// Runs `n` trials one after another, each completed with `objective(params)`.
    fn run(spec: &StudySpec, n: u32, objective: impl Fn(&Params) -> f64) -> Vec<Trial> {
        let mut trials = Vec::new();
        for number in 0..n {
            let params = suggest(spec, number, &trials);
            let value = objective(&params);
            trials.push(finished(number, params, TrialState::Completed, vec![value]));
        }
        trials
    }

    fn lr(params: &Params) -> f64 {
        params["lr"].as_f64().expect("lr is a number")
    }

    #[test]
    fn grid_size_multiplies_the_axes_and_saturates() {
        let s = spec(
            "grid",
            10,
            "batch_size = { choice = [32, 64, 128] }\nepochs = { int = [2, 5] }",
        );
        assert_eq!(grid_size(&s), 12);
        let mut huge = s.clone();
        for name in ["config.a", "config.b"] {
            let space = ParamSpace::Int {
                low: i64::MIN,
                high: i64::MAX,
            };
            huge.params.push(ParamDef {
                name: name.into(),
                line: 1,
                space,
            });
        }
        assert_eq!(grid_size(&huge), usize::MAX);
        huge.params.push(ParamDef {
            name: "lr".into(),
            line: 1,
            space: ParamSpace::Uniform { low: 0.1, high: 0.2 },
        });
        assert_eq!(grid_size(&huge), usize::MAX);
        let _ = grid_point(&huge, usize::MAX);
    }

    #[test]
    fn grid_enumerates_every_combination_once_in_nested_loop_order() {
        let s = spec(
            "grid",
            10,
            "batch_size = { choice = [32, 64, 128] }\nepochs = { int = [2, 3] }",
        );
        let points: Vec<Params> = (0..grid_size(&s)).map(|i| grid_point(&s, i)).collect();
        let mut expected = Vec::new();
        for b in [32, 64, 128] {
            for e in [2, 3] {
                expected.push(Params::from([
                    ("batch_size".into(), b.into()),
                    ("epochs".into(), e.into()),
                ]));
            }
        }
        assert_eq!(points, expected);
        assert_eq!(suggest(&s, 7, &[]), expected[1], "the grid wraps around");
    }

    #[test]
    fn random_is_reproducible_and_depends_on_the_seed_and_trial() {
        let s = spec(
            "random",
            10,
            "lr = { log_uniform = [1e-5, 1.0] }\nbatch_size = { choice = [32, 64, 128] }",
        );
        assert_eq!(suggest(&s, 3, &[]), suggest(&s, 3, &[]));
        assert_ne!(suggest(&s, 3, &[]), suggest(&s, 4, &[]));
        let other = StudySpec { seed: 8, ..s.clone() };
        assert_ne!(suggest(&s, 3, &[]), suggest(&other, 3, &[]));
        let trials = run(&s, 5, lr);
        assert_eq!(
            suggest(&s, 5, &trials),
            suggest(&s, 5, &[]),
            "random ignores the history"
        );
    }

    #[test]
    fn a_new_parameter_leaves_the_others_draws_alone() {
        let one = spec("random", 10, "lr = { log_uniform = [1e-5, 1.0] }");
        let two = spec(
            "random",
            10,
            "lr = { log_uniform = [1e-5, 1.0] }\nbatch_size = { choice = [32, 64] }",
        );
        assert_eq!(suggest(&one, 2, &[])["lr"], suggest(&two, 2, &[])["lr"]);
    }

    #[test]
    fn random_values_stay_in_their_space_with_their_types() {
        let s = spec(
            "random",
            10,
            "lr = { uniform = [0.1, 0.2] }\nepochs = { int = [1, 3] }\nbatch_size = { choice = [32, 64] }",
        );
        let mut epochs_seen = [false; 3];
        for number in 0..200 {
            let p = suggest(&s, number, &[]);
            assert!((0.1..0.2).contains(&lr(&p)));
            let e = p["epochs"].as_i64().expect("int");
            epochs_seen[(e - 1) as usize] = true;
            assert!([32, 64].contains(&p["batch_size"].as_i64().expect("choice")));
        }
        assert_eq!(epochs_seen, [true; 3]);
    }

    #[test]
    fn log_uniform_covers_each_decade_about_equally() {
        let s = spec("random", 10, "lr = { log_uniform = [1e-5, 1.0] }");
        let mut decades = [0usize; 5];
        for number in 0..5000 {
            let v = lr(&suggest(&s, number, &[]));
            assert!((1e-5..=1.0).contains(&v));
            decades[((-v.log10()).floor() as usize).min(4)] += 1;
        }
        assert!(decades.iter().all(|&c| (850..1150).contains(&c)), "{decades:?}");
    }

    #[test]
    fn tpe_draws_at_random_until_enough_trials_have_ended() {
        let s = spec("tpe", 30, "lr = { log_uniform = [1e-5, 1.0] }");
        assert_eq!(n_startup(&s), 10);
        assert_eq!(n_startup(&spec("tpe", 3, "lr = { uniform = [0.1, 1] }")), 4);
        let random = StudySpec {
            sampler: SamplerKind::Random,
            ..s.clone()
        };
        let mut trials = run(&s, 9, lr);
        trials.push(finished(9, Params::new(), TrialState::Failed, vec![0.5]));
        trials.push(finished(10, Params::new(), TrialState::Running, vec![0.5]));
        trials.push(finished(11, Params::new(), TrialState::Completed, vec![]));
        assert_eq!(suggest(&s, 12, &trials), suggest(&random, 12, &[]));
    }

    #[test]
    fn ranking_puts_completed_by_value_then_pruned_by_epochs() {
        let s = spec("tpe", 30, "lr = { uniform = [0.1, 1] }");
        let trials = vec![
            finished(0, Params::new(), TrialState::Pruned, vec![0.1]),
            finished(1, Params::new(), TrialState::Completed, vec![0.9, 0.5]),
            finished(2, Params::new(), TrialState::Pruned, vec![0.9, 0.8]),
            finished(3, Params::new(), TrialState::Completed, vec![0.3]),
            finished(4, Params::new(), TrialState::Cancelled, vec![0.0]),
            finished(5, Params::new(), TrialState::Pruned, vec![0.05]),
        ];
        let order: Vec<u32> = ranked(&s, &trials).iter().map(|t| t.number).collect();
        assert_eq!(order, [3, 1, 2, 5, 0]);
    }

    #[test]
    fn tpe_is_reproducible_for_the_same_history() {
        let s = spec(
            "tpe",
            30,
            "lr = { log_uniform = [1e-5, 1.0] }\nbatch_size = { choice = [32, 64, 128] }",
        );
        let trials = run(&s, 15, lr);
        assert_eq!(suggest(&s, 15, &trials), suggest(&s, 15, &trials));
        assert_eq!(run(&s, 15, lr), trials);
    }

    #[test]
    fn tpe_values_stay_in_their_space() {
        let params = "lr = { uniform = [0.1, 0.2] }\nepochs = { int = [1, 3] }\nbatch_size = { choice = [32, 64] }";
        let s = spec("tpe", 30, params);
        let trials = run(&s, 40, |p| (lr(p) - 0.2).abs() + p["epochs"].as_f64().unwrap_or(9.0));
        for t in &trials {
            assert!((0.1..=0.2).contains(&lr(&t.params)));
            assert!((1..=3).contains(&t.params["epochs"].as_i64().expect("int")));
            assert!([32, 64].contains(&t.params["batch_size"].as_i64().expect("choice")));
        }
        let late_epochs = trials[30..].iter().filter(|t| t.params["epochs"] == 1).count();
        assert!(
            late_epochs >= 6,
            "TPE should favour epochs = 1, got {late_epochs} of 10"
        );
    }

    fn distance_to_optimum(p: &Params) -> f64 {
        (lr(p).log10() + 2.5).abs()
    }

    /// The mean distance (in decades) to the optimum of the last 10 of 30 trials that minimise
    /// `(log10(lr) + 2.5)^2`.
    fn last_10_distance(sampler: &str, seed: u64) -> f64 {
        let s = StudySpec {
            seed,
            ..spec(sampler, 30, "lr = { log_uniform = [1e-5, 1.0] }")
        };
        let trials = run(&s, 30, |p| distance_to_optimum(p).powi(2));
        trials[20..].iter().map(|t| distance_to_optimum(&t.params)).sum::<f64>() / 10.0
    }

    #[test]
    fn tpe_concentrates_near_the_optimum_where_random_does_not() {
        let (tpe, random) = (last_10_distance("tpe", 7), last_10_distance("random", 7));
        assert!(tpe < random, "tpe {tpe} vs random {random}");
        assert!(
            tpe < 0.75,
            "tpe's last trials should sit within 3/4 of a decade, got {tpe}"
        );
        let wins = (0..20)
            .filter(|&seed| last_10_distance("tpe", seed) < last_10_distance("random", seed))
            .count();
        assert!(wins >= 18, "tpe beat random on {wins} of 20 seeds");
    }

    #[test]
    fn tpe_prefers_the_better_choice() {
        let s = spec("tpe", 30, "batch_size = { choice = [32, 64, 128, 256] }");
        let trials = run(&s, 40, |p| if p["batch_size"] == 64 { 0.1 } else { 1.0 });
        let late = trials[20..].iter().filter(|t| t.params["batch_size"] == 64).count();
        assert!(late >= 14, "64 chosen {late} of 20 times");
    }

    #[test]
    fn the_normal_cdf_is_accurate() {
        for (x, want) in [
            (0.0, 0.5),
            (1.0, 0.841_344_746),
            (-1.96, 0.024_997_895),
            (3.0, 0.998_650_102),
        ] {
            assert!((normal_cdf(x) - want).abs() < 1e-6, "{x}");
        }
    }
}
