//! Interoperability with the reference tool, `model_signing` 1.1.1.
//!
//! * `assets/fixtures/model-signing/` holds a folder signed by `model_signing sign key` with an
//!   OpenSSL P-256 key; kiln must verify it (proves kiln reads the reference format).
//! * When `KILN_MODEL_SIGNING_BIN` names the reference `model_signing` executable (see
//!   `scripts/model-signing-check`), it must verify a folder kiln signed, and kiln must verify
//!   a folder it signed with a key kiln wrote. Without the variable those checks print a note
//!   and pass.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::statement::Statement;
use super::*;

/// The variable naming the reference `model_signing` executable.
const REFERENCE_BIN: &str = "KILN_MODEL_SIGNING_BIN";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/fixtures/model-signing")
}

fn reference_bin() -> Option<PathBuf> {
    let bin = std::env::var_os(REFERENCE_BIN).map(PathBuf::from);
    if bin.is_none() {
        eprintln!(
            "note: {REFERENCE_BIN} is not set; skipping the reference model_signing check (run scripts/model-signing-check)"
        );
    }
    bin
}

/// Copies the fixture model folder into a temp dir.
fn copy_fixture_model() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("model");
    fs::create_dir(&model).expect("mkdir");
    for entry in fs::read_dir(fixture().join("model")).expect("fixture") {
        let entry = entry.expect("entry");
        fs::copy(entry.path(), model.join(entry.file_name())).expect("copy");
    }
    (dir, model)
}

/// Runs the reference tool: whether it succeeded, and its combined output.
fn run_reference(bin: &Path, args: &[&str]) -> (bool, String) {
    let out = Command::new(bin).args(args).output().expect("run model_signing");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// `model_signing sign key` of `model` with the private key file `private` into `signature`,
/// leaving out `ignore` when given.
fn reference_sign(bin: &Path, private: &Path, signature: &Path, ignore: Option<&Path>, model: &Path) -> (bool, String) {
    let mut args = vec![
        "sign",
        "key",
        "--private_key",
        path_str(private),
        "--signature",
        path_str(signature),
    ];
    if let Some(ignore) = ignore {
        args.extend(["--ignore-paths", path_str(ignore)]);
    }
    args.push(path_str(model));
    run_reference(bin, &args)
}

#[test]
fn verifies_a_folder_signed_by_model_signing() {
    let key = PublicKey::read(&fixture().join("key.pub")).expect("fixture key");
    let model = fixture().join("model");
    let signed = verify_folder(&model, &model.join(SIGNATURE_FILE), &key).expect("reference signature verifies");
    let names: Vec<_> = signed.files().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["config.json", "weights.bin"]);
    assert_eq!(signed.model_name, "model");
    assert!(signed.serialization.ignore_paths.iter().any(|p| p == "model.sig"));
}

#[test]
fn the_key_hint_matches_model_signing() {
    let text = fs::read_to_string(fixture().join("key.pub")).expect("fixture key");
    let key = PublicKey::from_pem(&text).expect("key");
    // OpenSSL writes the same canonical SPKI PEM that `cryptography` re-encodes and hashes.
    assert_eq!(key.to_pem(), text);
    let bundle = Bundle::read(&fixture().join("model").join(SIGNATURE_FILE)).expect("bundle");
    assert_eq!(bundle.key_hint.as_deref(), Some(key.hint().as_str()));
    // kiln's own writer reproduces the reference bundle byte for byte.
    let reference = fs::read_to_string(fixture().join("model").join(SIGNATURE_FILE)).expect("read");
    assert_eq!(bundle.to_json(), reference);
}

