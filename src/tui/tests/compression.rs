//! Model compression in the console: the optimize form (`o` on a version) and what it sends,
//! and a compressed version's lineage and comparison report in the versions list, the detail
//! pane and the compare view.

use insta::assert_snapshot;
use ratatui::crossterm::event::KeyCode;

use super::{draw, feed, fixtures, key, keys, populated};
use crate::tui::action::{Effect, Screen};
use crate::tui::app::{App, Overlay};
use crate::tui::event::DaemonMsg;
use crate::tui::form::{FormKind, LaunchForm};
use crate::tui::request::Request;
use kiln_core::api::JobView;
use kiln_core::compression::{CompressRequest, Method, Precision, PruneSettings, QuantizeSettings};
use kiln_core::jobs::JobRequest;

/// The console with fmnist-cnn@4 (int8 of v3) loaded and selected.
fn compressed() -> App {
    let mut app = populated();
    feed(&mut app, fixtures::compressed_detail());
    app
}

fn form(app: &App) -> &LaunchForm {
    match &app.overlay {
        Some(Overlay::Form(form)) => form,
        other => panic!("no form open: {other:?}"),
    }
}

fn submitted(method: Method) -> Vec<Effect> {
    let request = CompressRequest::new("fmnist-cnn@3".parse().unwrap_or_else(|e| panic!("{e}")), method);
    vec![Effect::Request(Request::SubmitJob(Box::new(JobRequest::Compress(
        request,
    ))))]
}

#[test]
fn o_opens_the_optimize_form_at_the_clis_defaults() {
    let mut app = populated();
    assert!(key(&mut app, KeyCode::Char('o')).is_empty(), "opening sends nothing");
    let form = form(&app);
    assert_eq!(form.kind, FormKind::Compress);
    let values: Vec<(&str, &str)> = form.fields.iter().map(|f| (f.label, f.text_value())).collect();
    assert_eq!(
        values,
        [
            ("version", "fmnist-cnn@3"),
            ("method", "prune"),
            ("sparsity", "0.5"),
            ("structured", "no"),
            ("finetune epochs", "1"),
            ("precision", "int8"),
            ("sample limit", "all"),
        ]
    );
    assert_snapshot!(draw(&app, 80, 24));
}

#[test]
fn submitting_sends_a_compress_job_and_shows_it_on_the_jobs_screen() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('o'));
    let effects = key(&mut app, KeyCode::Enter);
    assert_eq!(effects, submitted(Method::Prune(PruneSettings::new(0.5))));
    assert_eq!(app.overlay, None);
    assert_eq!(
        app.message.as_ref().map(|m| m.text.as_str()),
        Some("launching compression…")
    );
    let job: JobView = fixtures::decode(fixtures::compress_job("j1764434999-c0de"));
    feed(&mut app, vec![DaemonMsg::Submitted(job)]);
    assert_eq!(app.screen, Screen::Jobs);
    assert_eq!(app.jobs.current().map(|j| j.id.as_str()), Some("j1764434999-c0de"));
}

#[test]
fn quantizing_hides_the_pruning_fields_and_sends_the_chosen_precision() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('o'));
    key(&mut app, KeyCode::Right); // prune -> quantize
    key(&mut app, KeyCode::Down); // past the hidden pruning fields
    assert_eq!(form(&app).fields[form(&app).focus].label, "precision");
    key(&mut app, KeyCode::Left); // int8 -> fp16
    let screen = draw(&app, 80, 24);
    assert!(!screen.contains("sparsity"), "{screen}");
    assert!(screen.contains("◀ fp16 ▶"), "{screen}");
    let precision = Precision::Fp16;
    assert_eq!(
        key(&mut app, KeyCode::Enter),
        submitted(Method::Quantize(QuantizeSettings { precision }))
    );
}

#[test]
fn a_sparsity_out_of_range_is_refused_in_the_form() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('o'));
    key(&mut app, KeyCode::Down);
    for _ in 0..3 {
        key(&mut app, KeyCode::Backspace);
    }
    keys(&mut app, "1.5");
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing is sent");
    let error = form(&app).error.clone().unwrap_or_default();
    assert!(error.contains("sparsity must be strictly between 0 and 1"), "{error}");
    assert_snapshot!(draw(&app, 80, 24));
    assert!(key(&mut app, KeyCode::Esc).is_empty());
    assert_eq!(app.overlay, None);
}

#[test]
fn what_kilnd_would_refuse_about_the_parent_is_refused_in_the_form() {
    let mut app = compressed();
    assert_eq!(app.models.current_version().map(|(_, v)| v), Some(4));
    key(&mut app, KeyCode::Char('o'));
    assert!(key(&mut app, KeyCode::Enter).is_empty(), "nothing is sent");
    let error = form(&app).error.clone().unwrap_or_default();
    assert!(
        error.contains("fmnist-cnn@4 holds int8 weights; prune its parent fmnist-cnn@3 instead"),
        "{error}"
    );
}

#[test]
fn readonly_refuses_the_optimize_form() {
    let mut app = populated();
    app.readonly = true;
    assert!(key(&mut app, KeyCode::Char('o')).is_empty());
    assert_eq!(app.overlay, None);
    let text = app.message.as_ref().map(|m| m.text.clone()).unwrap_or_default();
    assert!(text.contains("read-only"), "{text}");
}

#[test]
fn o_still_overlays_a_run_on_the_jobs_screen() {
    let mut app = populated();
    key(&mut app, KeyCode::Char('2'));
    key(&mut app, KeyCode::Char('o'));
    assert_eq!(app.overlay, None, "no form on the jobs screen");
}

#[test]
fn the_versions_list_shows_what_a_compressed_version_was_made_from() {
    let mut app = compressed();
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 120, 36);
    assert!(screen.contains("int8 of v3"), "{screen}");
    key(&mut app, KeyCode::Char('/'));
    keys(&mut app, "int8");
    key(&mut app, KeyCode::Enter);
    assert_eq!(app.models.visible[0].versions, vec![4], "the lineage is searchable");
}

#[test]
fn snapshot_detail_of_a_compressed_version_100x36() {
    let mut app = compressed();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 100, 36);
    for figure in [
        "int8 of v3 · ← fmnist-cnn@3",
        "int8 weights dequantized to f32 at load",
        "1.65 MB  418.0 kB  3.95x smaller",
        "0.9120    0.9100  -0.20 pt",
        "0.420     0.400  1.05x faster",
        "fc.weight 10x1568 · 0.1% zero · int8",
    ] {
        assert!(screen.contains(figure), "{figure} missing:\n{screen}");
    }
    assert_snapshot!(screen);
}

#[test]
fn snapshot_compare_a_compressed_child_with_its_parent_100x36() {
    let mut app = compressed();
    key(&mut app, KeyCode::Enter);
    key(&mut app, KeyCode::Char('j'));
    key(&mut app, KeyCode::Char('m'));
    key(&mut app, KeyCode::Char('k'));
    key(&mut app, KeyCode::Enter);
    let screen = draw(&app, 100, 36);
    let row = |cells: &[&str]| screen.lines().any(|l| cells.iter().all(|c| l.contains(c)));
    for cells in [
        &["compression", "-", "int8 of v3"][..],
        &["measured", "fashion-mnist test, cpu"],
        &["size ", "1.65 MB", "418.0 kB", "3.95x smaller"],
        &["accuracy", "0.9120", "0.9100", "-0.20 pt"],
        &["p50 ms b64", "3.100", "3.000", "1.03x faster"],
    ] {
        assert!(row(cells), "{cells:?} missing:\n{screen}");
    }
    assert_snapshot!(screen);
}
