//! The studies screen: hyperparameter studies (`kiln tune`), their trials, and how the
//! search is going.
//!
//! ```text
//! ┏ Studies (2) ━━━━━━━━━━━┓┌ Trials · val_accuracy ↑ · by number ───────────────────────┐
//! ┃ fmnist-mlp-lr          ┃│   #  STATE     lr      batch_size optimizer hidden  BEST  EP│
//! ┃   running 5/24 · 0.8712┃│ ★ 2  completed 3.1e-3  64         adam      256,128 0.8712 6│
//! ┃ ratings-mf-dim         ┃│   3  pruned@e3 2e-4    32         sgd       128     0.6120 3│
//! ┃   completed 12/12 · …  ┃└──────────────────────────────────────────────────────────┘
//! ┃                        ┃┌ best so far ────────┐┌ params → val_accuracy ── best ─────┐
//! ┗━━━━━━━━━━━━━━━━━━━━━━━━┛│0.87┤   ⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀⣀ ││ ⡇⠢⡀  ⡇    ⡇  ⢀⠔⡇ (parallel.rs)   │
//! ┌ fmnist-mlp-lr ─────────┐│0.61┤⣀⣀⠃ trial →     ││ lr  batch optim val_acc            │
//! │ maximize val_accuracy  │└────────────────────┘└────────────────────────────────────┘
//! │ tpe sampler · asha     │┌ trial 3 · loss ─────────────────┐┌ trial 3 ──────────────┐
//! │ 5/24 done · 2 running  ││ (train and val loss, chart.rs)  ││ pruned at epoch 3     │
//! │ 31 epochs spent        ││                                 ││ ASHA: below the top … │
//! └────────────────────────┘└─────────────────────────────────┘└───────────────────────┘
//! ```
//!
//! A trial is an ordinary training job: its loss curve is the jobs screen's run data for the
//! trial's latest job, drawn with the same chart code.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{List, ListItem, ListState, Paragraph, Row, Table, TableState, Wrap};

use super::chart::{Axes, Trace, legend, loss_traces, render_traces, run_range, short};
use super::parallel;
use crate::tui::action::Action;
use crate::tui::app::App;
use crate::tui::series::Zoom;
use crate::tui::state::jobs::ChartOptions;
use crate::tui::state::studies::{StudiesFocus, trial_best};
use crate::tui::theme::Theme;
use crate::tui::widgets::{panel, placeholder};
use kiln_core::api::StudyView;
use kiln_core::study::{Direction, EarlyStop, StudyState, Trial, TrialState, value_text};

/// Columns the study list takes at most (a third of the screen on narrow terminals).
const LIST_WIDTH: u16 = 32;
/// Rows of the study summary under the list.
const SUMMARY_ROWS: u16 = 9;
/// Shares of the right column the charts and the trial detail take; the table gets the rest.
const CHARTS_PCT: u16 = 32;
const TRIAL_PCT: u16 = 32;
/// Share of the charts row the best-so-far curve takes (parallel coordinates get the rest).
const BEST_PCT: u16 = 40;
/// Share of the trial row its loss curve takes (the trial's details get the rest).
const LOSS_PCT: u16 = 58;
/// Widest a parameter column grows.
const PARAM_MAX: u16 = 10;

/// Draws the studies screen.
pub fn render(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.studies, &app.theme);
    if state.unavailable {
        let text = "studies are not available from this kilnd (no /api/v1/studies yet)";
        placeholder(frame, area, panel(" Studies ", false, theme), text, theme.muted);
        return;
    }
    if state.studies.is_none() {
        placeholder(
            frame,
            area,
            panel(" Studies ", false, theme),
            "loading studies…",
            theme.muted,
        );
        return;
    }
    let Some(study) = state.current() else {
        let key = app.keymap.hint(Action::NewTraining);
        let text = format!("no studies yet: `kiln tune study.toml` or press {key}");
        placeholder(frame, area, panel(" Studies ", true, theme), &text, theme.muted);
        return;
    };
    render_study(frame, area, app, study);
}

