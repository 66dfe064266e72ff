//! Model compression end to end: the real daemon and workers on a slice of Fashion-MNIST.
//! A trained `mlp` is quantized (int8, bf16) and pruned (unstructured with a fine-tune,
//! structured); every child loads, answers through the KServe endpoint and carries its
//! comparison with the parent; a deployed int8 version serves and rolls back like any other.
//! Bad requests are refused with exit 2 before anything runs, and register nothing.

use std::path::Path;

use serde_json::{Value, json};

mod common;
use common::{Daemon, kiln, start};

/// Trains the parent: a small mlp, two epochs of 4,000 images (about a second).
fn train_parent(home: &Path) {
    let out = kiln(
        home,
        &[
            "--json",
            "train",
            "mlp",
            "--data",
            "fashion-mnist",
            "--limit",
            "4000",
            "--epochs",
            "2",
            "--lr",
            "0.003",
            "--config",
            r#"{"hidden": [64, 32]}"#,
            "--name",
            "fm",
        ],
    );
    assert_eq!(common::json(&out)["version"], "fm@1", "{out:?}");
}

/// Runs `kiln --json ARGS` for a compress job and returns the child's manifest.
fn compress(home: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend(args);
    let end = common::json(&kiln(home, &all));
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end["manifest"].clone()
}

fn version_count(home: &Path) -> usize {
    let view = common::json(&kiln(home, &["--json", "models", "show", "fm"]));
    view["model"]["versions"].as_array().map_or(0, Vec::len)
}

fn inference(home: &Path) -> String {
    let address = std::fs::read_to_string(home.join("daemon/inference_address")).expect("inference address");
    format!("http://{}", address.trim())
}

/// One all-0.5 image through `POST /v2/models/fm[/versions/V]/infer`: the FP32 probabilities.
fn infer(home: &Path, version: Option<u64>) -> Vec<f64> {
    let path = match version {
        Some(v) => format!("/v2/models/fm/versions/{v}/infer"),
        None => "/v2/models/fm/infer".to_owned(),
    };
    let body = json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5; 784]}]});
    let url = format!("{}{path}", inference(home));
    let (status, answer) = common::http_json("POST", &url, None, Some(body.to_string().as_bytes()));
    assert_eq!(status, 200, "{answer:#}");
    let probabilities = answer["outputs"]
        .as_array()
        .and_then(|o| o.iter().find(|t| t["name"] == "probabilities"))
        .unwrap_or_else(|| panic!("no probabilities in {answer:#}"));
    assert_eq!(probabilities["datatype"], "FP32", "{answer:#}");
    assert_eq!(probabilities["shape"], json!([1, 10]), "{answer:#}");
    let values: Vec<f64> = probabilities["data"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    assert!((values.iter().sum::<f64>() - 1.0).abs() < 1e-3, "{values:?}");
    values
}

/// Deploys past the gates: each child is switched to in turn to show that it serves, and a
/// child compressed from a small parent may well score worse than the one before it.
fn deploy(home: &Path, reference: &str) {
    let out = kiln(home, &["deploy", reference, "--force", "--gate-samples", "200"]);
    assert!(out.status.success(), "{out:?}");
}

fn report(manifest: &Value) -> &Value {
    &manifest["compression"]["report"]
}

fn figure(manifest: &Value, side: &str, name: &str) -> f64 {
    report(manifest)[side][name]
        .as_f64()
        .unwrap_or_else(|| panic!("no {side}.{name} in {manifest:#}"))
}

/// The report compares against the parent on the same test split, with sizes, counts,
/// accuracy and latency on both sides.
fn check_report(manifest: &Value) {
    assert_eq!(manifest["parent"], json!({"model": "fm", "version": 1}), "{manifest:#}");
    let report = report(manifest);
    assert_eq!(
        (report["split"].as_str(), report["rows"].as_u64()),
        (Some("test"), Some(400))
    );
    for side in ["parent", "child"] {
        for name in [
            "size_bytes",
            "size_zstd_bytes",
            "params",
            "nonzeros",
            "accuracy",
            "macro_f1",
            "p50_ms_batch1",
            "p50_ms_batch64",
        ] {
            assert!(figure(manifest, side, name) > 0.0, "{side}.{name} in {report:#}");
        }
    }
    assert!(figure(manifest, "parent", "accuracy") > 0.5, "{report:#}");
}

