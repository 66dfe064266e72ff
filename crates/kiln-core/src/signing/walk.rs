//! Hashing a model folder the way model_signing 1.1.1's default `files` serialization does
//! (`_serialization/file.py`, `_serialization/serialization.py`, `hashing.py`):
//!
//! * every regular file under the folder, at any depth and including dot-files, is hashed
//!   whole with sha256 and named by its `/`-separated path relative to the folder;
//! * a path is left out when it equals, or lies under, an ignored path (the signature file
//!   and `.git`, `.gitattributes`, `.github`, `.gitignore` at the folder's top, plus any
//!   `ignore_paths` recorded in the signature);
//! * every entry, ignored or not, must be a file or a folder: a symbolic link is refused
//!   unless the serialization allows links (then a link to a file is hashed as that file and
//!   a link to a folder is skipped, as Python's `glob("**/*")` does), and sockets, pipes and
//!   broken links are refused.

use std::fs;
use std::path::{Path, PathBuf};

use super::error::SigningError;
use super::manifest::{FileDigest, Manifest};
use super::statement::Serialization;

/// What model_signing ignores by default (`--ignore-git-paths`), relative to the folder.
pub const GIT_PATHS: [&str; 4] = [".git", ".gitattributes", ".github", ".gitignore"];

/// Paths left out of a manifest, each as its components relative to the model folder.
#[derive(Debug, Clone, Default)]
pub struct IgnoreSet {
    entries: Vec<Vec<String>>,
}

impl IgnoreSet {
    /// Ignores each `/`-separated relative path and everything under it. Absolute paths and
    /// paths climbing out with `..` cannot name anything inside the folder and are dropped.
    pub fn new<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> Self {
        let entries = paths.into_iter().filter_map(|p| components_of(p.as_ref())).collect();
        Self { entries }
    }

    /// Whether `components` (a path relative to the folder) is ignored.
    pub fn matches(&self, components: &[String]) -> bool {
        self.entries.iter().any(|e| components.starts_with(e))
    }
}

/// `a/./b/` → `["a", "b"]`; `None` for absolute, empty or `..` paths.
fn components_of(path: &str) -> Option<Vec<String>> {
    if path.starts_with('/') {
        return None;
    }
    let parts: Vec<String> = path
        .split('/')
        .filter(|c| !c.is_empty() && *c != ".")
        .map(str::to_owned)
        .collect();
    (!parts.is_empty() && !parts.iter().any(|c| c == "..")).then_some(parts)
}

/// Hashes every non-ignored file under `folder` into a manifest recording `serialization`.
pub fn hash_folder(folder: &Path, serialization: &Serialization, ignore: &IgnoreSet) -> Result<Manifest, SigningError> {
    check_root(folder, serialization.allow_symlinks)?;
    let mut found = Vec::new();
    collect_files(
        folder,
        &mut Vec::new(),
        serialization.allow_symlinks,
        ignore,
        &mut found,
    )?;
    let files = found
        .into_iter()
        .map(|(name, path)| FileDigest::of_file(name, &path))
        .collect::<Result<Vec<_>, _>>()?;
    Manifest::new(model_name_of(folder), serialization.clone(), files)
}

/// The folder must be a folder (and not a link unless links are allowed).
fn check_root(folder: &Path, allow_symlinks: bool) -> Result<(), SigningError> {
    let meta = fs::symlink_metadata(folder).map_err(SigningError::io("read", folder))?;
    if meta.file_type().is_symlink() && !allow_symlinks {
        return Err(SigningError::Symlink { path: folder.into() });
    }
    if !fs::metadata(folder).map_err(SigningError::io("read", folder))?.is_dir() {
        return Err(SigningError::NotAFolder { path: folder.into() });
    }
    Ok(())
}

