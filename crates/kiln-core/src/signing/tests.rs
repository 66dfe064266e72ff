//! End-to-end tests of the signing module on temp folders: sign, verify, tamper, and refuse.

use std::fs;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use p256::pkcs8::EncodePrivateKey as _;
use p256::pkcs8::EncodePublicKey as _;

use super::*;

/// A temp folder holding `model/` with a few files, nested and dotted.
fn model_folder() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let model = dir.path().join("fmnist-mlp");
    for (name, body) in [
        ("config.json", &b"{\"hidden\": 16}"[..]),
        ("weights.safetensors", &[0u8, 1, 2, 3, 4, 5, 6, 7][..]),
        ("tokenizer/vocab.txt", &b"a\nb\n"[..]),
        (".gitignore", &b"*.tmp\n"[..]),
    ] {
        let path = model.join(name);
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, body).expect("write");
    }
    (dir, model)
}

fn sign(model: &Path) -> (PrivateKey, PathBuf) {
    let key = PrivateKey::generate();
    let sig = model.join(SIGNATURE_FILE);
    sign_folder(model, &sig, &key).expect("sign");
    (key, sig)
}

fn mismatch(result: Result<Manifest, SigningError>) -> MismatchReport {
    match result {
        Err(SigningError::Mismatch(report)) => report,
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

/// A PEM block from DER bytes.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("ascii"))
        .collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[test]
fn signs_and_verifies_a_folder() {
    let (_dir, model) = model_folder();
    let (key, sig) = sign(&model);
    let signed = verify_folder(&model, &sig, key.public_key()).expect("verifies");
    let names: Vec<_> = signed.files().iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["config.json", "tokenizer/vocab.txt", "weights.safetensors"]);
    assert_eq!(signed.model_name, "fmnist-mlp");

    let bundle = Bundle::read(&sig).expect("bundle");
    assert_eq!(bundle.key_hint, Some(key.public_key().hint()));
    let payload: serde_json::Value = serde_json::from_slice(&bundle.envelope.payload).expect("json");
    assert_eq!(payload["predicateType"], "https://model_signing/signature/v1.0");
    assert_eq!(
        payload["predicate"]["serialization"],
        serde_json::json!({
            "method": "files", "hash_type": "sha256", "allow_symlinks": false,
            "ignore_paths": ["model.sig", ".git", ".gitattributes", ".github", ".gitignore"],
        })
    );
    assert_eq!(payload["predicate"]["resources"][0]["algorithm"], "sha256");
}

#[test]
fn a_flipped_byte_names_the_file() {
    let (_dir, model) = model_folder();
    let (key, sig) = sign(&model);
    let path = model.join("tokenizer/vocab.txt");
    let mut bytes = fs::read(&path).expect("read");
    bytes[0] ^= 1;
    fs::write(&path, bytes).expect("write");

    let report = mismatch(verify_folder(&model, &sig, key.public_key()));
    assert_eq!(report.changed.len(), 1);
    assert_eq!(report.changed[0].name, "tokenizer/vocab.txt");
    assert!(report.missing.is_empty() && report.extra.is_empty());
    assert!(report.to_string().contains("'tokenizer/vocab.txt' changed"), "{report}");
}

#[test]
fn extra_and_missing_files_are_named() {
    let (_dir, model) = model_folder();
    let (key, sig) = sign(&model);
    fs::write(model.join("tokenizer/merges.txt"), "x").expect("write");
    let report = mismatch(verify_folder(&model, &sig, key.public_key()));
    assert_eq!(report.extra, ["tokenizer/merges.txt"]);

    fs::remove_file(model.join("tokenizer/merges.txt")).expect("rm");
    fs::remove_file(model.join("config.json")).expect("rm");
    let err = verify_folder(&model, &sig, key.public_key()).expect_err("must fail");
    assert!(err.to_string().contains("missing 'config.json'"), "{err}");
    assert_eq!(mismatch(Err(err)).missing, ["config.json"]);

    // Git files are outside the signature either way.
    fs::write(model.join("config.json"), "{\"hidden\": 16}").expect("write");
    fs::write(model.join(".gitignore"), "changed").expect("write");
    verify_folder(&model, &sig, key.public_key()).expect("git files are ignored");
}

#[test]
fn a_wrong_key_is_refused() {
    let (_dir, model) = model_folder();
    let (_key, sig) = sign(&model);
    let other = PrivateKey::generate();
    let err = verify_folder(&model, &sig, other.public_key()).expect_err("must fail");
    assert!(matches!(err, SigningError::KeyMismatch { .. }), "{err}");

    // Without the hint, the signature check itself refuses the key.
    let mut bundle = Bundle::read(&sig).expect("bundle");
    bundle.key_hint = None;
    let err = verify_bundle(&bundle, other.public_key()).expect_err("must fail");
    assert!(
        err.to_string().contains("does not verify with this P-256 public key"),
        "{err}"
    );
}

#[test]
fn corrupt_bundles_get_clear_errors() {
    let (_dir, model) = model_folder();
    let (key, sig) = sign(&model);
    let good = fs::read_to_string(&sig).expect("read");
    let check = |text: &str, expect: &str| {
        fs::write(&sig, text).expect("write");
        let err = verify_folder(&model, &sig, key.public_key()).expect_err("must fail");
        assert!(err.to_string().contains(expect), "{err}");
    };
    check(&good[..good.len() / 2], "not a Sigstore bundle");
    check(
        &good.replace("application/vnd.in-toto+json", "text/plain"),
        "payload type 'text/plain'",
    );
    let sig_start = good.find("\"sig\":\"").expect("sig") + 7;
    let mut bad_b64 = good.clone();
    bad_b64.replace_range(sig_start..sig_start + 2, "!!");
    check(&bad_b64, "'dsseEnvelope.signatures[].sig' is not valid base64");
    check(&good.replace("\"payload\":\"", "\"payload\":\"AAAA"), "does not verify");
}

#[test]
fn private_keys_round_trip_as_owner_only_pkcs8_pem() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let key = PrivateKey::generate();
    let path = dir.path().join("key.pem");
    key.write(&path).expect("write");
    let mode = fs::metadata(&path).expect("stat").permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let text = fs::read_to_string(&path).expect("read");
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{text}");
    let back = PrivateKey::read(&path).expect("read back");
    assert_eq!(back.public_key(), key.public_key());

    let public = dir.path().join("key.pub");
    key.public_key().write(&public).expect("write");
    assert!(
        fs::read_to_string(&public)
            .expect("read")
            .starts_with("-----BEGIN PUBLIC KEY-----\n")
    );
    assert_eq!(&PublicKey::read(&public).expect("read"), key.public_key());
}

