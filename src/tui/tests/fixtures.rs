//! Daemon answers as the console receives them, for the update and snapshot tests: the
//! JSON the daemon sends, decoded strictly into the `kiln_core::api` types.

use serde_json::{Value, json};

use crate::tui::event::DaemonMsg;
use kiln_core::api::{ModelView, StudyList, StudyView, TryResult};
use kiln_core::inspect::InspectQuery;
use kiln_core::jobs::JobId;
use kiln_core::names::Name;
use kiln_core::study::{Params, PrunedAt, StudyRecord, StudyState, Trial, TrialState};

pub fn decode<T: serde::de::DeserializeOwned>(v: Value) -> T {
    match serde_json::from_value(v) {
        Ok(t) => t,
        Err(e) => panic!("fixture does not decode: {e}"),
    }
}

pub fn name(text: &str) -> Name {
    Name::new(text).unwrap_or_else(|e| panic!("{e}"))
}

pub fn job_id(text: &str) -> JobId {
    text.parse().unwrap_or_else(|e| panic!("{e}"))
}

pub fn manifest(model: &str, version: u32, accuracy: f64, parent: Option<u32>) -> Value {
    let mut m = json!({
        "model": model, "version": version, "created_at": format!("2026-11-29T1{version}:40:00Z"),
        "kiln_version": "0.1.0",
        "architecture": { "name": "cnn", "config": {} },
        "dataset": { "id": "fashion-mnist" },
        "hyperparameters": { "epochs": 2, "batch_size": 64, "lr": 0.001 * f64::from(version) },
        "metrics": { "accuracy": accuracy, "val_loss": 0.3 },
        "job_id": format!("j176443440{version}-ab12"),
        "blobs": {}, "device": "cpu",
    });
    if let Some(p) = parent {
        m["parent"] = json!({ "model": model, "version": p });
    }
    m
}

/// fmnist-cnn@4: v3 quantized to int8, with the comparison its job measured.
pub fn compressed_manifest() -> Value {
    let mut m = manifest("fmnist-cnn", 4, 0.910, Some(3));
    let tensor = |name: &str, shape: &[usize], nonzeros: usize| {
        let params: usize = shape.iter().product();
        json!({ "name": name, "shape": shape, "params": params, "nonzeros": nonzeros, "precision": "int8" })
    };
    m["compression"] = json!({
        "method": { "method": "quantize", "precision": "int8" },
        "layers": [tensor("conv.0.weight", &[32, 1, 3, 3], 288), tensor("fc.weight", &[10, 1568], 15_671)],
        "compute": "f32",
        "compute_note": "int8 weights dequantized to f32 at load",
        "report": {
            "dataset": "fashion-mnist", "split": "test", "rows": 10000, "device": "cpu",
            "parent": { "size_bytes": 1_650_000, "size_zstd_bytes": 1_520_000, "params": 412_000,
                        "nonzeros": 412_000, "accuracy": 0.912, "macro_f1": 0.91, "p50_ms_batch1": 0.42, "p50_ms_batch64": 3.1 },
            "child": { "size_bytes": 418_000, "size_zstd_bytes": 371_000, "params": 412_000,
                       "nonzeros": 411_800, "accuracy": 0.910, "macro_f1": 0.908, "p50_ms_batch1": 0.40, "p50_ms_batch64": 3.0 },
            "notes": ["fp16 compute measured 1.4x slower on cpu: f32 kept"],
        },
    });
    m
}

/// fmnist-cnn's versions with the compressed v4 on top, and v4's (evaluation-free) view.
pub fn compressed_detail() -> Vec<DaemonMsg> {
    let view: ModelView = decode(json!({ "model": {
        "record": { "name": "fmnist-cnn", "task": "image-classification", "created_at": "2026-11-29T10:00:00Z" },
        "versions": [manifest("fmnist-cnn", 1, 0.871, None), manifest("fmnist-cnn", 2, 0.902, Some(1)),
                     manifest("fmnist-cnn", 3, 0.912, Some(2)), compressed_manifest()],
        "aliases": { "production": 2 },
    }, "problems": [] }));
    let version4 = DaemonMsg::Version(decode(json!({ "version": compressed_manifest(), "evals": [] })));
    vec![DaemonMsg::ModelDetail(view.model), version4]
}

