//! A model's manifest: every file's sha256 under its `/`-separated name, in model_signing's
//! canonical order, plus the serialization that produced it (model_signing 1.1.1
//! `manifest.py`). It turns into the signed [`Statement`] and back, and two manifests compare
//! into a [`MismatchReport`] naming each changed, missing and extra file.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;

use sha2::{Digest as _, Sha256};

use super::error::{ChangedFile, MismatchReport, SigningError};
use super::pem::{hex, unhex};
use super::statement::{
    PREDICATE_TYPE, PREDICATE_TYPE_V0_1, Predicate, Resource, SHA256, STATEMENT_TYPE, Serialization, Statement,
    Subject, SubjectDigest,
};

/// Bytes read per call while hashing a file (model_signing's default chunk, 1 MiB).
const CHUNK: usize = 1 << 20;

/// One file of a model and its sha256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    /// `/`-separated path relative to the model folder.
    pub name: String,
    pub sha256: [u8; 32],
}

impl FileDigest {
    /// The digest of in-memory content.
    pub fn of_bytes(name: impl Into<String>, bytes: &[u8]) -> Self {
        Self {
            name: name.into(),
            sha256: Sha256::digest(bytes).into(),
        }
    }

    /// The digest of a file's content, read in 1 MiB chunks.
    pub fn of_file(name: impl Into<String>, path: &Path) -> Result<Self, SigningError> {
        let mut file = std::fs::File::open(path).map_err(SigningError::io("open", path))?;
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = file.read(&mut buf).map_err(SigningError::io("read", path))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        Ok(Self {
            name: name.into(),
            sha256: hasher.finalize().into(),
        })
    }

    /// The digest as lowercase hex.
    pub fn hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// A model's files and digests in canonical order, with how they were hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The subject name: the model folder's last component (informative only).
    pub model_name: String,
    pub serialization: Serialization,
    files: Vec<FileDigest>,
}

impl Manifest {
    /// Builds a manifest, sorting `files` the way model_signing does and refusing duplicates.
    pub fn new(
        model_name: impl Into<String>,
        serialization: Serialization,
        mut files: Vec<FileDigest>,
    ) -> Result<Self, SigningError> {
        files.sort_by(|a, b| posix_path_order(&a.name, &b.name));
        if let Some(pair) = files.windows(2).find(|w| w[0].name == w[1].name) {
            return Err(SigningError::DuplicateResource(pair[0].name.clone()));
        }
        Ok(Self {
            model_name: model_name.into(),
            serialization,
            files,
        })
    }

    /// The files in canonical order.
    pub fn files(&self) -> &[FileDigest] {
        &self.files
    }

    /// The subject digest: sha256 over every file's raw digest, in canonical order.
    pub fn root_digest(&self) -> [u8; 32] {
        root_digest(self.files.iter().map(|f| f.sha256))
    }

    /// The in-toto statement model_signing signs for this manifest.
    pub fn to_statement(&self) -> Statement {
        let resources = self
            .files
            .iter()
            .map(|f| Resource {
                name: f.name.clone(),
                algorithm: SHA256.to_owned(),
                digest: f.hex(),
            })
            .collect();
        Statement {
            statement_type: STATEMENT_TYPE.to_owned(),
            subject: vec![Subject {
                name: self.model_name.clone(),
                digest: SubjectDigest {
                    sha256: hex(&self.root_digest()),
                },
            }],
            predicate_type: PREDICATE_TYPE.to_owned(),
            predicate: Predicate {
                serialization: self.serialization.clone(),
                resources,
            },
        }
    }

    /// Reads a signed statement back into a manifest, with model_signing's checks
    /// (`dsse_payload_to_manifest`): statement and predicate types, one subject, and a subject
    /// digest that matches the resources.
    pub fn from_statement(statement: Statement) -> Result<Self, SigningError> {
        check_statement_header(&statement)?;
        let serialization = statement.predicate.serialization;
        if !serialization.is_supported() {
            return Err(SigningError::UnsupportedSerialization {
                method: serialization.method,
                hash_type: serialization.hash_type,
            });
        }
        let files = statement
            .predicate
            .resources
            .iter()
            .map(file_digest_of)
            .collect::<Result<Vec<_>, _>>()?;
        // model_signing hashes the resources in the order listed, before any sorting.
        let actual = hex(&root_digest(files.iter().map(|f| f.sha256)));
        let [subject] = <[Subject; 1]>::try_from(statement.subject)
            .map_err(|subjects| SigningError::statement(format!("expected one subject, found {}", subjects.len())))?;
        if !subject.digest.sha256.eq_ignore_ascii_case(&actual) {
            return Err(SigningError::InconsistentManifest {
                subject: subject.digest.sha256,
                actual,
            });
        }
        Self::new(subject.name, serialization, files)
    }

    /// How `actual` (the folder now) differs from `self` (what was signed).
    pub fn diff(&self, actual: &Manifest) -> MismatchReport {
        let signed: BTreeMap<&str, &FileDigest> = self.files.iter().map(|f| (f.name.as_str(), f)).collect();
        let now: BTreeMap<&str, &FileDigest> = actual.files.iter().map(|f| (f.name.as_str(), f)).collect();
        let mut report = MismatchReport::default();
        for f in &self.files {
            match now.get(f.name.as_str()) {
                None => report.missing.push(f.name.clone()),
                Some(a) if a.sha256 != f.sha256 => report.changed.push(ChangedFile {
                    name: f.name.clone(),
                    expected: f.hex(),
                    actual: a.hex(),
                }),
                Some(_) => {}
            }
        }
        report.extra = actual
            .files
            .iter()
            .filter(|f| !signed.contains_key(f.name.as_str()))
            .map(|f| f.name.clone())
            .collect();
        report
    }
}