#[test]
fn quantized_and_pruned_children_load_serve_and_carry_their_reports() {
    let home = tempfile::tempdir().expect("temp home");
    let _daemon: Daemon = start(home.path());
    train_parent(home.path());
    let limit = ["--limit", "400"];

    let int8 = compress(home.path(), &[&["quantize", "fm@1", "--int8"][..], &limit].concat());
    check_report(&int8);
    let (parent_bytes, child_bytes) = (
        figure(&int8, "parent", "size_bytes"),
        figure(&int8, "child", "size_bytes"),
    );
    assert!(parent_bytes >= 3.5 * child_bytes, "{parent_bytes} vs {child_bytes}");
    let drop = figure(&int8, "parent", "accuracy") - figure(&int8, "child", "accuracy");
    assert!(drop.abs() <= 0.02, "int8 moved accuracy by {drop}");
    let layers = int8["compression"]["layers"].as_array().expect("layers");
    let precision = |name: &str| {
        layers
            .iter()
            .find(|l| l["name"] == name)
            .map(|l| l["precision"].clone())
    };
    assert_eq!(precision("hidden.0.weight"), Some(json!("int8")), "{layers:?}");
    assert_eq!(precision("hidden.0.bias"), Some(json!("f32")), "{layers:?}");
    assert!(
        int8["compression"]["compute_note"]
            .as_str()
            .is_some_and(|n| n.contains("dequantized")),
        "{int8:#}"
    );

    let bf16 = compress(home.path(), &[&["quantize", "fm@1", "--bf16"][..], &limit].concat());
    check_report(&bf16);
    assert!(figure(&bf16, "parent", "size_bytes") > 1.9 * figure(&bf16, "child", "size_bytes"));

    let sparse = compress(
        home.path(),
        &[&["prune", "fm@1", "--sparsity", "0.6", "--scope", "layer"][..], &limit].concat(),
    );
    check_report(&sparse);
    let layers = sparse["compression"]["layers"].as_array().expect("layers");
    for layer in layers {
        let zeros = 1.0 - layer["nonzeros"].as_f64().unwrap_or(0.0) / layer["params"].as_f64().unwrap_or(1.0);
        match layer["name"].as_str().is_some_and(|n| n.ends_with(".weight")) {
            // Kept at zero through the fine-tune: Adam did not regrow them.
            true => assert!((zeros - 0.6).abs() < 0.01, "{layer}"),
            false => assert!(zeros < 0.1, "a bias was pruned: {layer}"),
        }
    }
    assert!(figure(&sparse, "child", "size_zstd_bytes") < 0.7 * figure(&sparse, "parent", "size_zstd_bytes"));

    let structured = compress(
        home.path(),
        &[&["prune", "fm@1", "--sparsity", "0.5", "--structured"][..], &limit].concat(),
    );
    check_report(&structured);
    assert_eq!(
        structured["architecture"]["config"]["hidden"],
        json!([32, 16]),
        "{structured:#}"
    );
    assert!(figure(&structured, "child", "params") < 0.6 * figure(&structured, "parent", "params"));

    // Every child is an ordinary version: it loads and answers through KServe v2.
    deploy(home.path(), "fm@1");
    let parent = infer(home.path(), None);
    for version in 2..=5 {
        deploy(home.path(), &format!("fm@{version}"));
        infer(home.path(), None);
    }
    // The int8 version serves and rolls back like any other.
    deploy(home.path(), "fm@2");
    let quantized = infer(home.path(), Some(2));
    let gap = parent
        .iter()
        .zip(&quantized)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(gap < 0.05, "int8 answers {quantized:?} against {parent:?}");
    let out = kiln(home.path(), &["--json", "rollback", "fm"]);
    assert_eq!(common::json(&out)["to"], 5, "{out:?}");
    let served = common::json(&kiln(home.path(), &["--json", "deployments"]));
    assert!(served.to_string().contains(r#""version":5"#), "{served:#}");
    let view = common::json(&kiln(home.path(), &["--json", "models", "show", "fm@2"]));
    assert_eq!(
        view["evals"][0]["split"], "test",
        "the child carries its own eval report: {view:#}"
    );
}

#[test]
fn bad_compress_requests_exit_2_and_register_nothing() {
    let home = tempfile::tempdir().expect("temp home");
    let daemon = start(home.path());
    train_parent(home.path());
    let int8 = compress(home.path(), &["quantize", "fm@1", "--int8", "--limit", "200"]);
    assert_eq!(int8["version"], 2);
    let refused = |args: &[&str], says: &str| {
        let out = kiln(home.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let text = common::stderr(&out);
        assert!(text.contains(says), "{args:?} says {text}");
    };
    refused(&["prune", "fm@1", "--sparsity", "1.5"], "strictly between 0 and 1");
    refused(&["prune", "fm@1", "--sparsity", "0"], "strictly between 0 and 1");
    refused(&["quantize", "fm@1"], "--int8");
    refused(&["quantize", "fm@1", "--int4"], "--int4");
    refused(&["quantize", "fm@2", "--int8"], "already int8");
    refused(&["quantize", "fm@2", "--bf16"], "holds int8 weights");
    refused(&["prune", "fm@2", "--sparsity", "0.5"], "holds int8 weights");
    refused(&["prune", "fm@9", "--sparsity", "0.5"], "fm@9");
    refused(&["prune", "nope@1", "--sparsity", "0.5"], "nope");
    refused(
        &["prune", "fm@1", "--sparsity", "0.5", "--structured", "--scope", "layer"],
        "unstructured pruning only",
    );
    // The control API refuses the same (and an unknown method) with a 4xx: no job is created.
    let jobs = format!("{}/api/v1/jobs", daemon.base);
    let before = common::http_json("GET", &jobs, Some(&daemon.token), None).1["jobs"]
        .as_array()
        .map_or(0, Vec::len);
    for body in [
        json!({"kind": "compress", "reference": "fm@1", "method": {"method": "distill"}}),
        json!({"kind": "compress", "reference": "fm@1", "method": {"method": "prune", "sparsity": 2.0}}),
        json!({"kind": "compress", "reference": "fm@1", "method": {"method": "quantize", "precision": "int4"}}),
    ] {
        let (status, answer) = common::http_json("POST", &jobs, Some(&daemon.token), Some(body.to_string().as_bytes()));
        assert!((400..500).contains(&status), "{body}: {status} {answer}");
        assert!(answer["error"].is_string(), "{answer}");
    }
    let after = common::http_json("GET", &jobs, Some(&daemon.token), None).1["jobs"]
        .as_array()
        .map_or(0, Vec::len);
    assert_eq!(before, after, "a refused request created a job");
    assert_eq!(version_count(home.path()), 2, "a refused request registered a version");
}
