//! `kiln models import` and `kilnd` end to end with real libtorch: PyTorch state dicts,
//! safetensors and burn records become registry versions that compute what PyTorch computed.

use std::path::Path;

mod common;
use common::{json, kiln, kilnd, stderr};

const MLP_CONFIG: &str = r#"{"inputs": 4, "hidden": [8], "classes": 3}"#;

use common::fixture;

/// `kiln models import <model> <file> --arch <arch> --config <config> [--json]`.
fn import(home: &Path, model: &str, file: &str, arch: &str, config: &str, json: bool) -> std::process::Output {
    let mut args = vec!["models", "import", model, file, "--arch", arch, "--config", config];
    if json {
        args.push("--json");
    }
    kiln(home, &args)
}

fn outputs(home: &Path, reference: &str) -> Vec<f64> {
    let out = json(&kilnd(
        home,
        &["predict", reference, "--input", "[[0.5, -1.0, 2.0, 0.25]]"],
    ));
    out["outputs"][0]
        .as_array()
        .expect("row")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

fn expected_mlp_outputs() -> Vec<f64> {
    let text = std::fs::read_to_string(fixture("mlp-4-8-3.expected.txt")).expect("expected outputs");
    text.split_whitespace().map(|v| v.parse().expect("float")).collect()
}

fn assert_close(got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-4, "{got:?} vs {want:?}");
    }
}

#[test]
fn kilnd_version_reports_libtorch_and_devices() {
    let home = tempfile::tempdir().expect("tempdir");
    let info = json(&kilnd(home.path(), &["--version", "--json"]));
    assert_eq!(info["kiln"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["libtorch"]["version"], "2.9.0");
    assert!(info["libtorch"]["cpu_threads"].as_i64().unwrap_or(0) >= 1);
    assert!(info["libtorch"]["cuda_devices"].as_i64().is_some());
    assert!(
        info["libtorch"]["loaded_from"]
            .as_str()
            .unwrap_or("")
            .ends_with("libtorch_cpu.so")
    );
}

#[test]
fn a_pytorch_state_dict_imports_and_computes_what_pytorch_computed() {
    let home = tempfile::tempdir().expect("tempdir");
    let pt = fixture("mlp-4-8-3.pt");
    let out = import(home.path(), "tiny", pt.to_str().expect("utf8"), "mlp", MLP_CONFIG, true);
    let manifest = json(&out);
    assert_eq!(manifest["version"], 1);
    assert_eq!(manifest["architecture"]["config"]["hidden"][0], 8);
    assert_eq!(manifest["source"], "import:mlp-4-8-3.pt");
    assert_close(&outputs(home.path(), "tiny@1"), &expected_mlp_outputs());

    // Round trip through both export formats: each re-import computes the same.
    for ext in ["safetensors", "bpk"] {
        let file = home.path().join(format!("tiny.{ext}"));
        json(&kilnd(
            home.path(),
            &["export", "tiny@1", "--out", file.to_str().expect("utf8"), "--json"],
        ));
        let out = import(
            home.path(),
            "tiny",
            file.to_str().expect("utf8"),
            "mlp",
            MLP_CONFIG,
            true,
        );
        let version = json(&out)["version"].as_u64().expect("version");
        assert_close(
            &outputs(home.path(), &format!("tiny@{version}")),
            &expected_mlp_outputs(),
        );
    }
    assert!(kiln(home.path(), &["models", "verify"]).status.success());
}

#[test]
fn a_cnn_state_dict_imports() {
    let home = tempfile::tempdir().expect("tempdir");
    let config = r#"{"channels": 1, "height": 8, "width": 8, "classes": 3, "conv_channels": [4], "hidden": 16}"#;
    let pt = fixture("cnn-8x8.pt");
    let out = import(
        home.path(),
        "tiny-cnn",
        pt.to_str().expect("utf8"),
        "cnn",
        config,
        false,
    );
    assert!(out.status.success(), "{out:?}");
    let input = format!("[{:?}]", vec![0.5f32; 64]);
    let out = json(&kilnd(home.path(), &["predict", "tiny-cnn", "--input", &input]));
    assert_eq!(out["outputs"][0].as_array().map(Vec::len), Some(3));
}

#[test]
fn mismatched_or_unsafe_weights_are_refused_and_nothing_is_registered() {
    let home = tempfile::tempdir().expect("tempdir");
    let wrong = fixture("mlp-4-9-3.pt");
    let out = import(
        home.path(),
        "tiny",
        wrong.to_str().expect("utf8"),
        "mlp",
        MLP_CONFIG,
        false,
    );
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(
        stderr(&out).contains("hidden.0.weight"),
        "error should name the tensor: {}",
        stderr(&out)
    );

    let _ = std::fs::remove_file("/tmp/kiln-pickle-executed");
    let evil = fixture("evil.pt");
    let out = import(
        home.path(),
        "tiny",
        evil.to_str().expect("utf8"),
        "mlp",
        MLP_CONFIG,
        false,
    );
    assert_ne!(out.status.code(), Some(0), "{out:?}");
    assert!(
        !Path::new("/tmp/kiln-pickle-executed").exists(),
        "pickle code ran during import"
    );

    let zero_inputs = r#"{"inputs": 0, "classes": 3}"#;
    let bad_config = import(
        home.path(),
        "tiny",
        wrong.to_str().expect("utf8"),
        "mlp",
        zero_inputs,
        false,
    );
    assert_eq!(bad_config.status.code(), Some(2));
    assert!(
        stderr(&bad_config).contains("inputs must be at least 1"),
        "{}",
        stderr(&bad_config)
    );
    let unknown_arch = import(home.path(), "tiny", wrong.to_str().expect("utf8"), "vit", "{}", false);
    assert_eq!(unknown_arch.status.code(), Some(2));
    assert!(
        stderr(&unknown_arch).contains("[possible values: mlp, cnn, rnn, mf]"),
        "{}",
        stderr(&unknown_arch)
    );
    let bad_name = import(
        home.path(),
        "../up",
        wrong.to_str().expect("utf8"),
        "mlp",
        MLP_CONFIG,
        false,
    );
    assert_eq!(bad_name.status.code(), Some(2));

    let ls = json(&kiln(home.path(), &["models", "ls", "--json"]));
    assert_eq!(
        ls["models"].as_array().map(Vec::len),
        Some(0),
        "nothing may be registered: {ls}"
    );
}

#[test]
fn a_stored_blob_with_a_flipped_byte_is_refused_on_load() {
    let home = tempfile::tempdir().expect("tempdir");
    let pt = fixture("mlp-4-8-3.pt");
    let manifest = json(&import(
        home.path(),
        "tiny",
        pt.to_str().expect("utf8"),
        "mlp",
        MLP_CONFIG,
        true,
    ));
    let digest = manifest["blobs"]["weights"].as_str().expect("digest");
    let hex = &digest["sha256:".len()..];
    let blob = home.path().join("registry/blobs/sha256").join(&hex[..2]).join(hex);
    let mut bytes = std::fs::read(&blob).expect("blob");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&blob, bytes).expect("flip");
    let out = kilnd(home.path(), &["predict", "tiny@1", "--input", "[[0,0,0,0]]"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    assert!(stderr(&out).contains("is corrupt"), "{}", stderr(&out));
}