/// A queued compression job, as kilnd answers its submission.
pub fn compress_job(id: &str) -> Value {
    json!({
        "id": id,
        "spec": { "id": id, "kind": "compress", "reference": "fmnist-cnn@3",
                  "method": { "method": "prune", "sparsity": 0.5 } },
        "status": { "state": "queued", "step": 0, "epoch": 0, "updated_at": "2026-11-29T16:00:00Z" },
    })
}

pub fn models() -> DaemonMsg {
    DaemonMsg::Models(decode(json!({
        "models": [
            { "name": "fmnist-cnn", "task": "image-classification", "versions": 3, "latest": 3,
              "aliases": { "production": 2 } },
            { "name": "ratings-mf", "task": "recommendation", "versions": 1, "latest": 1, "aliases": {} },
        ],
        "problems": [],
    })))
}

pub fn detail() -> DaemonMsg {
    let view: ModelView = decode(json!({ "model": {
        "record": { "name": "fmnist-cnn", "task": "image-classification", "created_at": "2026-11-29T10:00:00Z" },
        "versions": [manifest("fmnist-cnn", 1, 0.871, None), manifest("fmnist-cnn", 2, 0.902, Some(1)),
                     manifest("fmnist-cnn", 3, 0.912, Some(2))],
        "aliases": { "production": 2 },
    }, "problems": [] }));
    DaemonMsg::ModelDetail(view.model)
}

/// The signer's key hint in the signature fixtures.
pub const KEY_HINT: &str = "1a2b3c4d5e6f7a8b9c0d";

/// `GET /signatures`: fmnist-cnn@3 signed by alice, @2 unsigned, @1 tampered with since it
/// was signed; ratings-mf@1 signed by a key nobody trusts.
pub fn signatures() -> DaemonMsg {
    DaemonMsg::Signatures(decode(json!({ "versions": [
        { "model": "fmnist-cnn", "version": 1,
          "status": { "state": "tampered", "signer": "alice", "changed": ["model.safetensors"],
                      "missing": [], "extra": [] } },
        { "model": "fmnist-cnn", "version": 2, "status": { "state": "unsigned" } },
        { "model": "fmnist-cnn", "version": 3,
          "status": { "state": "signed", "signer": "alice", "key_hint": KEY_HINT } },
        { "model": "ratings-mf", "version": 1,
          "status": { "state": "untrusted", "key_hint": "ffee00112233",
                      "reason": "signed by an unknown key ffee00112233 (not in /k/keys/trusted)" } },
    ] })))
}

/// A report digest the fixtures use.
pub fn digest() -> String {
    format!("sha256:{}", "aa".repeat(32))
}

pub fn version3() -> DaemonMsg {
    DaemonMsg::Version(decode(json!({
        "version": manifest("fmnist-cnn", 3, 0.912, Some(2)),
        "evals": [{ "report": digest(), "dataset": "fashion-mnist", "split": "test",
                    "created_at": "2026-11-29T13:50:00Z", "metrics": { "accuracy": 0.912, "macro_f1": 0.91 } }],
    })))
}

pub fn report() -> DaemonMsg {
    let classes = ["T-shirt", "Trouser", "Pullover"];
    DaemonMsg::Report {
        digest: decode(json!(digest())),
        report: decode(json!({
            "model": "fmnist-cnn", "version": 3, "device": "cpu",
            "dataset": "fashion-mnist", "split": "test", "rows": 300, "accuracy": 0.912, "macro_f1": 0.91,
            "per_class": classes.iter().map(|c| json!({"class": c, "precision": 0.9, "recall": 0.91, "f1": 0.905, "support": 100})).collect::<Vec<_>>(),
            "confusion_matrix": [[91, 2, 7], [1, 98, 1], [9, 0, 91]],
            "mean_latency_ms_per_sample": 0.05, "created_at": "2026-11-29T13:50:00Z",
        })),
    }
}