/// The list and the selected study: its summary, trials, charts and selected trial.
fn render_study(frame: &mut Frame, area: Rect, app: &App, study: &StudyView) {
    let (state, theme) = (&app.studies, &app.theme);
    let [left, right] =
        Layout::horizontal([Constraint::Length(LIST_WIDTH.min(area.width / 3)), Constraint::Min(0)]).areas(area);
    let [list, summary] = Layout::vertical([Constraint::Min(4), Constraint::Length(SUMMARY_ROWS)]).areas(left);
    let [trials, charts, trial] = Layout::vertical([
        Constraint::Min(4),
        Constraint::Percentage(CHARTS_PCT),
        Constraint::Percentage(TRIAL_PCT),
    ])
    .areas(right);
    let [best, coords] =
        Layout::horizontal([Constraint::Percentage(BEST_PCT), Constraint::Percentage(100 - BEST_PCT)]).areas(charts);
    let [loss, detail] =
        Layout::horizontal([Constraint::Percentage(LOSS_PCT), Constraint::Percentage(100 - LOSS_PCT)]).areas(trial);
    render_list(frame, list, app);
    render_summary(frame, summary, study, theme);
    render_trials(frame, trials, app, study);
    render_best_so_far(frame, best, study, theme);
    render_coords(frame, coords, app, study);
    render_trial_loss(frame, loss, app);
    render_trial_detail(frame, detail, study, state.current_trial(), theme);
}

/// Parallel coordinates of the study's parameters against its objective (`parallel.rs`).
fn render_coords(frame: &mut Frame, area: Rect, app: &App, study: &StudyView) {
    let theme = &app.theme;
    let legend = Line::from(vec![
        Span::styled("── best ", theme.ok),
        Span::styled("── selected ", theme.active),
    ]);
    let title = format!(" params → {} ", study.spec.objective.metric);
    let block = panel(title, false, theme).title_bottom(legend.right_aligned());
    let selected = app.studies.current_trial().map(|t| t.number);
    parallel::render(frame, area, block, study, selected, theme);
}

/// `running 5/24 · 0.871`: state, trials ended of the budget, best value.
fn study_line(study: &StudyView) -> String {
    let done = study.trials.iter().filter(|t| t.state.is_final()).count();
    let best = study.best().map_or("–".to_owned(), |(_, v)| short(v));
    format!("{} {done}/{} · {best}", study.state, study.spec.budget.trials)
}

fn study_style(state: StudyState, theme: &Theme) -> Style {
    match state {
        StudyState::Running => theme.active,
        StudyState::Stopped => theme.warn,
        StudyState::Completed => theme.ok,
    }
}

fn render_list(frame: &mut Frame, area: Rect, app: &App) {
    let (state, theme) = (&app.studies, &app.theme);
    let items: Vec<ListItem> = state
        .rows()
        .iter()
        .map(|s| {
            ListItem::new(Text::from(vec![
                Line::raw(format!(" {}", s.name())),
                Line::styled(format!("  {}", study_line(s)), study_style(s.state, theme)),
            ]))
        })
        .collect();
    let mut title = format!(" Studies ({}", items.len());
    if !state.problems.is_empty() {
        title.push_str(&format!(" · {} unreadable", state.problems.len()));
    }
    title.push_str(") ");
    let focused = state.focus == StudiesFocus::Studies;
    let list = List::new(items)
        .block(panel(title, focused, theme))
        .highlight_style(theme.selected);
    frame.render_stateful_widget(
        list,
        area,
        &mut ListState::default().with_selected(Some(state.selected)),
    );
}

fn early_stop_name(rule: EarlyStop) -> &'static str {
    match rule {
        EarlyStop::None => "no early stop",
        EarlyStop::Median { .. } => "median stop",
        EarlyStop::Asha { .. } => "asha",
    }
}

/// What the study optimises, how it searches, how far it got and why it stopped.
fn render_summary(frame: &mut Frame, area: Rect, study: &StudyView, theme: &Theme) {
    let spec = &study.spec;
    let done = study.trials.iter().filter(|t| t.state.is_final()).count();
    let mut lines = vec![
        Line::raw(format!("{} {}", spec.objective.direction, spec.objective.metric)),
        Line::raw(format!(
            "{} sampler · {}",
            spec.sampler,
            early_stop_name(spec.early_stop)
        )),
        Line::raw(format!(
            "{done}/{} done · {} running",
            spec.budget.trials,
            study.count(TrialState::Running)
        )),
        Line::raw(format!(
            "{} pruned · {} failed",
            study.count(TrialState::Pruned),
            study.count(TrialState::Failed),
        )),
        Line::styled(format!("{} trial-epochs spent", study.epochs_spent()), theme.muted),
    ];
    if !study.message.is_empty() {
        lines.push(Line::styled(study.message.clone(), study_style(study.state, theme)));
    }
    let block = panel(format!(" {} ", study.name()), false, theme);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block), area);
}

