//! The drill-down into an evaluation: the confusion matrix under a cell cursor, a cell's
//! samples sorted by confidence or loss, the hardest samples and the disagreements with the
//! marked version, one sample as the model saw it (half-block image and probability bars, a
//! quote with its unknown words marked, a rating), calibration, and kilnd's refusals.

use insta::assert_snapshot;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Modifier;

use super::fixtures::{self, name};
use super::{draw, feed, key, keys, populated};
use crate::tui::action::Effect;
use crate::tui::app::App;
use crate::tui::event::DaemonMsg;
use crate::tui::request::Request;
use crate::tui::state::inspect::{Loadable, SampleSet};
use crate::tui::state::models::ModelsFocus;
use kiln_core::client::ClientError;
use kiln_core::inspect::{InspectQuery, SampleOrder};

/// The models screen with fmnist-cnn@3's inspectable report, its eval view open.
fn eval_view() -> App {
    let mut app = populated();
    feed(&mut app, vec![fixtures::inspectable_report()]);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.focus, ModelsFocus::Detail);
    assert!(
        key(&mut app, KeyCode::Enter).is_empty(),
        "the eval view needs nothing fetched"
    );
    assert_eq!(app.models.focus, ModelsFocus::Matrix);
    app
}

fn cell_query(truth: usize, predicted: usize, order: SampleOrder) -> InspectQuery {
    SampleSet::Cell { truth, predicted }.query(order)
}

fn inspect(version: u32, query: InspectQuery) -> Effect {
    Effect::Request(Request::Inspect {
        model: name("fmnist-cnn"),
        version,
        query,
    })
}

/// The eval view with the pullovers taken for T-shirts listed (cell 2,0).
fn cell_listed() -> App {
    let mut app = eval_view();
    keys(&mut app, "jj");
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        vec![inspect(3, cell_query(2, 0, SampleOrder::Confidence))]
    );
    let answer = fixtures::inspected(
        "fmnist-cnn",
        3,
        cell_query(2, 0, SampleOrder::Confidence),
        9,
        fixtures::pullovers_as_tshirts(),
    );
    feed(&mut app, vec![answer]);
    app
}

/// The first pullover open, as the model saw it.
fn sample_open() -> App {
    let mut app = cell_listed();
    let wanted = Request::Sample {
        model: name("fmnist-cnn"),
        version: 3,
        index: 812,
    };
    assert_eq!(key(&mut app, KeyCode::Enter), vec![Effect::Request(wanted)]);
    assert_eq!(app.models.focus, ModelsFocus::Sample);
    feed(&mut app, vec![fixtures::image_sample()]);
    app
}

fn buffer(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap_or_else(|e| panic!("test backend: {e}"));
    if let Err(e) = terminal.draw(|f| crate::tui::ui::render(f, app)) {
        panic!("draw failed: {e}");
    }
    terminal.backend().buffer().clone()
}

#[test]
fn arrows_move_the_cell_cursor_inside_the_matrix_and_enter_lists_the_cell() {
    let mut app = eval_view();
    assert_eq!(app.models.cell, (0, 0));
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Right);
    assert_eq!(app.models.cell, (1, 1));
    key(&mut app, KeyCode::Char('h'));
    assert_eq!(app.models.cell, (1, 0), "← moves to the previous predicted class");
    keys(&mut app, "kkkk");
    key(&mut app, KeyCode::Char('G'));
    keys(&mut app, "llll");
    assert_eq!(app.models.cell, (2, 2), "the cursor stays inside the 3×3 matrix");
    keys(&mut app, "hh");
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(effects, vec![inspect(3, cell_query(2, 0, SampleOrder::Confidence))]);
    assert_eq!(
        effects,
        vec![inspect(
            3,
            InspectQuery {
                cell: Some("2,0".into()),
                sort: Some(SampleOrder::Confidence),
                ..InspectQuery::default()
            }
        )],
        "the cell goes to kilnd as TRUE,PRED class indexes"
    );
    assert_eq!(app.models.focus, ModelsFocus::Samples);
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("loading samples…"), "{screen}");
}

