//! Early stopping: after each epoch a trial reports, whether it goes on or is pruned, by the
//! study's rule — the median rule or asynchronous successive halving (ASHA), both as Optuna
//! defines them. A pure function of the trials' records, so every decision can be replayed.

use super::{EarlyStop, Objective, PrunedAt, StudySpec, Trial, TrialState};

/// What a trial does after the epoch it just reported.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Continue,
    Prune(PrunedAt),
}

/// The epochs `trial` is planned to run: its tuned `epochs` parameter, else the base's.
pub fn trial_epochs(spec: &StudySpec, trial: &Trial) -> usize {
    trial
        .params
        .get("epochs")
        .and_then(serde_json::Value::as_u64)
        .and_then(|e| usize::try_from(e).ok())
        .unwrap_or(spec.base.epochs)
}

/// Decides on `trial` after its latest epoch (`trial.values.len()`, 1-based). `trials` is
/// the whole study (`trial` itself among them or not). A trial at or past its last planned
/// epoch always continues: it has finished anyway.
pub fn decide(spec: &StudySpec, trial: &Trial, trials: &[Trial]) -> Decision {
    let epoch = trial.values.len();
    if epoch == 0 || epoch >= trial_epochs(spec, trial) {
        return Decision::Continue;
    }
    let others: Vec<&Trial> = trials
        .iter()
        .filter(|t| t.number != trial.number && !matches!(t.state, TrialState::Failed | TrialState::Cancelled))
        .collect();
    match spec.early_stop {
        EarlyStop::None => Decision::Continue,
        EarlyStop::Median {
            min_epochs,
            startup_trials,
        } => {
            let completed = others.iter().filter(|t| t.state == TrialState::Completed).count();
            if completed < startup_trials || epoch < min_epochs {
                return Decision::Continue;
            }
            median_rule(spec.objective, trial, &others, epoch)
        }
        EarlyStop::Asha {
            min_epochs,
            reduction_factor,
        } => {
            let eta = reduction_factor.max(2);
            match rung_index(epoch, min_epochs.max(1), eta) {
                Some(rung) => asha_rule(spec.objective, trial, &others, epoch, rung, eta),
                None => Decision::Continue,
            }
        }
    }
}

/// The best finite value of `values`' first `epoch` entries.
fn best_until(objective: Objective, values: &[f64], epoch: usize) -> Option<f64> {
    objective.best(values.iter().take(epoch).copied()).map(|(_, v)| v)
}

/// The median of `values` (the mean of the middle two for an even count); `None` when empty.
fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    match values.len() {
        0 => None,
        n if n % 2 == 1 => Some(values[mid]),
        _ => Some((values[mid - 1] + values[mid]) / 2.0),
    }
}

/// Prunes `trial` when its best value over its first `epoch` epochs is strictly worse than
/// the median of the others' bests over theirs.
fn median_rule(objective: Objective, trial: &Trial, others: &[&Trial], epoch: usize) -> Decision {
    let bests: Vec<f64> = others
        .iter()
        .filter(|t| t.values.len() >= epoch)
        .filter_map(|t| best_until(objective, &t.values, epoch))
        .collect();
    let count = bests.len();
    let Some(median) = median(bests) else {
        return Decision::Continue;
    };
    let metric = objective.metric;
    let reason = match best_until(objective, &trial.values, epoch) {
        Some(best) if !objective.better(median, best) => return Decision::Continue,
        Some(best) => format!(
            "median rule at epoch {epoch}: best {metric} {best:.4} is worse than the median {median:.4} \
             of {count} trials at that epoch"
        ),
        None => format!("median rule at epoch {epoch}: no finite {metric} yet"),
    };
    Decision::Prune(PrunedAt { epoch, reason })
}

/// The 1-based number of the rung `epoch` is (rungs at `min_epochs * eta^k`), if it is one.
fn rung_index(epoch: usize, min_epochs: usize, eta: usize) -> Option<usize> {
    let mut rung = min_epochs;
    let mut index = 1;
    while rung < epoch {
        rung = rung.checked_mul(eta)?;
        index += 1;
    }
    (rung == epoch).then_some(index)
}