pub fn job(id: &str, state: &str, step: u64, epoch: usize) -> Value {
    json!({
        "id": id,
        "spec": { "id": id, "kind": "train", "arch": "cnn", "data": "fashion-mnist", "epochs": 2, "batch_size": 64,
                  "lr": 0.001, "optimizer": "adam", "seed": 42, "model": "fmnist-cnn" },
        "status": { "state": state, "step": step, "epoch": epoch, "updated_at": "2026-11-29T16:00:00Z" },
    })
}

pub fn eval_job() -> Value {
    json!({
        "id": "j1764440000-e001",
        "spec": { "id": "j1764440000-e001", "kind": "eval", "reference": "fmnist-cnn@1", "data": "fashion-mnist" },
        "status": { "state": "succeeded", "step": 10, "epoch": 0, "updated_at": "2026-11-29T16:00:00Z" },
        "result": { "model": "fmnist-cnn", "version": 1, "dataset": "fashion-mnist", "split": "test", "rows": 300,
                    "device": "cpu", "accuracy": 0.871, "macro_f1": 0.86,
                    "per_class": [{"class": "Coat", "precision": 0.8, "recall": 0.9, "f1": 0.85, "support": 150},
                                  {"class": "Bag", "precision": 0.9, "recall": 0.8, "f1": 0.85, "support": 150}],
                    "confusion_matrix": [[135, 15], [24, 126]],
                    "mean_latency_ms_per_sample": 0.05, "created_at": "2026-11-29T16:00:00Z" },
    })
}

pub fn jobs() -> DaemonMsg {
    DaemonMsg::Jobs(vec![
        decode(job("j1764434400-ab12", "running", 1400, 1)),
        decode(job("j1764430000-0001", "succeeded", 1876, 2)),
        decode(job("j1764420000-0002", "failed", 10, 0)),
    ])
}

pub fn metrics(job: &str, n: u64) -> DaemonMsg {
    let mut records: Vec<Value> = (1..=n)
        .map(|i| {
            json!({ "kind": "train", "step": i * 20, "epoch": (i * 20 / 938) as usize, "time": 1000.0 + i as f64,
                    "train_loss": 2.3 / (1.0 + i as f64 * 0.1), "samples_per_sec": 1700.0 })
        })
        .collect();
    records.push(json!({ "kind": "val", "step": 938, "epoch": 1, "time": 1047.0, "val_loss": 0.42, "accuracy": 0.85 }));
    DaemonMsg::Metrics {
        chunk: decode(json!({ "job": job, "records": records, "next": 4096 })),
        pushed: false,
    }
}

pub fn log(job: &str) -> DaemonMsg {
    DaemonMsg::Log {
        job: job_id(job),
        chunk: decode(
            json!({ "text": "loading fashion-mnist (60000 rows)\ndevice cpu, 16 threads\nepoch 1: val_loss 0.420 accuracy 0.850\n", "next": 120 }),
        ),
    }
}

pub fn telemetry(gpu: bool) -> DaemonMsg {
    let samples: Vec<Value> = (0..60u64)
        .map(|i| {
            let gpus = if gpu {
                json!([{ "index": 0, "name": "NVIDIA H200", "utilization_pct": if i == 30 { Value::Null } else { json!(40 + i % 20) },
                         "memory_used_bytes": 30u64 << 30, "memory_total_bytes": 140u64 << 30,
                         "temperature_c": 60 + i % 5, "power_w": 200.0 + i as f64,
                         "processes": [{ "pid": 4242, "used_memory_bytes": 12u64 << 30, "job": "j1764434400-ab12" }] }])
            } else {
                json!([])
            };
            json!({ "at_ms": 1_000_000 + i * 1000, "gpus": gpus,
                    "host": { "cpu_pct": 30.0 + (i % 10) as f64, "cpus": 16, "memory_used_bytes": 41u64 << 30,
                              "memory_total_bytes": 125u64 << 30,
                              "jobs": [{ "job": "j1764434400-ab12", "pid": 4242, "rss_bytes": 3u64 << 30, "cpu_pct": 190.0 }] } })
        })
        .collect();
    let availability = if gpu {
        json!({ "state": "available", "driver": "565.57", "count": 1 })
    } else {
        json!({ "state": "no_gpu", "reason": "NVML could not be loaded (libnvidia-ml.so.1 not found)" })
    };
    DaemonMsg::Telemetry(decode(
        json!({ "gpu": availability, "interval_s": 1.0, "samples": samples }),
    ))
}