#[test]
fn s_sorts_the_list_by_loss_and_back_refetching_and_stale_answers_are_dropped() {
    let mut app = cell_listed();
    assert_eq!(app.models.inspect.list.as_ref().map(|l| l.samples().len()), Some(3));
    let effects = key(&mut app, KeyCode::Char('s'));
    assert_eq!(effects, vec![inspect(3, cell_query(2, 0, SampleOrder::Loss))]);
    assert_eq!(app.message.as_ref().map(|m| m.text.as_str()), Some("samples by loss"));
    // The answer to the sort by confidence arrives late: it is not what is on screen now.
    let late = fixtures::inspected(
        "fmnist-cnn",
        3,
        cell_query(2, 0, SampleOrder::Confidence),
        9,
        fixtures::pullovers_as_tshirts(),
    );
    feed(&mut app, vec![late]);
    let list = app.models.inspect.list.as_ref();
    assert!(matches!(list.map(|l| &l.answer), Some(Loadable::Loading)));
    let mut by_loss = fixtures::pullovers_as_tshirts();
    by_loss.reverse();
    feed(
        &mut app,
        vec![fixtures::inspected(
            "fmnist-cnn",
            3,
            cell_query(2, 0, SampleOrder::Loss),
            9,
            by_loss,
        )],
    );
    assert_eq!(app.models.inspect.selected().map(|s| s.index), Some(97));
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("3 of 9 · by loss"), "{screen}");
    assert_eq!(
        key(&mut app, KeyCode::Char('s')),
        vec![inspect(3, cell_query(2, 0, SampleOrder::Confidence))]
    );
}

#[test]
fn enter_opens_a_sample_arrows_browse_and_esc_goes_back_a_level_at_a_time() {
    let mut app = sample_open();
    let wanted = Request::Sample {
        model: name("fmnist-cnn"),
        version: 3,
        index: 4031,
    };
    assert_eq!(
        key(&mut app, KeyCode::Down),
        vec![Effect::Request(wanted)],
        "↓ opens the next sample"
    );
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.models.focus, ModelsFocus::Samples);
    key(&mut app, KeyCode::Esc);
    assert_eq!(
        app.models.focus,
        ModelsFocus::Matrix,
        "back to the matrix the list came from"
    );
    assert!(app.models.inspect.list.is_none());
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.models.focus, ModelsFocus::Detail);
}

#[test]
fn an_image_sample_is_drawn_in_half_blocks_beside_its_probability_bars() {
    let app = sample_open();
    let screen = draw(&app, 120, 36);
    assert!(screen.contains('▀'), "half-blocks on screen:\n{screen}");
    let bars = screen.lines().filter(|l| l.contains('█') && l.contains('%')).count();
    assert_eq!(bars, 3, "one bar per top class:\n{screen}");
    assert!(screen.contains("top 3 · half-blocks"), "{screen}");
    assert_snapshot!(screen);
}

#[test]
fn snapshot_image_sample_80x24() {
    let app = sample_open();
    let screen = draw(&app, 80, 24);
    assert!(screen.contains('▀') && screen.contains("71.2%"), "{screen}");
    assert_snapshot!(screen);
}

#[test]
fn snapshot_eval_view_with_cursor_and_calibration_100x30() {
    let mut app = eval_view();
    keys(&mut app, "jj");
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("true Pullover → predicted T-shirt: 9 samples"),
        "{screen}"
    );
    assert!(screen.contains("ECE 0.0420"), "{screen}");
    assert_snapshot!(screen);
}

#[test]
fn snapshot_eval_view_stacks_the_reliability_diagram_80x24() {
    let app = eval_view();
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn the_reliability_bars_shade_over_confidence_and_mark_under_confidence() {
    let theme = crate::tui::theme::Theme::default();
    let DaemonMsg::Report { report, .. } = fixtures::inspectable_report() else {
        panic!("a report");
    };
    let Some(calibration) = &report.calibration else {
        panic!("the fixture has calibration");
    };
    let lines = crate::tui::screens::eval::calibration_lines(calibration, &theme);
    let text: Vec<String> = lines.iter().map(ToString::to_string).collect();
    assert_eq!(text[0], "calibration ECE 0.0420");
    assert_eq!(lines.len(), 2 + 6, "a row per bin that holds rows: {text:#?}");
    // 0.5–0.6: accuracy 0.40 against confidence 0.56: 8 cells of bar, 3 of shade.
    let over = &text[3];
    assert!(over.starts_with("0.5–0.6  ████████░░░ "), "{over}");
    // 0.3–0.4: accuracy 0.50 above its confidence 0.36: the bar passes it, in `ok`.
    let under = &lines[2];
    assert!(
        under
            .spans
            .iter()
            .any(|s| s.style == theme.ok && s.content.contains('█'))
    );
}

#[test]
fn hardest_lists_by_loss_and_disagree_needs_a_marked_version_of_the_model() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::inspectable_report()]);
    key(&mut app, KeyCode::Enter);
    let hardest = key(&mut app, KeyCode::Char('w'));
    let query = InspectQuery {
        worst: Some(crate::tui::state::inspect::HARDEST),
        sort: Some(SampleOrder::Loss),
        ..InspectQuery::default()
    };
    assert_eq!(hardest, vec![inspect(3, query)]);
    key(&mut app, KeyCode::Esc);
    assert_eq!(app.models.focus, ModelsFocus::Versions, "back where w was pressed");

    assert!(key(&mut app, KeyCode::Char('v')).is_empty());
    let text = app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default();
    assert!(text.starts_with("mark a version with m"), "{text}");
    // v2 marked, v3 selected: where v2 disagrees with v3.
    keys(&mut app, "jmk");
    let query = InspectQuery {
        disagree: Some(2),
        sort: Some(SampleOrder::Confidence),
        ..InspectQuery::default()
    };
    assert_eq!(key(&mut app, KeyCode::Char('v')), vec![inspect(3, query)]);
}

