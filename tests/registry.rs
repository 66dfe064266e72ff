//! The registry library on real temp dirs: round trips, validation, corruption, crash safety.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use kiln_core::names::{ModelRef, Name};
use kiln_core::registry::{Architecture, ModelRecord, Registry, RegistryError, VersionDraft, now_rfc3339};

fn name(s: &str) -> Name {
    Name::new(s).expect("valid test name")
}

fn record(model: &str) -> ModelRecord {
    ModelRecord {
        name: name(model),
        task: "image-classification".into(),
        description: String::new(),
        created_at: now_rfc3339(),
        owner: None,
        license: None,
    }
}

fn draft(registry: &Registry, payload: &[u8]) -> VersionDraft {
    let digest = registry.blobs().put_bytes(payload).expect("store blob");
    VersionDraft {
        architecture: Architecture {
            name: kiln_core::kinds::Arch::Mlp,
            config: serde_json::json!({"inputs": 4, "classes": 3}),
        },
        dataset: None,
        hyperparameters: BTreeMap::from([("lr".into(), serde_json::json!(0.01))]),
        seed: Some(7),
        metrics: BTreeMap::from([("accuracy".into(), 0.5)]),
        parent: None,
        job_id: None,
        blobs: BTreeMap::from([("weights".into(), digest)]),
        device: Some("cpu".into()),
        source: None,
        libtorch_version: None,
        study: None,
        compression: None,
        license: None,
        checkpoint: None,
    }
}

fn add(registry: &Registry, model: &str, payload: &[u8]) -> u32 {
    let lock = registry.lock().expect("lock");
    registry.ensure_model(&lock, record(model)).expect("model");
    registry
        .add_version(&lock, &name(model), draft(registry, payload), &Default::default())
        .expect("version")
        .version
}

#[test]
fn versions_aliases_and_blobs_round_trip() {
    let home = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(home.path()).expect("open");
    assert_eq!(add(&registry, "fmnist-cnn", b"w1"), 1);
    assert_eq!(add(&registry, "fmnist-cnn", b"w2"), 2);
    let lock = registry.lock().expect("lock");
    registry
        .set_alias(&lock, &name("fmnist-cnn"), &name("production"), 1)
        .expect("alias");
    drop(lock);

    let reopened = Registry::open(home.path()).expect("reopen");
    let v1 = reopened.version(&name("fmnist-cnn"), 1).expect("v1");
    let mut stored = v1.draft.clone();
    let card = stored.blobs.remove("card").expect("every version gets a model card");
    let config = stored
        .blobs
        .remove("config")
        .expect("every version gets its config.json");
    assert_eq!(stored, draft(&reopened, b"w1"));
    let card = String::from_utf8(reopened.blobs().read(&card).expect("card")).expect("utf-8");
    assert!(
        card.starts_with("---\nlibrary_name: kiln\n") && card.contains("# fmnist-cnn version 1"),
        "{card}"
    );
    let config: Architecture = serde_json::from_slice(&reopened.blobs().read(&config).expect("config")).expect("json");
    assert_eq!(config, v1.draft.architecture);
    let weights = &v1.draft.blobs["weights"];
    assert_eq!(reopened.blobs().read(weights).expect("blob"), b"w1");
    let production: ModelRef = "fmnist-cnn@production".parse().expect("ref");
    assert_eq!(reopened.resolve(&production).expect("resolve"), 1);
    let latest: ModelRef = "fmnist-cnn".parse().expect("ref");
    assert_eq!(reopened.resolve(&latest).expect("resolve"), 2);

    let listing = reopened.scan().expect("scan");
    assert!(listing.problems.is_empty(), "{:?}", listing.problems);
    assert_eq!(listing.models[0].versions.len(), 2);
}

#[test]
fn removing_an_aliased_version_needs_force_and_takes_the_alias_along() {
    let home = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(home.path()).expect("open");
    add(&registry, "m", b"a");
    add(&registry, "m", b"b");
    let lock = registry.lock().expect("lock");
    registry
        .set_alias(&lock, &name("m"), &name("production"), 2)
        .expect("alias");
    let refused = registry.remove_version(&lock, &name("m"), 2, false);
    assert!(matches!(refused, Err(RegistryError::AliasInUse { .. })), "{refused:?}");
    assert!(
        registry.version(&name("m"), 2).is_ok(),
        "refused removal must keep the version"
    );
    let dropped = registry.remove_version(&lock, &name("m"), 2, true).expect("forced");
    assert_eq!(dropped, vec![name("production")]);
    assert!(registry.aliases(&name("m")).expect("aliases").is_empty());
    // Numbers are never reused: the next version is 2 again only because 2 is gone, and the
    // registry picks one past the highest remaining.
    drop(lock);
    assert_eq!(add(&registry, "m", b"c"), 2);
}

#[test]
fn a_flipped_byte_in_a_blob_is_caught_on_read_and_by_verify() {
    let home = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(home.path()).expect("open");
    let digest = registry.blobs().put_bytes(b"weights weights weights").expect("put");
    let path = registry.blobs().path(&digest);
    let mut bytes = fs::read(&path).expect("read");
    bytes[3] ^= 0x01;
    fs::write(&path, bytes).expect("corrupt");
    assert!(matches!(
        registry.blobs().read(&digest),
        Err(RegistryError::BlobMismatch { .. })
    ));
    let (checked, problems) = registry.blobs().verify_all().expect("verify");
    assert_eq!((checked, problems.len()), (1, 1));
}

