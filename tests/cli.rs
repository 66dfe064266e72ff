//! The `kiln` binary end to end over a temp `KILN_HOME`: output, JSON and exit codes.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::Command;

use kiln_core::names::Name;
use kiln_core::registry::{Architecture, ModelRecord, Registry, VersionDraft, now_rfc3339};

mod common;
use common::{json_of as json, kiln};

fn seed(home: &Path, model: &str, versions: u32) {
    let registry = Registry::open(home).expect("open");
    let lock = registry.lock().expect("lock");
    let name = Name::new(model).expect("name");
    let record = ModelRecord {
        name: name.clone(),
        task: "image-classification".into(),
        description: "test model".into(),
        created_at: now_rfc3339(),
        owner: None,
        license: None,
    };
    registry.ensure_model(&lock, record).expect("model");
    for i in 0..versions {
        let digest = registry
            .blobs()
            .put_bytes(format!("{model}-{i}").as_bytes())
            .expect("blob");
        let draft = VersionDraft {
            architecture: Architecture {
                name: kiln_core::kinds::Arch::Cnn,
                config: serde_json::json!({}),
            },
            dataset: None,
            hyperparameters: BTreeMap::new(),
            seed: None,
            metrics: BTreeMap::from([("accuracy".into(), 0.9)]),
            parent: None,
            job_id: None,
            blobs: BTreeMap::from([("weights".into(), digest)]),
            device: None,
            source: None,
            libtorch_version: None,
            study: None,
            compression: None,
            license: None,
            checkpoint: None,
        };
        registry
            .add_version(&lock, &name, draft, &Default::default())
            .expect("version");
    }
}

#[test]
fn ls_show_alias_and_rm_work_end_to_end() {
    let home = tempfile::tempdir().expect("tempdir");
    seed(home.path(), "fmnist-cnn", 3);

    let out = kiln(home.path(), &["models", "alias", "fmnist-cnn@2", "production"]);
    assert!(out.status.success(), "{out:?}");
    let ls = json(&kiln(home.path(), &["models", "ls", "--json"]));
    assert_eq!(ls["models"][0]["name"], "fmnist-cnn");
    assert_eq!(ls["models"][0]["versions"], 3);
    assert_eq!(ls["models"][0]["aliases"]["production"], 2);

    let text = String::from_utf8_lossy(&kiln(home.path(), &["models", "ls"]).stdout).into_owned();
    assert!(text.contains("fmnist-cnn") && text.contains("production→2"), "{text}");

    let show = json(&kiln(
        home.path(),
        &["models", "show", "fmnist-cnn@production", "--json"],
    ));
    assert_eq!(show["version"]["version"], 2);
    assert_eq!(show["aliases"][0], "production");

    let refused = kiln(home.path(), &["models", "rm", "fmnist-cnn@2"]);
    assert_eq!(refused.status.code(), Some(5), "{refused:?}");
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--force"));
    let forced = kiln(home.path(), &["models", "rm", "fmnist-cnn@2", "--force", "--json"]);
    assert!(forced.status.success(), "{forced:?}");
    assert_eq!(json(&forced)["aliases_removed"][0], "production");

    let versions = json(&kiln(
        home.path(),
        &["models", "ls", "--versions", "--filter", "fmnist @3", "--json"],
    ));
    assert_eq!(versions["versions"].as_array().map(Vec::len), Some(1));
}

#[test]
fn errors_name_the_problem_and_use_the_documented_exit_codes() {
    let home = tempfile::tempdir().expect("tempdir");
    seed(home.path(), "m", 1);
    let unknown = kiln(home.path(), &["models", "show", "nope"]);
    assert_eq!(unknown.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("unknown model 'nope'"));
    let no_version = kiln(home.path(), &["models", "show", "m@9"]);
    assert_eq!(no_version.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&no_version.stderr).contains("versions: 1"));
    let bad_name = kiln(home.path(), &["models", "show", "../etc@1"]);
    assert_eq!(bad_name.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("invalid name"));
    let json_err = json(&kiln(home.path(), &["models", "show", "nope", "--json"]));
    assert_eq!(json_err["code"], 3);
}

fn walk_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn verify_reports_corrupt_blobs_and_manifests_with_exit_code_4() {
    let home = tempfile::tempdir().expect("tempdir");
    seed(home.path(), "a", 2);
    seed(home.path(), "b", 1);
    assert_eq!(kiln(home.path(), &["models", "verify"]).status.code(), Some(0));

    let registry = Registry::open(home.path()).expect("open");
    let v1 = registry.version(&Name::new("a").expect("name"), 1).expect("v1");
    let blob = registry.blobs().path(&v1.draft.blobs["weights"]);
    let mut bytes = fs::read(&blob).expect("read");
    bytes[0] ^= 0xff;
    fs::write(&blob, bytes).expect("flip");
    fs::write(registry.root().join("models/b/versions/1.json"), "{").expect("corrupt");

    let out = kiln(home.path(), &["models", "verify", "--json"]);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let report = json(&out);
    let stored = walk_files(&registry.root().join("blobs")).len();
    assert_eq!(report["blobs_checked"], stored, "weights, configs and model cards");
    assert_eq!(
        report["signatures"]["versions"][0]["status"]["state"], "unsigned",
        "{report:#}"
    );
    assert_eq!(report["corrupt_blobs"].as_array().map(Vec::len), Some(1));
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(1));

    // The other models keep listing, with the corrupt entry reported on stderr.
    let ls = kiln(home.path(), &["models", "ls"]);
    assert!(ls.status.success());
    assert!(String::from_utf8_lossy(&ls.stdout).contains('a'));
    assert!(String::from_utf8_lossy(&ls.stderr).contains("models/b/versions/1.json"));
}

#[test]
fn kiln_binary_links_no_libtorch() {
    let out = Command::new("ldd")
        .arg(env!("CARGO_BIN_EXE_kiln"))
        .output()
        .expect("ldd");
    let libs = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    // Only the libraries' names: ldd's load addresses are random hex, which can read "c10".
    let names: Vec<&str> = libs.lines().filter_map(|l| l.split_whitespace().next()).collect();
    assert!(
        !names.iter().any(|n| n.contains("torch") || n.starts_with("libc10")),
        "kiln links libtorch:\n{libs}"
    );
}