pub fn deployments() -> DaemonMsg {
    DaemonMsg::Deployments(decode(json!({
        "inference_address": "127.0.0.1:8000", "ready": true, "problems": [],
        "deployments": [{ "model": "fmnist-cnn", "version": 3, "since": "2026-11-29T16:40:00Z",
                          "batching": { "max_batch": 64, "max_delay_us": 2000, "queue": 256 },
                          "stats": { "requests": 1200, "errors": 0, "req_per_s": 120.5, "p50_ms": 0.41, "p99_ms": 1.9, "queue_depth": 0 } }],
    })))
}

pub fn journal() -> DaemonMsg {
    DaemonMsg::Journal(decode(json!([
        { "time": "2026-11-29T16:02:00Z", "model": "fmnist-cnn", "from": null, "to": 2, "action": "deploy", "reason": "" },
        { "time": "2026-11-29T16:40:00Z", "model": "fmnist-cnn", "from": 2, "to": 3, "action": "deploy", "reason": "" },
    ])))
}

/// A canary of fmnist-cnn: v4 takes 10% of the traffic beside v3, 42% of the way to promotion.
pub fn canaries() -> DaemonMsg {
    DaemonMsg::Canaries(decode(json!([
        { "model": "fmnist-cnn", "stable": 3, "candidate": 4, "percent": 10.0, "since": "2026-11-29T17:00:00Z",
          "stable_requests": 1080, "stable_errors": 0, "candidate_requests": 120, "candidate_errors": 1,
          "stable_p99_ms": 1.9, "candidate_p99_ms": 2.1, "progress": 0.42 },
    ])))
}

pub fn tried() -> DaemonMsg {
    let result: TryResult = decode(json!({
        "model": "fmnist-cnn", "version": 3, "dataset": "fashion-mnist", "split": "test", "index": 4,
        "prediction": "Pullover", "label": "Pullover", "correct": true,
        "classes": ["T-shirt", "Trouser", "Pullover"], "probabilities": [0.01, 0.02, 0.97],
    }));
    DaemonMsg::Tried(result)
}

/// The study spec the studies fixtures share.
pub const STUDY_TOML: &str = r#"name = "fmnist-mlp-lr"
base = { arch = "mlp", data = "fashion-mnist", epochs = 6, limit = 20000 }
objective = { metric = "val_accuracy", direction = "maximize" }
budget = { trials = 24, concurrent = 2, wall_clock = "30m" }
sampler = "tpe"
seed = 7
early_stop = "asha"
[params]
lr = { log_uniform = [1e-4, 3e-2] }
batch_size = { choice = [32, 64, 128] }
optimizer = { choice = ["adam", "adamw", "sgd"] }
"config.hidden" = { choice = [[128], [256, 128], [512, 256]] }
"#;

/// The job of trial `n` in the study fixtures.
pub fn trial_job(n: u32) -> String {
    format!("j17644345{n:02}-a{n:03}")
}

fn trial(number: u32, lr: f64, batch: u32, optimizer: &str, hidden: Value, state: TrialState, values: &[f64]) -> Trial {
    let params: Params = decode(json!({
        "lr": lr, "batch_size": batch, "optimizer": optimizer, "config.hidden": hidden,
    }));
    let mut t = Trial::planned(number, params);
    t.state = state;
    t.values = values.to_vec();
    if state != TrialState::Queued {
        t.jobs = vec![job_id(&trial_job(number))];
        t.awaiting_job = false;
        t.device = Some(format!("cuda:{}", number % 2));
    }
    t
}