/// Orders `/`-separated paths component by component, as Python's `PurePosixPath` does
/// (`a/b` sorts before `a.txt`, unlike a plain string comparison).
pub fn posix_path_order(a: &str, b: &str) -> Ordering {
    a.split('/').cmp(b.split('/'))
}

/// sha256 over the concatenated raw digests.
fn root_digest(digests: impl Iterator<Item = [u8; 32]>) -> [u8; 32] {
    let mut hasher = Sha256::new();
    for d in digests {
        hasher.update(d);
    }
    hasher.finalize().into()
}

/// Checks `_type` and `predicateType`.
fn check_statement_header(statement: &Statement) -> Result<(), SigningError> {
    if statement.statement_type != STATEMENT_TYPE {
        return Err(SigningError::statement(format!(
            "its _type is '{}', expected '{STATEMENT_TYPE}'",
            statement.statement_type
        )));
    }
    match statement.predicate_type.as_str() {
        PREDICATE_TYPE => Ok(()),
        PREDICATE_TYPE_V0_1 => Err(SigningError::statement(
            "it was made by model_signing before 1.0 (predicate Digests/v0.1); sign the model again with model_signing 1.x or kiln",
        )),
        other => Err(SigningError::statement(format!(
            "its predicateType is '{other}', expected '{PREDICATE_TYPE}'"
        ))),
    }
}

/// One resource as a digest, refusing other algorithms and malformed hex.
fn file_digest_of(resource: &Resource) -> Result<FileDigest, SigningError> {
    if resource.algorithm != SHA256 {
        return Err(SigningError::UnsupportedSerialization {
            method: "files".to_owned(),
            hash_type: resource.algorithm.clone(),
        });
    }
    let sha256 = unhex(&resource.digest)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            SigningError::statement(format!(
                "resource '{}' has digest '{}', not 64 hex digits",
                resource.name, resource.digest
            ))
        })?;
    Ok(FileDigest {
        name: resource.name.clone(),
        sha256,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest(files: &[(&str, &[u8])]) -> Manifest {
        let files = files.iter().map(|(n, b)| FileDigest::of_bytes(*n, b)).collect();
        Manifest::new("m", Serialization::files(vec![]), files).expect("unique names")
    }

    #[test]
    fn orders_by_path_components_like_pure_posix_path() {
        let m = manifest(&[("a.txt", b"1"), ("a/b", b"2"), ("B", b"3"), ("a/a", b"4")]);
        let names: Vec<_> = m.files().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["B", "a/a", "a/b", "a.txt"]);
    }

    #[test]
    fn root_digest_hashes_the_raw_digests_in_order() {
        let m = manifest(&[("y", b"2"), ("x", b"1")]);
        let mut concat = Vec::new();
        concat.extend(Sha256::digest(b"1"));
        concat.extend(Sha256::digest(b"2"));
        assert_eq!(m.root_digest(), <[u8; 32]>::from(Sha256::digest(&concat)));
    }

    #[test]
    fn statement_round_trips_and_checks_the_subject() {
        let m = manifest(&[("w.bin", b"w"), ("c.json", b"{}")]);
        let back = Manifest::from_statement(m.to_statement()).expect("consistent");
        assert_eq!(back, m);

        let mut forged = m.to_statement();
        forged.predicate.resources[0].digest = hex(&[7u8; 32]);
        let err = Manifest::from_statement(forged).expect_err("must fail");
        assert!(matches!(err, SigningError::InconsistentManifest { .. }), "{err}");
    }

    #[test]
    fn refuses_duplicates_other_predicates_and_shards() {
        let dup = vec![FileDigest::of_bytes("a", b"1"), FileDigest::of_bytes("a", b"2")];
        let err = Manifest::new("m", Serialization::files(vec![]), dup).expect_err("must fail");
        assert!(err.to_string().contains("'a' twice"), "{err}");

        let mut s = manifest(&[("a", b"1")]).to_statement();
        s.predicate_type = PREDICATE_TYPE_V0_1.to_owned();
        let err = Manifest::from_statement(s).expect_err("must fail");
        assert!(err.to_string().contains("before 1.0"), "{err}");

        let mut s = manifest(&[("a", b"1")]).to_statement();
        s.predicate.serialization.method = "shards".to_owned();
        let err = Manifest::from_statement(s).expect_err("must fail");
        assert!(err.to_string().contains("method 'shards'"), "{err}");
    }

    #[test]
    fn diff_names_changed_missing_and_extra_files() {
        let signed = manifest(&[("a", b"1"), ("b", b"2"), ("c", b"3")]);
        let now = manifest(&[("a", b"1"), ("b", b"X"), ("d", b"4")]);
        let report = signed.diff(&now);
        assert_eq!(report.changed.len(), 1);
        assert_eq!(report.changed[0].name, "b");
        assert_eq!(report.missing, ["c"]);
        assert_eq!(report.extra, ["d"]);
        assert!(signed.diff(&signed).is_empty());
    }
}
