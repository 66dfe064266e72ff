//! Model debugging end to end, with real training, the real daemon and the CLI: an evaluation
//! stores every row's prediction; those reproduce the report's confusion matrix exactly;
//! `kiln inspect --cell` lists exactly that cell's rows, `--worst` the highest losses,
//! `--disagree` the rows another version answers otherwise; a sample is read back as the
//! model saw it (the image's pixels from the dataset); bad cells are refused.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

mod common;
use common::{json, kiln};

fn train(home: &Path, seed: &str) -> String {
    let end = json(&kiln(
        home,
        &[
            "--json",
            "train",
            "cnn",
            "--data",
            "fashion-mnist",
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--seed",
            seed,
            "--config",
            r#"{"conv_channels": [8], "hidden": 32}"#,
            "--name",
            "fm",
        ],
    ));
    assert_eq!(end["state"], "succeeded", "{end:#}");
    end["version"].as_str().expect("version").to_owned()
}

fn eval(home: &Path, reference: &str) -> Value {
    json(&kiln(
        home,
        &["--json", "eval", reference, "--data", "fashion-mnist", "--limit", "600"],
    ))
}

fn inspect(home: &Path, args: &[&str]) -> Value {
    let mut full = vec!["--json", "inspect"];
    full.extend_from_slice(args);
    json(&kiln(home, &full))
}