#[test]
fn debug_and_display_never_show_the_secret() {
    let key = PrivateKey::generate();
    let pem = key.to_pem().expect("pem");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    for shown in [format!("{key:?}"), format!("{key}")] {
        assert!(shown.contains(&key.public_key().hint()), "{shown}");
        assert!(!shown.contains(&body[..16]), "{shown}");
        assert!(!shown.to_lowercase().contains("secret"), "{shown}");
    }
}

#[test]
fn other_key_types_are_refused_by_name() {
    let ed25519_private = [&hex_bytes("302e020100300506032b657004220420")[..], &[7u8; 32]].concat();
    let ed25519_public = [&hex_bytes("302a300506032b6570032100")[..], &[7u8; 32]].concat();
    let rsa_private = hex_bytes("3016020100300d06092a864886f70d010101050004020000");
    let cases = [
        (
            PrivateKey::from_pem(&pem("PRIVATE KEY", &ed25519_private)).map(|_| ()),
            "ed25519 keys are not supported",
        ),
        (
            PublicKey::from_pem(&pem("PUBLIC KEY", &ed25519_public)).map(|_| ()),
            "ed25519 keys are not supported",
        ),
        (
            PrivateKey::from_pem(&pem("PRIVATE KEY", &rsa_private)).map(|_| ()),
            "RSA keys are not supported",
        ),
        (
            PrivateKey::from_pem(&pem("RSA PRIVATE KEY", &[0x30, 0])).map(|_| ()),
            "RSA keys are not supported",
        ),
        (
            PrivateKey::from_pem(&pem("ENCRYPTED PRIVATE KEY", &[0x30, 0])).map(|_| ()),
            "encrypted",
        ),
        (
            PublicKey::from_pem(&pem("PRIVATE KEY", &[0x30, 0])).map(|_| ()),
            "pass its public half",
        ),
        (PrivateKey::from_pem("not a key").map(|_| ()), "not a PEM private key"),
    ];
    for (result, expected) in cases {
        let err = result.expect_err(expected);
        assert!(err.to_string().contains(expected), "{err}");
    }
}

#[test]
fn p384_and_p521_keys_verify_but_do_not_sign() {
    use p384::ecdsa::signature::Signer as _;
    let key384 = p384::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let der = key384.to_pkcs8_der().expect("der");
    let err = PrivateKey::from_pem(&pem("PRIVATE KEY", der.as_bytes())).expect_err("must fail");
    assert!(
        err.to_string().contains("P-384 private keys can verify but not sign"),
        "{err}"
    );

    let public = key384
        .verifying_key()
        .to_public_key_pem(p384::pkcs8::LineEnding::LF)
        .expect("pem");
    let public = PublicKey::from_pem(&public).expect("P-384 public key");
    assert_eq!(public.curve(), Curve::P384);
    let sig: p384::ecdsa::Signature = key384.sign(b"message");
    public
        .verify(b"message", sig.to_der().as_bytes())
        .expect("SHA-384 signature verifies");
    assert!(public.verify(b"other", sig.to_der().as_bytes()).is_err());

    let key521 = p521::ecdsa::SigningKey::random(&mut rand_core::OsRng);
    let point = p521::ecdsa::VerifyingKey::from(&key521).to_encoded_point(false);
    let public521 = p521::PublicKey::from_sec1_bytes(point.as_bytes()).expect("point");
    let pem521 = public521.to_public_key_pem(p521::pkcs8::LineEnding::LF).expect("pem");
    let public = PublicKey::from_pem(&pem521).expect("P-521 public key");
    let sig: p521::ecdsa::Signature = key521.sign(b"message");
    public
        .verify(b"message", sig.to_der().as_bytes())
        .expect("SHA-512 signature verifies");
}

fn hex_bytes(text: &str) -> Vec<u8> {
    pem::unhex(text).expect("hex")
}
