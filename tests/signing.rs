//! Signed, licensed, provenance-tracked versions end to end, with the real daemon, workers
//! and inference endpoint: a trained version gets its model card, config and provenance;
//! `kiln models sign` / `verify` / `export` / `import --require-signature`; a key set in
//! config.toml signs at registration; one flipped byte is named by `verify`, refused by a
//! strict daemon's deploy (the version in force keeps answering) and not restored at
//! restart. The private key never appears in `$KILN_HOME` or in any output.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod common;

/// An ed25519 private key (`openssl genpkey -algorithm ed25519`): model signing refuses it.
const ED25519_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIF3OB8p8Xll2mK0O6SCg1urGpKrJjEFNmmtoIC8DuM20\n-----END PRIVATE KEY-----\n";

/// A home and a config folder apart from it (keys must never be inside `$KILN_HOME`), with
/// every output kept for the private-key check.
struct Site {
    home: tempfile::TempDir,
    config: tempfile::TempDir,
    outputs: Vec<String>,
}

impl Site {
    fn new() -> Self {
        Self {
            home: tempfile::tempdir().expect("home"),
            config: tempfile::tempdir().expect("config"),
            outputs: Vec::new(),
        }
    }

    fn home(&self) -> &Path {
        self.home.path()
    }

    fn config(&self) -> &Path {
        self.config.path()
    }

    fn kiln(&mut self, args: &[&str]) -> Output {
        let out = common::command(env!("CARGO_BIN_EXE_kiln"), self.home.path())
            .env("KILN_CONFIG_DIR", self.config.path())
            .args(args)
            .output()
            .expect("run kiln");
        self.outputs.push(text(&out));
        out
    }

    /// `kiln --json ARGS`, which must succeed.
    fn json(&mut self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend(args);
        let out = self.kiln(&all);
        assert!(out.status.success(), "kiln {args:?}: {out:?}");
        common::json(&out)
    }

    fn train(&mut self, extra: &[&str]) -> String {
        let mut args = vec![
            "train",
            "mlp",
            "--data",
            "fashion-mnist",
            "--limit",
            "2000",
            "--epochs",
            "1",
            "--config",
            r#"{"hidden": [32]}"#,
            "--name",
            "fm",
        ];
        args.extend(extra);
        let end = self.json(&args);
        end["version"].as_str().expect("a version").to_owned()
    }

    fn blob(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.home().join("registry/blobs/sha256").join(&hex[..2]).join(hex)
    }

    fn version(&mut self, reference: &str) -> Value {
        self.json(&["models", "show", reference])["version"].clone()
    }

    fn inference(&self) -> String {
        let address = std::fs::read_to_string(self.home().join("daemon/inference_address")).expect("inference address");
        format!("http://{}", address.trim())
    }