#[test]
fn stored_predictions_reproduce_the_report_and_open_onto_their_samples() {
    let home = tempfile::tempdir().expect("home");
    let home = home.path();
    let daemon = common::start(home);
    assert_eq!(train(home, "1"), "fm@1");
    let report = eval(home, "fm@1");
    assert!(
        report["predictions"].as_str().is_some_and(|d| d.starts_with("sha256:")),
        "{report:#}"
    );
    let ece = report["calibration"]["ece"].as_f64().expect("ece");
    assert!((0.0..=1.0).contains(&ece), "{report:#}");
    let binned: u64 = report["calibration"]["bins"]
        .as_array()
        .expect("bins")
        .iter()
        .map(|b| b["rows"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(binned, 600, "every row is in a reliability bin");

    // Every row, counted by (true, predicted), is the report's confusion matrix.
    let all = inspect(home, &["fm@1", "--limit", "100000"]);
    assert_eq!(all["total"], 600);
    let classes: Vec<String> = all["classes"]
        .as_array()
        .expect("classes")
        .iter()
        .map(|c| c.as_str().unwrap_or_default().to_owned())
        .collect();
    let index: HashMap<&str, usize> = classes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
    let mut counted = vec![vec![0u64; classes.len()]; classes.len()];
    for s in all["samples"].as_array().expect("samples") {
        let (t, p) = (
            s["label"].as_str().unwrap_or(""),
            s["prediction"].as_str().unwrap_or(""),
        );
        counted[index[t]][index[p]] += 1;
    }
    let matrix: Vec<Vec<u64>> = report["confusion_matrix"]
        .as_array()
        .expect("matrix")
        .iter()
        .map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_u64().unwrap_or(0))
                .collect()
        })
        .collect();
    assert_eq!(counted, matrix, "the stored predictions reproduce the confusion matrix");

    // The largest off-diagonal cell lists exactly its rows, by confidence or by loss.
    let (t, p) = (0..classes.len())
        .flat_map(|t| (0..classes.len()).map(move |p| (t, p)))
        .filter(|(t, p)| t != p)
        .max_by_key(|&(t, p)| matrix[t][p])
        .expect("a cell");
    assert!(matrix[t][p] > 0, "the model makes some mistake");
    let cell = format!("{t},{p}");
    let listed = inspect(home, &["fm@1", "--cell", &cell]);
    assert_eq!(listed["total"].as_u64(), Some(matrix[t][p]), "{listed:#}");
    let samples = listed["samples"].as_array().expect("samples");
    assert!(
        samples
            .iter()
            .all(|s| s["label"] == classes[t].as_str() && s["prediction"] == classes[p].as_str())
    );
    let confidences: Vec<f64> = samples
        .iter()
        .map(|s| s["confidence"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(confidences.windows(2).all(|w| w[0] >= w[1]), "{confidences:?}");
    let named = inspect(
        home,
        &[
            "fm@1",
            "--cell",
            &format!("{},{}", classes[t], classes[p]),
            "--sort",
            "loss",
        ],
    );
    assert_eq!(named["total"], listed["total"]);
    let losses: Vec<f64> = named["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["loss"].as_f64().unwrap_or(0.0))
        .collect();
    assert!(losses.windows(2).all(|w| w[0] >= w[1]), "{losses:?}");

    // The worst rows are the highest losses overall.
    let worst = inspect(home, &["fm@1", "--worst", "5"]);
    let worst_losses: Vec<f64> = worst["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["loss"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(worst_losses.len(), 5);
    let mut every: Vec<f64> = all["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .map(|s| s["loss"].as_f64().unwrap_or(0.0))
        .collect();
    every.sort_by(|a, b| b.total_cmp(a));
    assert_eq!(worst_losses, every[..5].to_vec());

    // A sample comes back as the model saw it: the dataset's pixels, and its answer.
    let first = &samples[0];
    let url = format!(
        "{}/api/v1/models/fm/versions/1/samples/{}",
        daemon.base,
        first["index"].as_u64().expect("index")
    );
    let (status, detail) = common::http_json("GET", &url, Some(&daemon.token), None);
    assert_eq!(status, 200, "{detail:#}");
    assert_eq!(detail["input"]["kind"], "image");
    assert_eq!(
        (detail["input"]["height"].as_u64(), detail["input"]["width"].as_u64()),
        (Some(28), Some(28))
    );
    let pixels = detail["input"]["pixels"].as_array().expect("pixels");
    assert_eq!(pixels.len(), 784);
    assert!(
        pixels
            .iter()
            .all(|v| v.as_f64().is_some_and(|v| (0.0..=1.0).contains(&v)))
    );
    assert!(pixels.iter().any(|v| v.as_f64() > Some(0.2)), "not a blank image");
    assert_eq!(detail["sample"]["prediction"], first["prediction"]);
    assert_eq!(detail["sample"]["top"][0]["class"], first["prediction"]);

    // Two versions: the rows they disagree on, counted from both full listings.
    assert_eq!(train(home, "2"), "fm@2");
    eval(home, "fm@2");
    let other = inspect(home, &["fm@2", "--limit", "100000"]);
    let answers = |v: &Value| -> HashMap<u64, String> {
        v["samples"]
            .as_array()
            .expect("samples")
            .iter()
            .map(|s| {
                (
                    s["index"].as_u64().unwrap_or(0),
                    s["prediction"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    };
    let (mine, theirs) = (answers(&all), answers(&other));
    let differ = mine.iter().filter(|(i, p)| theirs.get(*i) != Some(*p)).count();
    let disagree = inspect(home, &["fm@1", "--disagree", "fm@2", "--limit", "100000"]);
    assert_eq!(disagree["total"].as_u64(), Some(differ as u64), "{disagree:#}");
    for s in disagree["samples"].as_array().expect("samples") {
        let index = s["index"].as_u64().unwrap_or(0);
        assert_eq!(
            s["other"]["prediction"].as_str(),
            theirs.get(&index).map(String::as_str)
        );
        assert_ne!(s["other"]["prediction"], s["prediction"]);
    }

    // Bad input is refused by name.
    let bad = kiln(home, &["inspect", "fm@1", "--cell", "9,jeans"]);
    assert_eq!(bad.status.code(), Some(2), "{bad:?}");
    assert!(common::stderr(&bad).contains("no class 'jeans'"), "{bad:?}");
    let never = kiln(home, &["inspect", "fm@1", "--cell", "1"]);
    assert_eq!(never.status.code(), Some(2), "{never:?}");
    let elsewhere = kiln(home, &["inspect", "fm@1", "--disagree", "other@1"]);
    assert_eq!(elsewhere.status.code(), Some(2), "{elsewhere:?}");
}
