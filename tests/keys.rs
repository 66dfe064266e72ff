//! `kiln keys` end to end: keys in a temp config folder, the private key 0600 and never in
//! any output, trust and untrust, and other key types refused by name.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

mod common;

/// An ed25519 public key (`openssl genpkey -algorithm ed25519 | openssl pkey -pubout`).
const ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAQDvEbL02hYJKh5/88Xm00avVGynU4fK9/6lpzzr1rj8=\n-----END PUBLIC KEY-----\n";

fn keys(config: &Path, args: &[&str]) -> Output {
    let mut all = vec!["keys"];
    all.extend(args);
    // No daemon is involved: the config folder is the operator's, not `$KILN_HOME`'s.
    std::process::Command::new(env!("CARGO_BIN_EXE_kiln"))
        .env("KILN_CONFIG_DIR", config)
        .env("KILN_HOME", config.join("home"))
        .args(&all)
        .output()
        .expect("run kiln keys")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn keys_are_generated_private_listed_trusted_and_refused_when_wrong() {
    let config = tempfile::tempdir().expect("temp config");
    let dir = config.path();
    let generated = keys(dir, &["gen", "--name", "ops", "--json"]);
    let entry = common::json(&generated);
    assert_eq!(
        (entry["name"].as_str(), entry["curve"].as_str()),
        (Some("ops"), Some("P-256"))
    );
    let private = dir.join("keys/ops.pem");
    let mode = std::fs::metadata(&private).expect("private key").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the private key must be readable by its owner only");
    let secret = std::fs::read_to_string(&private).expect("read");
    let body: String = secret.lines().filter(|l| !l.starts_with("-----")).collect();

    let again = keys(dir, &["gen", "--name", "ops"]);
    assert_eq!(again.status.code(), Some(2), "{again:?}");
    assert!(text(&again).contains("exists already"), "{}", text(&again));

    let partner = tempfile::tempdir().expect("partner config");
    assert!(keys(partner.path(), &["gen", "--name", "partner"]).status.success());
    let shared = partner.path().join("keys/partner.pub");
    let trusted = keys(dir, &["trust", shared.to_str().expect("utf-8")]);
    assert!(trusted.status.success(), "{trusted:?}");
    let ls = keys(dir, &["ls"]);
    let listing = text(&ls);
    assert!(
        listing.contains("ops") && listing.contains("own, trusted") && listing.contains("partner"),
        "{listing}"
    );

    let ed = dir.join("ed.pub");
    std::fs::write(&ed, ED25519_PUB).expect("write");
    let refused = keys(dir, &["trust", ed.to_str().expect("utf-8")]);
    assert_eq!(refused.status.code(), Some(2), "{refused:?}");
    assert!(text(&refused).to_lowercase().contains("ed25519"), "{}", text(&refused));
    let as_public = keys(dir, &["trust", private.to_str().expect("utf-8"), "--name", "oops"]);
    assert_eq!(as_public.status.code(), Some(2), "{as_public:?}");
    let missing = keys(dir, &["trust", "/nonexistent/key.pub"]);
    assert_ne!(missing.status.code(), Some(0));

    assert!(keys(dir, &["untrust", "partner"]).status.success());
    let gone = keys(dir, &["untrust", "partner"]);
    assert_eq!(gone.status.code(), Some(2), "{gone:?}");
    let listing = text(&keys(dir, &["ls", "--json"]));
    assert!(!listing.contains("partner"), "{listing}");

    // The private key's body appears in no output, and in no file but its own.
    for out in [&generated, &again, &trusted, &ls, &refused, &as_public] {
        assert!(!text(out).contains(&body), "a private key was printed");
    }
    for entry in walk(dir) {
        if entry != private {
            let content = std::fs::read(&entry).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&content).contains(&body),
                "{} holds the private key",
                entry.display()
            );
        }
    }
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(walk(&path));
        } else {
            files.push(path);
        }
    }
    files
}
