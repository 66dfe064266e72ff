//! Crash-safe file writes: temp file in the same folder, fsync, rename, fsync the folder.
//!
//! A reader never sees a half-written file: it sees the old content or the new, whole. Temp
//! files start with [`TEMP_PREFIX`]; readers skip them and writers sweep stale ones.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Prefix of every in-progress file; anything starting with it is invisible to readers.
pub const TEMP_PREFIX: &str = ".tmp-";

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A unique temp path beside `target`.
pub fn temp_path_for(target: &Path) -> PathBuf {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    target.with_file_name(format!("{TEMP_PREFIX}{}-{n}-{name}", std::process::id()))
}

/// Writes `bytes` to `path` atomically and durably.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temp_path_for(path);
    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        sync_parent(path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Moves a fully written and synced temp file into place, then syncs the folder.
pub fn publish(tmp: &Path, path: &Path) -> io::Result<()> {
    fs::rename(tmp, path)?;
    sync_parent(path)
}

/// Removes a file and syncs its folder, so the removal survives a crash.
pub fn remove_durably(path: &Path) -> io::Result<()> {
    fs::remove_file(path)?;
    sync_parent(path)
}

/// fsyncs the folder holding `path`, making a rename or create in it durable.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => File::open(dir)?.sync_all(),
        _ => Ok(()),
    }
}

/// Creates `dir` and its parents, syncing each newly made level's parent.
pub fn create_dir_durably(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => sync_parent(dir),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Deletes leftover temp files and folders in `dir` (from writers that died mid-write).
/// Only call while holding the registry's write lock.
pub fn sweep_temp_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            let path = entry.path();
            let _ = if path.is_dir() {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
        }
    }
}

/// Whether a folder entry is an in-progress temp file.
pub fn is_temp(name: &str) -> bool {
    name.starts_with(TEMP_PREFIX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_content_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").expect("write");
        write_atomic(&path, b"two two").expect("rewrite");
        assert_eq!(fs::read(&path).expect("read"), b"two two");
        let names: Vec<_> = fs::read_dir(dir.path()).expect("ls").flatten().collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn sweep_removes_only_temp_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join(".tmp-1-0-x.json"), b"half").expect("write");
        fs::write(dir.path().join("1.json"), b"{}").expect("write");
        sweep_temp_files(dir.path());
        let names: Vec<_> = fs::read_dir(dir.path())
            .expect("ls")
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("1.json")]);
    }
}