#[test]
fn a_corrupt_manifest_is_reported_and_skipped_while_the_rest_lists() {
    let home = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(home.path()).expect("open");
    add(&registry, "good", b"g");
    add(&registry, "bad", b"b1");
    add(&registry, "bad", b"b2");
    let manifest = registry.root().join("models/bad/versions/1.json");
    fs::write(&manifest, b"{\"model\": \"bad\", \"vers").expect("corrupt");
    fs::write(registry.root().join("models/good/aliases.json"), b"not json").expect("corrupt");
    fs::create_dir_all(registry.root().join("models/Bad Name")).expect("odd folder");

    let listing = registry.scan().expect("scan");
    let names: Vec<&str> = listing.models.iter().map(|m| m.record.name.as_str()).collect();
    assert_eq!(names, ["bad", "good"]);
    assert_eq!(
        listing.models[0].versions.iter().map(|v| v.version).collect::<Vec<_>>(),
        [2]
    );
    assert_eq!(listing.problems.len(), 3, "{:?}", listing.problems);
    assert!(
        listing
            .problems
            .iter()
            .any(|p| p.path == manifest && p.model.as_deref() == Some("bad"))
    );
    let err = registry.version(&name("bad"), 1).expect_err("corrupt");
    assert!(err.to_string().contains("1.json"), "{err}");
}

#[test]
fn names_that_could_escape_the_registry_are_rejected() {
    for bad in ["../etc", "a/b", "Upper", "", &"x".repeat(65)] {
        assert!(Name::new(bad).is_err(), "{bad:?}");
        assert!(format!("{bad}@1").parse::<ModelRef>().is_err(), "{bad:?}@1");
    }
    assert!(
        serde_json::from_str::<Name>("\"../../x\"").is_err(),
        "deserialising validates too"
    );
}

/// Child mode for the crash test: add versions and move aliases as fast as possible.
#[test]
fn crash_writer_child() {
    let Some(home) = std::env::var_os("KILN_CRASH_WRITER_HOME") else {
        return;
    };
    let registry = Registry::open(Path::new(&home)).expect("open");
    for i in 0u64.. {
        let version = add(&registry, "crash", &i.to_le_bytes());
        let lock = registry.lock().expect("lock");
        registry
            .set_alias(&lock, &name("crash"), &name("production"), version)
            .expect("alias");
    }
}

#[test]
fn sigkill_at_random_moments_never_leaves_a_half_written_entry() {
    let home = tempfile::tempdir().expect("tempdir");
    let exe = std::env::current_exe().expect("test binary");
    let mut seen_versions = 0;
    let mut mid_write_kills = 0;
    let mut temp_names = std::collections::HashSet::new();
    for round in 0..120u64 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_writer_child", "--nocapture", "--test-threads=1"])
            .env("KILN_CRASH_WRITER_HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn writer");
        // Vary the kill moment: 5..40 ms after start, pseudo-randomly per round.
        std::thread::sleep(Duration::from_millis(5 + (round * 7919) % 36));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");

        let before = temp_names.len();
        collect_temp_files(home.path(), &mut temp_names);
        mid_write_kills += usize::from(temp_names.len() > before);
        let registry = Registry::open(home.path()).expect("registry still opens");
        let listing = registry.scan().expect("scan");
        assert!(listing.problems.is_empty(), "round {round}: {:?}", listing.problems);
        if let Some(model) = listing.models.first() {
            let numbers: Vec<u32> = model.versions.iter().map(|v| v.version).collect();
            assert_eq!(
                numbers,
                (1..=numbers.len() as u32).collect::<Vec<_>>(),
                "round {round}: gaps"
            );
            for v in &model.versions {
                registry
                    .blobs()
                    .read(&v.draft.blobs["weights"])
                    .expect("every manifest's blob is whole");
            }
            if let Some(&target) = model.aliases.get(&name("production")) {
                assert!(numbers.contains(&target), "alias points at a missing version");
            }
            seen_versions = numbers.len();
        }
    }
    assert!(
        seen_versions > 0,
        "the writer never got a version in; kills came too early"
    );
    eprintln!("120 SIGKILLs: {seen_versions} versions written, {mid_write_kills} kills left a temp file behind");
}

/// Adds the paths of in-progress temp files under `dir` (left by a killed writer) to `seen`.
fn collect_temp_files(dir: &Path, seen: &mut std::collections::HashSet<std::path::PathBuf>) {
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .starts_with(kiln_core::fsx::TEMP_PREFIX)
        {
            seen.insert(entry.path());
        } else if entry.path().is_dir() {
            collect_temp_files(&entry.path(), seen);
        }
    }
}

#[test]
fn a_version_signed_at_registration_verifies_and_a_reused_number_starts_unsigned() {
    let home = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(home.path()).expect("open");
    let key = kiln_core::signing::PrivateKey::generate();
    let trusted = [(name("ops"), key.public_key().clone())];
    let hash = &kiln_core::registry::signature::hash_plain;
    let lock = registry.lock().expect("lock");
    registry.ensure_model(&lock, record("m")).expect("model");
    let extras = kiln_core::registry::Extras {
        signer: Some(&key),
        ..Default::default()
    };
    let v1 = registry
        .add_version(&lock, &name("m"), draft(&registry, b"w1"), &extras)
        .expect("v1");
    let status = registry.check_signature(&v1, &trusted, home.path(), hash);
    assert_eq!(status.signer().map(Name::as_str), Some("ops"), "{status:?}");
    assert!(status.is_verified(), "{status:?}");

    // Removed and registered again under the same number: no stale signature is attached.
    registry.remove_version(&lock, &name("m"), 1, false).expect("remove");
    let again = registry
        .add_version(&lock, &name("m"), draft(&registry, b"w2"), &Default::default())
        .expect("v1 again");
    assert_eq!(again.version, 1);
    assert_eq!(
        registry.check_signature(&again, &trusted, home.path(), hash),
        kiln_core::registry::SignatureStatus::Unsigned
    );
}