/// The subject name: the folder's last component, resolving `.` and `..` like model_signing.
pub fn model_name_of(folder: &Path) -> String {
    let named = folder.file_name().map(PathBuf::from);
    let resolved = || {
        fs::canonicalize(folder)
            .ok()
            .and_then(|p| p.file_name().map(PathBuf::from))
    };
    named
        .or_else(resolved)
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Appends `(relative name, path)` for every file to hash under `dir`.
fn collect_files(
    dir: &Path,
    rel: &mut Vec<String>,
    allow_symlinks: bool,
    ignore: &IgnoreSet,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SigningError> {
    for entry in fs::read_dir(dir).map_err(SigningError::io("list", dir))? {
        let entry = entry.map_err(SigningError::io("list", dir))?;
        let path = entry.path();
        let name = entry
            .file_name()
            .into_string()
            .map_err(|_| SigningError::NonUtf8Name { path: path.clone() })?;
        rel.push(name);
        let result = visit(&path, rel, allow_symlinks, ignore, out);
        rel.pop();
        result?;
    }
    Ok(())
}

/// Handles one entry: recurse into folders, record files, refuse anything else.
fn visit(
    path: &Path,
    rel: &mut Vec<String>,
    allow_symlinks: bool,
    ignore: &IgnoreSet,
    out: &mut Vec<(String, PathBuf)>,
) -> Result<(), SigningError> {
    let meta = fs::symlink_metadata(path).map_err(SigningError::io("read", path))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        if !allow_symlinks {
            return Err(SigningError::Symlink { path: path.into() });
        }
        // Followed for files only: Python's `glob("**/*")` does not descend linked folders.
        let target = fs::metadata(path).map_err(|_| SigningError::SpecialFile { path: path.into() })?;
        if target.is_file() && !ignore.matches(rel) {
            out.push((rel.join("/"), path.into()));
        }
        return Ok(());
    }
    if kind.is_dir() {
        return collect_files(path, rel, allow_symlinks, ignore, out);
    }
    if !kind.is_file() {
        return Err(SigningError::SpecialFile { path: path.into() });
    }
    if !ignore.matches(rel) {
        out.push((rel.join("/"), path.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(m: &Manifest) -> Vec<&str> {
        m.files().iter().map(|f| f.name.as_str()).collect()
    }

    #[test]
    fn hashes_nested_and_dot_files_but_not_ignored_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (p, body) in [
            ("w.bin", "w"),
            ("sub/x.json", "x"),
            (".hidden", "h"),
            (".git/HEAD", "ref"),
            (".gitignore", "*"),
            ("model.sig", "{}"),
            ("sub/.git", "not top-level"),
        ] {
            fs::create_dir_all(root.join(p).parent().expect("parent")).expect("mkdir");
            fs::write(root.join(p), body).expect("write");
        }
        let ignore = IgnoreSet::new(GIT_PATHS.iter().copied().chain(["model.sig"]));
        let m = hash_folder(root, &Serialization::files(vec![]), &ignore).expect("hash");
        assert_eq!(names(&m), [".hidden", "sub/.git", "sub/x.json", "w.bin"]);
        assert_eq!(m.files()[3], FileDigest::of_bytes("w.bin", b"w"));
    }

    #[test]
    fn refuses_symlinks_unless_allowed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        fs::create_dir(root.join("d")).expect("mkdir");
        fs::write(root.join("d/f"), "f").expect("write");
        std::os::unix::fs::symlink("d/f", root.join("link")).expect("symlink");
        std::os::unix::fs::symlink("d", root.join("linkdir")).expect("symlink");
        let err = hash_folder(root, &Serialization::files(vec![]), &IgnoreSet::default()).expect_err("must fail");
        assert!(matches!(err, SigningError::Symlink { .. }), "{err}");

        let mut allow = Serialization::files(vec![]);
        allow.allow_symlinks = true;
        let m = hash_folder(root, &allow, &IgnoreSet::default()).expect("hash");
        assert_eq!(names(&m), ["d/f", "link"]);
    }

    #[test]
    fn ignore_paths_match_whole_components() {
        let set = IgnoreSet::new([".git", "a/./b/", "../x", "/abs"]);
        let c = |p: &str| p.split('/').map(str::to_owned).collect::<Vec<_>>();
        assert!(set.matches(&c(".git")));
        assert!(set.matches(&c(".git/objects/1")));
        assert!(!set.matches(&c(".github")));
        assert!(set.matches(&c("a/b/c")));
        assert!(!set.matches(&c("a/bc")));
        assert!(!set.matches(&c("x")));
    }

    #[test]
    fn model_name_is_the_folder_name() {
        assert_eq!(model_name_of(Path::new("/tmp/models/fmnist")), "fmnist");
        assert!(!model_name_of(Path::new(".")).is_empty());
    }
}