#[test]
fn snapshot_disagreements_with_the_marked_version_100x30() {
    let mut app = populated();
    feed(&mut app, vec![fixtures::inspectable_report()]);
    key(&mut app, KeyCode::Enter);
    keys(&mut app, "jmkv");
    let query = SampleSet::Disagree { other: 2 }.query(SampleOrder::Confidence);
    let mut samples = fixtures::pullovers_as_tshirts();
    samples[0]["other"] = serde_json::json!({ "version": 2, "prediction": "Pullover", "confidence": 0.66 });
    samples[1]["other"] = serde_json::json!({ "version": 2, "prediction": "Trouser", "confidence": 0.4 });
    samples.truncate(2);
    feed(&mut app, vec![fixtures::inspected("fmnist-cnn", 3, query, 2, samples)]);
    let screen = draw(&app, 100, 30);
    assert!(
        screen.contains("where v2 disagrees") && screen.contains("Pullover 66.0%"),
        "{screen}"
    );
    assert_snapshot!(screen);
}

/// A samples list of `model@1`'s hardest rows over `classes` with `sample` open, as kilnd
/// answered.
fn open_other(model: &str, classes: &[&str], sample: DaemonMsg) -> App {
    let mut app = populated();
    let request = app.models.inspect.open(name(model), 1, SampleSet::Hardest);
    let Request::Inspect { query, .. } = request else {
        panic!("an inspect request");
    };
    let DaemonMsg::SampleLoaded { detail, .. } = &sample else {
        panic!("a sample");
    };
    let view = serde_json::to_value(&detail.sample).unwrap_or_default();
    feed(
        &mut app,
        vec![fixtures::inspected_with(model, 1, query, classes, 1, vec![view])],
    );
    app.models.focus = ModelsFocus::Samples;
    key(&mut app, KeyCode::Enter);
    feed(&mut app, vec![sample]);
    app
}

#[test]
fn a_quote_marks_its_words_outside_the_vocabulary() {
    let classes = ["fortunes", "riddles", "humorists"];
    let app = open_other("fortunes-rnn", &classes, fixtures::text_sample());
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("(2 of 11 words)"), "{screen}");
    assert_snapshot!(screen);
    let buffer = buffer(&app, 100, 30);
    let underlined: String = buffer
        .content()
        .iter()
        .filter(|c| c.modifier.contains(Modifier::UNDERLINED))
        .map(|c| c.symbol())
        .collect();
    assert_eq!(
        underlined, "quizzicalgnomesmarked",
        "only the unknown words (and the legend)"
    );
}

#[test]
fn snapshot_a_rating_with_the_users_other_ratings_100x30() {
    let app = open_other("ratings-mf", &[], fixtures::rating_sample());
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("the user's other ratings (4)"), "{screen}");
    assert_snapshot!(screen);
}

#[test]
fn a_report_without_predictions_says_to_re_run_eval() {
    let mut app = populated();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.focus, ModelsFocus::Matrix);
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing is asked of kilnd");
    let text = app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default();
    assert!(text.contains("re-run `kiln eval`"), "{text}");
    assert_eq!(app.models.focus, ModelsFocus::Matrix);
}

#[test]
fn kilnds_refusals_show_in_the_pane_never_a_panic() {
    let mut app = cell_listed();
    let query = cell_query(2, 0, SampleOrder::Loss);
    key(&mut app, KeyCode::Char('s'));
    let message = "fmnist-cnn@3 has no evaluation with stored predictions; run `kiln eval fmnist-cnn@3 --data …` first";
    let failed = DaemonMsg::Failed {
        request: Request::Inspect {
            model: name("fmnist-cnn"),
            version: 3,
            query,
        },
        error: ClientError::Http {
            status: 404,
            message: message.into(),
        },
    };
    feed(&mut app, vec![failed]);
    let screen = draw(&app, 100, 30);
    assert!(screen.contains("has no evaluation with stored"), "{screen}");

    // An older kilnd without the route.
    let mut app = cell_listed();
    key(&mut app, KeyCode::Enter);
    let failed = DaemonMsg::Failed {
        request: Request::Sample {
            model: name("fmnist-cnn"),
            version: 3,
            index: 812,
        },
        error: ClientError::Http {
            status: 404,
            message: "no such route".into(),
        },
    };
    feed(&mut app, vec![failed]);
    let screen = draw(&app, 80, 24);
    assert!(screen.contains("this kilnd cannot show samples"), "{screen}");
}