#[test]
fn a_tampered_reference_folder_names_the_file() {
    let (_dir, model) = copy_fixture_model();
    fs::write(model.join("weights.bin"), "tampered").expect("write");
    let key = PublicKey::read(&fixture().join("key.pub")).expect("fixture key");
    match verify_folder(&model, &model.join(SIGNATURE_FILE), &key) {
        Err(SigningError::Mismatch(report)) => assert_eq!(report.changed[0].name, "weights.bin"),
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[test]
fn model_signing_verifies_what_kiln_signs() {
    let Some(bin) = reference_bin() else { return };
    let (dir, model) = copy_fixture_model();
    fs::remove_file(model.join(SIGNATURE_FILE)).expect("rm");
    fs::create_dir(model.join("nested")).expect("mkdir");
    fs::write(model.join("nested/extra.txt"), "kiln-signed").expect("write");
    // `nested.txt` sorts after `nested/...` by path components, before it as a plain string.
    fs::write(model.join("nested.txt"), "order").expect("write");
    let key = PrivateKey::generate();
    let public = dir.path().join("key.pub");
    key.public_key().write(&public).expect("write key");
    let sig = model.join(SIGNATURE_FILE);
    sign_folder(&model, &sig, &key).expect("sign");

    let args = [
        "verify",
        "key",
        "--signature",
        path_str(&sig),
        "--public_key",
        path_str(&public),
        path_str(&model),
    ];
    let (ok, out) = run_reference(&bin, &args);
    eprintln!("model_signing verify key (kiln-signed folder): {}", out.trim());
    assert!(ok && out.contains("Verification succeeded"), "{out}");
    assert_same_statement_as_reference(&bin, &model, &key, &sig);

    // The reference tool really checks content: one changed byte fails it, naming the file.
    fs::write(model.join("nested/extra.txt"), "kiln-signeD").expect("write");
    let (ok, out) = run_reference(&bin, &args);
    eprintln!(
        "model_signing verify key (after changing nested/extra.txt): {}",
        out.trim()
    );
    assert!(!ok && out.contains("nested/extra.txt"), "{out}");
}

#[test]
fn kiln_verifies_what_model_signing_signs_with_a_kiln_key() {
    let Some(bin) = reference_bin() else { return };
    let (dir, model) = copy_fixture_model();
    fs::remove_file(model.join(SIGNATURE_FILE)).expect("rm");
    let key = PrivateKey::generate();
    let private = dir.path().join("key.pem");
    key.write(&private).expect("write key");
    let sig = model.join(SIGNATURE_FILE);

    let (ok, out) = reference_sign(&bin, &private, &sig, None, &model);
    eprintln!("model_signing sign key (kiln-written key): {}", out.trim());
    assert!(ok, "{out}");
    verify_folder(&model, &sig, key.public_key()).expect("kiln verifies the reference signature");
}

#[test]
fn kiln_verifies_reference_p384_and_p521_signatures() {
    use p256::pkcs8::{EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
    let Some(bin) = reference_bin() else { return };
    let p384 = p384::SecretKey::random(&mut rand_core::OsRng);
    let p521 = p521::SecretKey::random(&mut rand_core::OsRng);
    let keys = [
        (
            "P-384",
            p384.to_pkcs8_pem(LineEnding::LF),
            p384.public_key().to_public_key_pem(LineEnding::LF),
        ),
        (
            "P-521",
            p521.to_pkcs8_pem(LineEnding::LF),
            p521.public_key().to_public_key_pem(LineEnding::LF),
        ),
    ];
    for (curve, private_pem, public_pem) in keys {
        let (dir, model) = copy_fixture_model();
        let private = dir.path().join("key.pem");
        fs::write(&private, private_pem.expect("pkcs8").as_bytes()).expect("write key");
        let sig = model.join(SIGNATURE_FILE);
        let (ok, out) = reference_sign(&bin, &private, &sig, None, &model);
        assert!(ok, "{out}");
        let public = PublicKey::from_pem(&public_pem.expect("spki")).expect("public key");
        assert_eq!(public.curve().to_string(), curve);
        verify_folder(&model, &sig, &public).expect("kiln verifies the reference signature");
        eprintln!("kiln verified a {curve} signature made by model_signing sign key");
    }
}

/// The reference tool, signing the same folder, records the same resources (in the same
/// order) and the same subject digest as kiln did.
fn assert_same_statement_as_reference(bin: &Path, model: &Path, key: &PrivateKey, kiln_sig: &Path) {
    let dir = tempfile::tempdir().expect("tempdir");
    let private = dir.path().join("key.pem");
    key.write(&private).expect("write key");
    let reference_sig = dir.path().join("reference.sig");
    let (ok, out) = reference_sign(bin, &private, &reference_sig, Some(kiln_sig), model);
    assert!(ok, "{out}");
    let statement = |path: &Path| -> Statement {
        let bundle = Bundle::read(path).expect("bundle");
        serde_json::from_slice(&bundle.envelope.payload).expect("statement")
    };
    let (kiln, reference) = (statement(kiln_sig), statement(&reference_sig));
    assert_eq!(kiln.subject, reference.subject);
    assert_eq!(kiln.predicate.resources, reference.predicate.resources);
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