/// `pruned@e3` for a pruned trial, else its state.
fn trial_state(trial: &Trial) -> String {
    match &trial.pruned {
        Some(p) if trial.state == TrialState::Pruned => format!("pruned@e{}", p.epoch),
        _ => trial.state.to_string(),
    }
}

fn trial_style(state: TrialState, theme: &Theme) -> Style {
    match state {
        TrialState::Queued => theme.muted,
        TrialState::Running => theme.active,
        TrialState::Completed => theme.ok,
        TrialState::Pruned | TrialState::Cancelled => theme.warn,
        TrialState::Failed => theme.error,
    }
}

fn render_trials(frame: &mut Frame, area: Rect, app: &App, study: &StudyView) {
    let (state, theme) = (&app.studies, &app.theme);
    let arrow = match study.spec.objective.direction {
        Direction::Maximize => "↑",
        Direction::Minimize => "↓",
    };
    let title = format!(
        " Trials · {} {arrow} · {} ",
        study.spec.objective.metric,
        state.sort.label()
    );
    let block = panel(title, state.focus == StudiesFocus::Trials, theme);
    let trials = state.trials();
    if trials.is_empty() {
        placeholder(frame, area, block, "no trials planned yet", theme.muted);
        return;
    }
    let best = study.best().map(|(t, _)| t.number);
    let rows: Vec<Row> = trials.iter().map(|t| trial_row(study, t, best, theme)).collect();
    let mut header = vec!["   #".to_owned(), "STATE".to_owned()];
    header.extend(study.spec.params.iter().map(|p| short_param(&p.name).to_owned()));
    header.extend(["BEST".to_owned(), "EP".to_owned()]);
    let table = Table::new(rows, trial_widths(study, area.width.saturating_sub(2)))
        .header(Row::new(header).style(theme.header))
        .block(block)
        .row_highlight_style(theme.selected);
    let mut table_state = TableState::default().with_selected(Some(state.trial));
    frame.render_stateful_widget(table, area, &mut table_state);
}

fn short_param(name: &str) -> &str {
    name.strip_prefix("config.").unwrap_or(name)
}

/// Columns of the trials table besides the parameters: `#`, state, best, epochs.
const FIXED: [u16; 4] = [4, 9, 6, 2];

/// `#`, state, one column per parameter, best, epochs, within `width`. The fixed columns
/// never shrink; a parameter column gets its widest value first, then room for its name.
fn trial_widths(study: &StudyView, width: u16) -> Vec<Constraint> {
    let params = &study.spec.params;
    let spacing = (FIXED.len() + params.len()).saturating_sub(1) as u16;
    let mut room = width.saturating_sub(FIXED.iter().sum::<u16>() + spacing);
    let value_width = |name: &str| {
        let widest = study.trials.iter().filter_map(|t| t.params.get(name));
        let widest = widest.map(|v| value_text(v).chars().count()).max().unwrap_or(1);
        u16::try_from(widest).unwrap_or(PARAM_MAX).min(PARAM_MAX)
    };
    let mut columns: Vec<u16> = params.iter().map(|p| value_width(&p.name)).collect();
    let fair = room / (params.len().max(1) as u16);
    if columns.iter().sum::<u16>() > room {
        columns.iter_mut().for_each(|c| *c = (*c).min(fair.max(1)));
    }
    room = room.saturating_sub(columns.iter().sum());
    for (column, p) in columns.iter_mut().zip(params) {
        let header = u16::try_from(short_param(&p.name).chars().count()).unwrap_or(PARAM_MAX);
        let grow = header.min(PARAM_MAX).saturating_sub(*column).min(room);
        *column += grow;
        room -= grow;
    }
    let mut widths = vec![Constraint::Length(FIXED[0]), Constraint::Length(FIXED[1])];
    widths.extend(columns.into_iter().map(Constraint::Length));
    widths.extend([Constraint::Length(FIXED[2]), Constraint::Length(FIXED[3])]);
    widths
}

fn trial_row<'a>(study: &StudyView, t: &Trial, best: Option<u32>, theme: &Theme) -> Row<'a> {
    let mark = if best == Some(t.number) { "★" } else { " " };
    let mut cells = vec![
        Line::styled(
            format!("{mark}{:>3}", t.number),
            if mark == " " { theme.base } else { theme.ok },
        ),
        Line::styled(trial_state(t), trial_style(t.state, theme)),
    ];
    cells.extend(
        study
            .spec
            .params
            .iter()
            .map(|p| Line::raw(t.params.get(&p.name).map_or("–".to_owned(), value_text))),
    );
    cells.push(Line::raw(
        trial_best(study, t).map_or("–".to_owned(), |v| format!("{v:.4}")),
    ));
    cells.push(Line::raw(t.epochs_run().to_string()));
    Row::new(cells)
}