/// A running study with completed, pruned, failed, running and queued trials; trial 3 is best.
pub fn study() -> StudyView {
    let spec = match kiln_core::study::spec::parse(STUDY_TOML, "study.toml") {
        Ok(spec) => spec,
        Err(e) => panic!("the fixture spec does not parse: {e}"),
    };
    let mut pruned = trial(
        1,
        2.1e-2,
        32,
        "sgd",
        json!([128]),
        TrialState::Pruned,
        &[0.61, 0.64, 0.66],
    );
    pruned.pruned = Some(PrunedAt {
        epoch: 3,
        reason: "asha: 0.6600 at epoch 3 is not in the top 1/3 of the 3 trials at this rung".into(),
    });
    let mut failed = trial(2, 1.2e-3, 128, "adamw", json!([512, 256]), TrialState::Failed, &[0.80]);
    failed.message = "worker exited with signal 9 twice (out of memory?)".into();
    let trials = vec![
        trial(
            0,
            3.16e-4,
            64,
            "adam",
            json!([256, 128]),
            TrialState::Completed,
            &[0.78, 0.83, 0.85, 0.86, 0.865, 0.868],
        ),
        pruned,
        failed,
        trial(
            3,
            1.5e-3,
            128,
            "adamw",
            json!([512, 256]),
            TrialState::Completed,
            &[0.81, 0.85, 0.87, 0.88, 0.884, 0.889],
        ),
        trial(
            4,
            8.0e-4,
            64,
            "adam",
            json!([256, 128]),
            TrialState::Running,
            &[0.82, 0.85],
        ),
        trial(5, 5.0e-3, 32, "adamw", json!([128]), TrialState::Queued, &[]),
    ];
    StudyRecord {
        spec,
        source_file: STUDY_TOML.into(),
        state: StudyState::Running,
        message: String::new(),
        created_at: "2026-11-29T17:00:00Z".into(),
        started_unix: 1_764_435_600,
        ran_secs: 0,
        ended_at: None,
        trials,
    }
}

/// A second, finished study, to have a list.
pub fn other_study() -> StudyView {
    let mut s = study();
    s.spec.name = name("fmnist-cnn-wd");
    s.state = StudyState::Completed;
    s.message = "completed: every planned trial ended".into();
    s.trials.truncate(2);
    s.spec.budget.trials = 2;
    s
}

pub fn studies() -> DaemonMsg {
    DaemonMsg::Studies(StudyList {
        studies: vec![study(), other_study()],
        problems: Vec::new(),
    })
}

// ── The drill-down into an evaluation (issue #20) ────────────────────────────────────────

/// fmnist-cnn@3's report again, now with calibration and stored per-row predictions, so it
/// can be drilled into.
pub fn inspectable_report() -> DaemonMsg {
    let DaemonMsg::Report { digest, mut report } = report() else {
        panic!("report() is a report");
    };
    let bins: Vec<Value> = (0..10)
        .map(|i| {
            let rows = [0, 0, 0, 2, 0, 10, 15, 25, 48, 200][i];
            let lower = i as f64 / 10.0;
            let confidence = if rows == 0 { 0.0 } else { lower + 0.06 };
            let accuracy = [0.0, 0.0, 0.0, 0.5, 0.0, 0.4, 0.6, 0.72, 0.9, 0.97][i];
            json!({ "lower": lower, "upper": lower + 0.1, "rows": rows, "confidence": confidence, "accuracy": accuracy })
        })
        .collect();
    report.calibration = Some(decode(json!({ "ece": 0.042, "bins": bins })));
    report.predictions = Some(decode(json!(format!("sha256:{}", "bb".repeat(32)))));
    DaemonMsg::Report { digest, report }
}

/// One listed sample of fmnist-cnn's classes: its top 3 with `p` on `prediction`.
pub fn sample_view(index: u32, label: &str, prediction: &str, p: f32, loss: f32) -> Value {
    let rest: Vec<&str> = ["T-shirt", "Trouser", "Pullover"]
        .into_iter()
        .filter(|c| *c != prediction)
        .collect();
    let second = (1.0 - p) * 0.8;
    json!({ "index": index, "label": label, "prediction": prediction, "confidence": p, "loss": loss,
            "top": [{ "class": prediction, "probability": p }, { "class": rest[0], "probability": second },
                    { "class": rest[1], "probability": 1.0 - p - second }] })
}