    /// One image through `POST /v2/models/fm/infer`: the version that answered.
    fn answered_by(&self) -> Value {
        let body =
            json!({"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": vec![0.5; 784]}]});
        let url = format!("{}/v2/models/fm/infer", self.inference());
        let (status, answer) = common::http_json("POST", &url, None, Some(body.to_string().as_bytes()));
        assert_eq!(status, 200, "{answer:#}");
        answer["model_version"].clone()
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Flips one byte in the middle of a file, in place.
fn flip_byte(path: &Path) {
    let len = std::fs::metadata(path).expect("blob").len();
    let mut bytes = std::fs::read(path).expect("read blob");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    let mut file = std::fs::OpenOptions::new().write(true).open(path).expect("open blob");
    file.seek(SeekFrom::Start(middle as u64)).expect("seek");
    file.write_all(&bytes[middle..=middle]).expect("flip");
    assert_eq!(std::fs::metadata(path).expect("blob").len(), len);
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

#[test]
fn versions_are_carded_signed_verified_exported_imported_and_enforced() {
    let mut b = Site::new();
    let card = b.config().join("card.md");
    std::fs::write(&card, "A small Fashion-MNIST classifier for the signing test.\n").expect("card");
    b.json(&["keys", "gen", "--name", "ops"]);

    // A trained version gets its card (licence, dataset, metrics), config and provenance.
    let v1 = b.train(&["--license", "mit", "--card", card.to_str().expect("utf-8")]);
    assert_eq!(v1, "fm@1");
    let manifest = b.version("fm@1");
    assert_eq!(manifest["license"]["id"], "MIT", "{manifest:#}");
    for role in ["weights", "config", "classes", "card", "provenance"] {
        assert!(manifest["blobs"][role].is_string(), "no {role} blob: {manifest:#}");
    }
    let unsigned = b.kiln(&["models", "verify", "fm@1"]);
    assert_eq!(unsigned.status.code(), Some(5), "{unsigned:?}");
    assert!(text(&unsigned).contains("unsigned"), "{}", text(&unsigned));

    // Signed with the only key here; verified.
    let signed = b.kiln(&["models", "sign", "fm@1"]);
    assert!(signed.status.success(), "{signed:?}");
    let verified = b.kiln(&["models", "verify", "fm@1"]);
    assert_eq!(verified.status.code(), Some(0), "{verified:?}");
    assert!(text(&verified).contains("signed by ops"), "{}", text(&verified));

    // A wrong key type is refused by name; so is signing with a key that does not exist.
    std::fs::write(b.config().join("keys/ed.pem"), ED25519_KEY).expect("ed key");
    let ed = b.kiln(&["models", "sign", "fm@1", "--key", "ed"]);
    assert_eq!(ed.status.code(), Some(2), "{ed:?}");
    assert!(text(&ed).to_lowercase().contains("ed25519"), "{}", text(&ed));
    std::fs::remove_file(b.config().join("keys/ed.pem")).expect("rm ed key");
    let nokey = b.kiln(&["models", "sign", "fm@1", "--key", "nobody"]);
    assert_eq!(nokey.status.code(), Some(2), "{nokey:?}");
    assert!(text(&nokey).contains("kiln keys gen"), "{}", text(&nokey));

    // With a key in config.toml, a version is signed at registration, provenance included.
    std::fs::write(b.config().join("config.toml"), "[signing]\nkey = \"ops\"\n").expect("config");
    assert_eq!(b.train(&["--license", "Apache-2.0", "--seed", "7"]), "fm@2");
    // Another seed: fm@2's weights are a blob of their own (a shared blob is shared by
    // every version that has it, tampering included).
    assert_ne!(
        b.version("fm@1")["blobs"]["weights"],
        b.version("fm@2")["blobs"]["weights"]
    );
    let born_signed = b.kiln(&["models", "verify", "fm@2"]);
    assert_eq!(born_signed.status.code(), Some(0), "{born_signed:?}");

    // Export: the version's files and model.sig; the card and provenance read as they should.
    let out = b.config().join("export");
    let exported = b.kiln(&["models", "export", "fm@2", "--dir", out.to_str().expect("utf-8")]);
    assert!(exported.status.success(), "{exported:?}");
    let mut names: Vec<String> = files_under(&out)
        .iter()
        .map(|p| p.file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "README.md",
            "classes.json",
            "config.json",
            "model.safetensors",
            "model.sig",
            "provenance.json"
        ]
    );
    let readme = std::fs::read_to_string(out.join("README.md")).expect("card");
    assert!(readme.starts_with("---\nlicense: apache-2.0\n"), "{readme}");
    assert!(
        readme.contains("datasets:\n- fashion-mnist") && readme.contains("- accuracy"),
        "{readme}"
    );
    let provenance: Value =
        serde_json::from_slice(&std::fs::read(out.join("provenance.json")).expect("provenance")).expect("json");
    assert_eq!(
        provenance["mediaType"], "application/vnd.dev.sigstore.bundle.v0.3+json",
        "signed provenance is a bundle: {provenance:#}"
    );
    let public = kiln_core::signing::PublicKey::read(&b.config().join("keys/ops.pub")).expect("public key");
    let bundle = kiln_core::signing::Bundle::read(&out.join("provenance.json")).expect("bundle");
    let statement: Value =
        serde_json::from_slice(bundle.envelope.verify_in_toto(&public).expect("signed by ops")).expect("statement");
    assert_eq!(statement["predicateType"], "https://slsa.dev/provenance/v1");
    let build = &statement["predicate"]["buildDefinition"];
    assert_eq!(build["externalParameters"]["job"]["kind"], "train", "{statement:#}");
    let deps = build["resolvedDependencies"].as_array().expect("dependencies");
    assert!(
        deps.iter()
            .any(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("file://")) && d["digest"]["sha256"].is_string()),
        "dataset files with digests: {statement:#}"
    );
    assert!(
        deps.iter()
            .any(|d| d["uri"].as_str().is_some_and(|u| u.starts_with("pkg:pypi/torch@")))
    );
    assert!(statement["predicate"]["runDetails"]["metadata"]["invocationId"].is_string());
    kiln_core::signing::verify_folder(&out, &out.join("model.sig"), &public).expect("the export verifies");
    if let Some(reference) = std::env::var_os("KILN_MODEL_SIGNING_BIN") {
        let checked = std::process::Command::new(&reference)
            .args(["verify", "key", "--signature"])
            .arg(out.join("model.sig"))
            .arg("--public_key")
            .arg(b.config().join("keys/ops.pub"))
            .arg(&out)
            .output()
            .expect("run model_signing");
        assert!(
            checked.status.success(),
            "model_signing refused kiln's export: {checked:?}"
        );
        // And the other way: a folder `model_signing sign key` signed, with a key from
        // another box that is trusted here, imports with --require-signature.
        let lab = tempfile::tempdir().expect("the lab's config");
        let made = common::command(env!("CARGO_BIN_EXE_kiln"), &lab.path().join("home"))
            .env("KILN_CONFIG_DIR", lab.path())
            .args(["keys", "gen", "--name", "lab"])
            .output()
            .expect("kiln keys gen");
        assert!(made.status.success(), "{made:?}");
        let theirs = b.config().join("theirs");
        std::fs::create_dir(&theirs).expect("mkdir");
        for file in files_under(&out) {
            let name = file.file_name().expect("name");
            if name != "model.sig" {
                std::fs::copy(&file, theirs.join(name)).expect("copy");
            }
        }
        let signed_there = std::process::Command::new(&reference)
            .args(["sign", "key", "--private_key"])
            .arg(lab.path().join("keys/lab.pem"))
            .arg("--signature")
            .arg(theirs.join("model.sig"))
            .arg(&theirs)
            .output()
            .expect("run model_signing sign");
        assert!(signed_there.status.success(), "{signed_there:?}");
        let path = theirs.to_str().expect("utf-8");
        let untrusted = b.kiln(&["models", "import", "fm-lab", path, "--require-signature"]);
        assert_eq!(untrusted.status.code(), Some(2), "{untrusted:?}");
        assert!(text(&untrusted).contains("unknown key"), "{}", text(&untrusted));
        let lab_pub = lab.path().join("keys/lab.pub");
        b.json(&["keys", "trust", lab_pub.to_str().expect("utf-8")]);
        b.json(&["models", "import", "fm-lab", path, "--require-signature"]);
        let lab_verified = b.kiln(&["models", "verify", "fm-lab@1"]);
        assert_eq!(lab_verified.status.code(), Some(0), "{lab_verified:?}");
        assert!(text(&lab_verified).contains("signed by lab"), "{}", text(&lab_verified));
        eprintln!("model_signing 1.1.1 verified kiln's export, and kiln imported what it signed");
        b.json(&["keys", "untrust", "lab"]);
    }

    // The export imports under another name with its signature kept.
    let imported = b.json(&[
        "models",
        "import",
        "fm-copy",
        out.to_str().expect("utf-8"),
        "--require-signature",
    ]);
    assert_eq!(
        imported["blobs"]["weights"],
        b.version("fm@2")["blobs"]["weights"],
        "{imported:#}"
    );
    let copy = b.kiln(&["models", "verify", "fm-copy@1"]);
    assert_eq!(copy.status.code(), Some(0), "{copy:?}");
    // An unsigned folder is refused with --require-signature, and nothing is registered.
    std::fs::remove_file(out.join("model.sig")).expect("rm model.sig");
    let refused = b.kiln(&[
        "models",
        "import",
        "fm-copy",
        out.to_str().expect("utf-8"),
        "--require-signature",
    ]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(text(&refused).contains("no model.sig"), "{}", text(&refused));
    assert_eq!(b.kiln(&["models", "show", "fm-copy@2"]).status.code(), Some(3));

    // An untrusted key, and no trust store at all, each say so and how to fix it.
    b.json(&["keys", "untrust", "ops"]);
    let untrusted = b.kiln(&["models", "verify", "fm@1"]);
    assert_eq!(untrusted.status.code(), Some(5), "{untrusted:?}");
    assert!(
        text(&untrusted).contains("kiln keys trust") && text(&untrusted).contains("no trust store"),
        "{}",
        text(&untrusted)
    );
    let partner = b.config().join("partner.pub");
    std::fs::copy(b.config().join("keys/ops.pub"), &partner).expect("copy");
    b.json(&["keys", "gen", "--name", "other"]);
    let unknown = b.kiln(&["models", "verify", "fm@1"]);
    assert!(text(&unknown).contains("unknown key"), "{}", text(&unknown));
    b.json(&["keys", "trust", partner.to_str().expect("utf-8"), "--name", "ops"]);

    // A corrupt signature file is named, exit 4.
    let sig = b.home().join("registry/models/fm/signatures/1.sig");
    let good = std::fs::read(&sig).expect("signature");
    std::fs::write(&sig, b"{ not a bundle").expect("corrupt");
    let corrupt = b.kiln(&["models", "verify", "fm@1"]);
    assert_eq!(corrupt.status.code(), Some(4), "{corrupt:?}");
    assert!(text(&corrupt).contains("1.sig"), "{}", text(&corrupt));
    std::fs::write(&sig, good).expect("restore");

    // Strict mode: deploy fm@1 (signed; the journal records the signer).
    assert!(b.kiln(&["daemon", "stop"]).status.success());
    std::fs::write(
        b.config().join("config.toml"),
        "[signing]\nkey = \"ops\"\nrequire_signed = true\n",
    )
    .expect("config");
    let deployed = b.json(&["deploy", "fm@1"]);
    assert_eq!(deployed["signer"], "ops", "{deployed:#}");
    assert_eq!(b.answered_by(), "1");

    // One flipped byte in fm@2's weights: verify names the file; the deploy is refused and
    // fm@1 keeps answering.
    let v2 = b.version("fm@2");
    let weights = b.blob(v2["blobs"]["weights"].as_str().expect("digest"));
    flip_byte(&weights);
    let tampered = b.kiln(&["models", "verify", "fm@2"]);
    assert_eq!(tampered.status.code(), Some(4), "{tampered:?}");
    assert!(
        text(&tampered).contains("tampered") && text(&tampered).contains("model.safetensors"),
        "{}",
        text(&tampered)
    );
    let refused = b.kiln(&["deploy", "fm@2"]);
    assert!(!refused.status.success(), "{refused:?}");
    assert!(
        text(&refused).contains("require_signed") && text(&refused).contains("model.safetensors"),
        "{}",
        text(&refused)
    );
    assert_eq!(b.answered_by(), "1");
    // Fine-tuning from the tampered version is refused too.
    let finetune = b.kiln(&["train", "mlp", "--data", "fashion-mnist", "--from", "fm@2", "--detach"]);
    assert_eq!(finetune.status.code(), Some(2), "{finetune:?}");

    // At restart, a deployment whose files no longer verify is not restored, and says why.
    let v1 = b.version("fm@1");
    flip_byte(&b.blob(v1["blobs"]["weights"].as_str().expect("digest")));
    assert!(b.kiln(&["daemon", "stop"]).status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let problems = loop {
        let listing = b.json(&["deployments"]);
        if listing["ready"] == true {
            break listing["problems"].clone();
        }
        assert!(Instant::now() < deadline, "never ready: {listing:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    let problems = problems.to_string();
    assert!(
        problems.contains("not restored") && problems.contains("fm@1") && problems.contains("tampered"),
        "{problems}"
    );

    // The private key is in no file under $KILN_HOME and in no output.
    let secret = std::fs::read_to_string(b.config().join("keys/ops.pem")).expect("private key");
    let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(body.len() > 40);
    for file in files_under(b.home()) {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&body),
            "the private key is in {}",
            file.display()
        );
    }
    for out in &b.outputs {
        assert!(!out.contains(&body), "the private key was printed: {out}");
    }
}