/// The best objective after each trial (a step line) over every trial's own best (dots).
fn render_best_so_far(frame: &mut Frame, area: Rect, study: &StudyView, theme: &Theme) {
    let block = panel(" best so far ", false, theme);
    let mut steps: Vec<(f64, f64)> = Vec::new();
    for (trial, best) in study.trials.iter().zip(study.best_so_far()) {
        let (x, Some(y)) = (f64::from(trial.number), best) else {
            continue;
        };
        if let Some(&(_, last)) = steps.last()
            && last != y
        {
            steps.push((x, last));
        }
        steps.push((x, y));
    }
    if steps.is_empty() {
        placeholder(frame, area, block, "no trial validated yet", theme.muted);
        return;
    }
    let own: Vec<(f64, f64)> = study
        .trials
        .iter()
        .filter_map(|t| Some((f64::from(t.number), trial_best(study, t)?)))
        .collect();
    let last = study.trials.last().map_or(1.0, |t| f64::from(t.number)).max(1.0);
    let mut trials = Trace::line("trial", own, theme.muted);
    trials.scatter = true;
    let mut line = Trace::line("best", steps, theme.ok);
    line.scatter = line.points.len() < 2;
    render_traces(frame, area, block, &[trials, line], Axes::fit([0.0, last]), theme);
}

/// The selected trial's training and validation loss, from its latest job's metrics.
fn render_trial_loss(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let Some(trial) = app.studies.current_trial() else {
        placeholder(
            frame,
            area,
            panel(" loss ", false, theme),
            "no trial selected",
            theme.muted,
        );
        return;
    };
    let block = panel(format!(" trial {} · loss ", trial.number), false, theme);
    let Some(job) = trial.job() else {
        placeholder(frame, area, block, "queued: no job yet", theme.muted);
        return;
    };
    let run = app
        .jobs
        .runs
        .get(job)
        .filter(|r| !r.train.is_empty() || !r.val.is_empty());
    let Some((run, range)) = run.and_then(|r| Some((r, run_range(r, Zoom::Full)?))) else {
        let text = match trial.state {
            TrialState::Queued | TrialState::Running => "waiting for the first metrics…",
            _ => "no metrics recorded",
        };
        placeholder(frame, area, block, text, theme.muted);
        return;
    };
    let columns = area.width.saturating_sub(10).max(10) as usize;
    let traces = loss_traces(run, None, ChartOptions::default(), range, columns, theme);
    let block = block.title(legend(&traces));
    let axes = Axes::fit([range.0, range.1.max(range.0 + 1.0)]);
    render_traces(frame, area, block, &traces, axes, theme);
}

/// The selected trial: how it stands, its best epoch, its job, and why it was pruned or failed.
fn render_trial_detail(frame: &mut Frame, area: Rect, study: &StudyView, trial: Option<&Trial>, theme: &Theme) {
    let Some(t) = trial else {
        placeholder(frame, area, panel(" trial ", false, theme), "", theme.muted);
        return;
    };
    let objective = study.spec.objective;
    let state = match (&t.pruned, t.state, t.epochs_run()) {
        (Some(p), TrialState::Pruned, _) => format!("pruned at epoch {}", p.epoch),
        (_, s, 1) => format!("{s} · 1 epoch"),
        (_, s, n) => format!("{s} · {n} epochs"),
    };
    let mut lines = vec![Line::styled(state, trial_style(t.state, theme))];
    // Why it was pruned or failed matters most: it comes before what fits below.
    let why = t.pruned.as_ref().map_or(t.message.as_str(), |p| p.reason.as_str());
    let why_style = if t.state == TrialState::Failed {
        theme.error
    } else {
        theme.warn
    };
    lines.extend(why.lines().map(|l| Line::styled(l.to_owned(), why_style)));
    if let Some((i, v)) = objective.best(t.values.iter().copied()) {
        lines.push(Line::raw(format!("best {v:.4} at epoch {}", i + 1)));
    }
    if let Some(job) = t.job() {
        let device = t.device.as_deref().map_or(String::new(), |d| format!(" · {d}"));
        lines.push(Line::styled(format!("{job}{device}"), theme.muted));
    }
    let block = panel(format!(" trial {} ", t.number), false, theme);
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }).block(block), area);
}