/// Successive halving at a rung: `trial` goes on only if its value at the rung is at least
/// as good as the `len / eta`-th best of every trial that reached it (the best, when fewer
/// than `eta` have).
fn asha_rule(
    objective: Objective,
    trial: &Trial,
    others: &[&Trial],
    epoch: usize,
    rung: usize,
    eta: usize,
) -> Decision {
    let metric = objective.metric;
    let Some(value) = trial.values.get(epoch - 1).copied().filter(|v| v.is_finite()) else {
        let reason = format!("ASHA rung {rung} (epoch {epoch}): no finite {metric}");
        return Decision::Prune(PrunedAt { epoch, reason });
    };
    let mut competitors: Vec<f64> = others
        .iter()
        .filter_map(|t| t.values.get(epoch - 1).copied())
        .filter(|v| v.is_finite())
        .chain([value])
        .collect();
    competitors.sort_by(|a, b| objective.as_loss(*a).total_cmp(&objective.as_loss(*b)));
    let needed = competitors[(competitors.len() / eta).saturating_sub(1)];
    if !objective.better(needed, value) {
        return Decision::Continue;
    }
    let reason = format!(
        "ASHA rung {rung} (epoch {epoch}): {metric} {value:.4} is not in the top 1/{eta} of {} trials at this rung \
         (needed {needed:.4})",
        competitors.len()
    );
    Decision::Prune(PrunedAt { epoch, reason })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::study::spec::parse;
    use crate::study::{Direction, ObjectiveMetric, Params};

    fn spec(early_stop: &str, metric: &str, params: &str) -> StudySpec {
        let source = format!(
            "name = \"t\"\nbase = {{ arch = \"mlp\", data = \"fashion-mnist\", epochs = 9 }}\n\
             objective = {{ metric = \"{metric}\" }}\nbudget = {{ trials = 30 }}\nearly_stop = {early_stop}\n\
             [params]\nlr = {{ log_uniform = [1e-5, 1.0] }}\n{params}"
        );
        parse(&source, "test.toml").expect("test spec")
    }

    fn asha(eta: usize) -> StudySpec {
        spec(
            &format!("{{ rule = \"asha\", min_epochs = 1, reduction_factor = {eta} }}"),
            "val_accuracy",
            "",
        )
    }

    fn trial(number: u32, state: TrialState, values: &[f64]) -> Trial {
        Trial {
            state,
            values: values.to_vec(),
            ..Trial::planned(number, Params::new())
        }
    }

    fn running(number: u32, values: &[f64]) -> Trial {
        trial(number, TrialState::Running, values)
    }

    fn pruned_epoch(d: &Decision) -> Option<usize> {
        match d {
            Decision::Prune(at) => Some(at.epoch),
            Decision::Continue => None,
        }
    }

    #[test]
    fn trial_epochs_follows_a_tuned_epochs_parameter() {
        let s = spec("\"none\"", "val_accuracy", "epochs = { int = [2, 20] }");
        let mut t = running(0, &[]);
        assert_eq!(trial_epochs(&s, &t), 9);
        t.params.insert("epochs".into(), 4.into());
        assert_eq!(trial_epochs(&s, &t), 4);
    }

    #[test]
    fn no_rule_never_prunes() {
        let s = spec("\"none\"", "val_accuracy", "");
        let good = trial(0, TrialState::Completed, &[0.9; 9]);
        assert_eq!(decide(&s, &running(1, &[0.1]), &[good]), Decision::Continue);
    }

    #[test]
    fn asha_lets_the_first_trial_at_a_rung_go_on() {
        let s = asha(3);
        let t = running(0, &[0.1]);
        assert_eq!(decide(&s, &t, std::slice::from_ref(&t)), Decision::Continue);
        assert_eq!(decide(&s, &t, &[]), Decision::Continue);
    }

    #[test]
    fn asha_prunes_a_clearly_worse_second_trial() {
        let s = asha(3);
        let first = running(0, &[0.8]);
        let second = running(1, &[0.6]);
        let Decision::Prune(at) = decide(&s, &second, &[first.clone(), second.clone()]) else {
            panic!("the worse trial should be pruned");
        };
        assert_eq!(at.epoch, 1);
        assert_eq!(
            at.reason,
            "ASHA rung 1 (epoch 1): val_accuracy 0.6000 is not in the top 1/3 of 2 trials at this rung (needed 0.8000)"
        );
        assert_eq!(decide(&s, &first, &[first.clone(), second]), Decision::Continue);
    }

    #[test]
    fn asha_keeps_the_top_third_of_many() {
        let s = asha(3);
        let others: Vec<Trial> = (0..8).map(|i| running(i, &[f64::from(i + 1) / 10.0])).collect();
        // Nine at the rung (0.1 … 0.8 and this one): the best three go on.
        assert_eq!(decide(&s, &running(8, &[0.75]), &others), Decision::Continue);
        assert_eq!(
            decide(&s, &running(8, &[0.7]), &others),
            Decision::Continue,
            "a tie with the bar goes on"
        );
        assert_eq!(decide(&s, &running(8, &[0.65]), &others), Decision::Continue);
        assert_eq!(pruned_epoch(&decide(&s, &running(8, &[0.55]), &others)), Some(1));
    }

    #[test]
    fn asha_decides_only_at_rungs_before_the_last_epoch() {
        let s = asha(2); // rungs at epochs 1, 2, 4, 8 of 9
        let leader = running(0, &[0.9; 9]);
        let rungs: Vec<usize> = (1..=9)
            .filter(|&e| pruned_epoch(&decide(&s, &running(1, &vec![0.1; e]), std::slice::from_ref(&leader))).is_some())
            .collect();
        assert_eq!(rungs, [1, 2, 4, 8]);
        let mut short = running(1, &[0.1; 4]);
        short.params.insert("epochs".into(), 4.into());
        assert_eq!(decide(&s, &short, std::slice::from_ref(&leader)), Decision::Continue);
    }

    #[test]
    fn asha_ignores_failed_and_cancelled_trials() {
        let s = asha(2);
        let dead = [
            trial(0, TrialState::Failed, &[0.9]),
            trial(1, TrialState::Cancelled, &[0.9]),
        ];
        assert_eq!(decide(&s, &running(2, &[0.1]), &dead), Decision::Continue);
    }

    #[test]
    fn asha_follows_the_objective_direction() {
        let s = spec(
            "{ rule = \"asha\", min_epochs = 1, reduction_factor = 2 }",
            "val_loss",
            "",
        );
        assert_eq!(s.objective.direction, Direction::Minimize);
        let others = [running(0, &[0.5])];
        assert_eq!(decide(&s, &running(1, &[0.2]), &others), Decision::Continue);
        assert!(pruned_epoch(&decide(&s, &running(1, &[0.9]), &others)).is_some());
    }

    fn median(min_epochs: usize, startup: usize, metric: &str) -> StudySpec {
        let rule = format!("{{ rule = \"median\", min_epochs = {min_epochs}, startup_trials = {startup} }}");
        spec(&rule, metric, "")
    }

    #[test]
    fn median_rule_prunes_below_the_median_of_bests() {
        let s = median(1, 2, "val_accuracy");
        let others = [
            trial(0, TrialState::Completed, &[0.5, 0.9]),
            trial(1, TrialState::Completed, &[0.7, 0.6]),
            trial(2, TrialState::Pruned, &[0.8, 0.85]),
        ];
        // Bests over 2 epochs: 0.9, 0.7, 0.85 → median 0.85.
        assert_eq!(decide(&s, &running(3, &[0.3, 0.85]), &others), Decision::Continue);
        let Decision::Prune(at) = decide(&s, &running(3, &[0.84, 0.3]), &others) else {
            panic!("below the median should be pruned");
        };
        assert_eq!(
            at.reason,
            "median rule at epoch 2: best val_accuracy 0.8400 is worse than the median 0.8500 of 3 trials at that epoch"
        );
    }

    #[test]
    fn median_rule_waits_for_startup_trials_and_min_epochs() {
        let others = [
            trial(0, TrialState::Completed, &[0.9, 0.9, 0.9]),
            trial(1, TrialState::Running, &[0.9, 0.9, 0.9]),
        ];
        let poor = running(2, &[0.1, 0.1]);
        assert_eq!(
            decide(&median(1, 2, "val_accuracy"), &poor, &others),
            Decision::Continue
        );
        assert_eq!(
            decide(&median(3, 1, "val_accuracy"), &poor, &others),
            Decision::Continue
        );
        assert_eq!(
            pruned_epoch(&decide(&median(2, 1, "val_accuracy"), &poor, &others)),
            Some(2)
        );
    }

    #[test]
    fn median_rule_needs_others_that_reached_the_epoch() {
        let s = median(1, 1, "val_loss");
        let others = [
            trial(0, TrialState::Completed, &[0.1]),
            trial(1, TrialState::Failed, &[0.1, 0.1]),
        ];
        assert_eq!(decide(&s, &running(2, &[0.9, 0.9]), &others), Decision::Continue);
    }

    #[test]
    fn median_rule_follows_the_objective_direction() {
        let s = median(1, 1, "val_loss");
        assert_eq!(s.objective.metric, ObjectiveMetric::ValLoss);
        let others = [
            trial(0, TrialState::Completed, &[0.5]),
            trial(1, TrialState::Completed, &[0.7]),
        ];
        assert_eq!(decide(&s, &running(2, &[0.55]), &others), Decision::Continue);
        assert_eq!(pruned_epoch(&decide(&s, &running(2, &[0.65]), &others)), Some(1));
    }
}