/// kilnd's answer to `query` on fmnist-cnn-like `model@version`: `samples` of `total`.
pub fn inspected(model: &str, version: u32, query: InspectQuery, total: usize, samples: Vec<Value>) -> DaemonMsg {
    inspected_with(
        model,
        version,
        query,
        &["T-shirt", "Trouser", "Pullover"],
        total,
        samples,
    )
}

/// kilnd's answer to `query` on `model@version` over `classes` (none for ratings).
pub fn inspected_with(
    model: &str,
    version: u32,
    query: InspectQuery,
    classes: &[&str],
    total: usize,
    samples: Vec<Value>,
) -> DaemonMsg {
    DaemonMsg::Inspected {
        model: name(model),
        version,
        query,
        inspection: Box::new(decode(json!({
            "model": model, "version": version, "dataset": "fashion-mnist", "split": "test",
            "classes": classes, "total": total, "samples": samples,
        }))),
    }
}

/// The pullovers fmnist-cnn@3 took for T-shirts (cell 2,0), most confident first.
pub fn pullovers_as_tshirts() -> Vec<Value> {
    vec![
        sample_view(812, "Pullover", "T-shirt", 0.712, 1.427),
        sample_view(4031, "Pullover", "T-shirt", 0.64, 1.022),
        sample_view(97, "Pullover", "T-shirt", 0.51, 0.81),
    ]
}

/// A 28×28 grey image: a pullover's silhouette (body and sleeves), brighter at the top.
pub fn pullover_pixels() -> Vec<f32> {
    let mut pixels = vec![0.0f32; 28 * 28];
    for y in 3..26 {
        let shade = 1.0 - y as f32 / 40.0;
        let (from, to) = if y < 14 { (3, 25) } else { (8, 20) };
        for x in from..to {
            pixels[y * 28 + x] = shade;
        }
    }
    pixels
}

/// `sample #index` of `model@version` as the model saw it.
pub fn sample_loaded(model: &str, version: u32, view: Value, input: Value) -> DaemonMsg {
    DaemonMsg::SampleLoaded {
        model: name(model),
        version,
        detail: Box::new(decode(json!({ "sample": view, "input": input }))),
    }
}

/// Sample 812 of fmnist-cnn@3: the pullover image.
pub fn image_sample() -> DaemonMsg {
    let input = json!({ "kind": "image", "channels": 1, "height": 28, "width": 28, "pixels": pullover_pixels() });
    sample_loaded(
        "fmnist-cnn",
        3,
        sample_view(812, "Pullover", "T-shirt", 0.712, 1.427),
        input,
    )
}

/// A fortune of fortunes-rnn@1 with two words outside its vocabulary.
pub fn text_sample() -> DaemonMsg {
    let words: Vec<Value> = "You will be awarded some great honor by the quizzical gnomes"
        .split(' ')
        .map(|w| json!({ "text": w, "known": !matches!(w, "quizzical" | "gnomes") }))
        .collect();
    let view = json!({ "index": 77, "label": "fortunes", "prediction": "riddles", "confidence": 0.58, "loss": 1.2,
                       "top": [{ "class": "riddles", "probability": 0.58 }, { "class": "fortunes", "probability": 0.3 },
                               { "class": "humorists", "probability": 0.12 }] });
    let input = json!({ "kind": "text", "text": "You will be awarded some great honor by the quizzical gnomes", "words": words });
    sample_loaded("fortunes-rnn", 1, view, input)
}

/// A rating of ratings-mf@1: user 17 rated item 42 a 4, the model said 2.9.
pub fn rating_sample() -> DaemonMsg {
    let view = json!({ "index": 5, "label": "4.0", "prediction": "2.9", "confidence": 1.0, "loss": -1.1 });
    let input = json!({ "kind": "rating", "user": 17, "item": 42, "rating": 4.0,
                        "others": [[3, 5.0], [8, 4.5], [19, 2.0], [23, 3.5]] });
    sample_loaded("ratings-mf", 1, view, input)
}
