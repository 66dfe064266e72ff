//! The `[signing]`, `[training]` and `[daemon]` tables of `config.toml` (the config folder,
//! [`crate::home::config_dir`]), read by kilnd and its workers:
//!
//! ```toml
//! [signing]
//! key = "alice"          # sign every version registered here, and its provenance
//! require_signed = true  # deploy and restore only versions signed by a trusted key
//!
//! [training]
//! keep_epoch_checkpoints = 10  # the last 10 training jobs keep every epoch's checkpoint
//!
//! [daemon]
//! executor = "slurm"     # "local" (default): workers on this machine; "slurm": sbatch
//! partition = "gpu"      # the rest is optional and passed to sbatch as given
//! account = "ml-lab"
//! gres = "gpu:1"
//! time = "02:00:00"
//! sbatch_args = ["--qos=normal", "--cpus-per-task=8"]
//! ```
//!
//! The console's own settings (theme, keymap) live in the same file; each reader takes its
//! tables and leaves the others alone.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::names::Name;
use crate::signing::{KeyStore, PrivateKey, SigningError};

/// `[signing]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Signing {
    /// The key (`kiln keys gen --name NAME`) that signs each version at registration.
    #[serde(default)]
    pub key: Option<Name>,
    /// Refuse to deploy or restore anything not signed by a trusted key with intact files.
    #[serde(default)]
    pub require_signed: bool,
}

/// `[training]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// How many of the newest training jobs keep a checkpoint of every epoch, so any point of
    /// their validation curve can be registered as a version (0: none; the final epoch is
    /// always registered when a job finishes).
    #[serde(default = "default_keep_epoch_checkpoints")]
    pub keep_epoch_checkpoints: usize,
}

/// Training jobs that keep every epoch's checkpoint, unless `[training]` says otherwise.
pub const KEEP_EPOCH_CHECKPOINTS: usize = 10;

fn default_keep_epoch_checkpoints() -> usize {
    KEEP_EPOCH_CHECKPOINTS
}

impl Default for Training {
    fn default() -> Self {
        Self {
            keep_epoch_checkpoints: KEEP_EPOCH_CHECKPOINTS,
        }
    }
}

/// Where kilnd runs its jobs' workers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Executor {
    /// As child processes of the daemon, within its per-device limit.
    #[default]
    Local,
    /// As Slurm batch jobs (`sbatch`): Slurm queues them and picks their nodes. `$KILN_HOME`
    /// must be one shared folder at the same path on every node (a filesystem with atomic
    /// renames and file locks, e.g. NFSv4), `kilnd` installed at the same path, and the
    /// datasets a job reads present there too.
    Slurm,
}
crate::kinds::word_enum!(Executor, "executor");

/// The environment variable that overrides `[daemon] executor`.
pub const EXECUTOR_ENV: &str = "KILN_EXECUTOR";

/// `[daemon]`: how kilnd runs jobs. The Slurm fields are passed to `sbatch` as given (Slurm
/// checks them: a bad partition fails the job with sbatch's own message).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Daemon {
    #[serde(default)]
    pub executor: Executor,
    /// `sbatch --partition`.
    #[serde(default)]
    pub partition: Option<String>,
    /// `sbatch --account`.
    #[serde(default)]
    pub account: Option<String>,
    /// `sbatch --gres`, e.g. `gpu:1`: a job's GPUs are the ones Slurm gives it.
    #[serde(default)]
    pub gres: Option<String>,
    /// `sbatch --time`, e.g. `02:00:00`.
    #[serde(default)]
    pub time: Option<String>,
    /// More `sbatch` arguments, each one word, e.g. `["--qos=normal"]`.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl Daemon {
    /// The table with `KILN_EXECUTOR` (when set) in place of `executor`; a value that names
    /// no executor is an error saying which ones exist.
    pub fn with_env_override(mut self, value: Option<&str>) -> Result<Self, String> {
        if let Some(value) = value.map(str::trim).filter(|v| !v.is_empty()) {
            self.executor = value.parse().map_err(|e| format!("{EXECUTOR_ENV}={value}: {e}"))?;
        }
        Ok(self)
    }
}

#[derive(Debug, Default, Deserialize)]
struct File {
    #[serde(default)]
    signing: Signing,
    #[serde(default)]
    training: Training,
    #[serde(default)]
    daemon: Daemon,
}

/// kilnd's settings and where they come from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub signing: Signing,
    pub training: Training,
    /// `[daemon]` as written (kilnd applies `KILN_EXECUTOR` over it).
    pub daemon: Daemon,
    /// The config folder (keys, trust store); `None` when no home folder can be found.
    pub config_dir: Option<PathBuf>,
}

impl Settings {
    /// Reads `config.toml` from the config folder; a missing file is the defaults, a broken
    /// one an error naming it.
    pub fn load() -> Result<Self, String> {
        let config_dir = crate::home::config_dir();
        let file = match &config_dir {
            Some(dir) => read(&dir.join("config.toml"))?,
            None => File::default(),
        };
        Ok(Self {
            signing: file.signing,
            training: file.training,
            daemon: file.daemon,
            config_dir,
        })
    }

    /// The key store under the config folder.
    pub fn key_store(&self) -> KeyStore {
        KeyStore::new(self.config_dir.as_deref().unwrap_or(Path::new(".")))
    }

    /// The configured signing key, read (`None` when none is set).
    pub fn signer(&self) -> Result<Option<(Name, PrivateKey)>, SigningError> {
        match &self.signing.key {
            Some(name) => Ok(Some((name.clone(), self.key_store().private(name)?))),
            None => Ok(None),
        }
    }
}

fn read(path: &Path) -> Result<File, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(File::default()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    toml::from_str::<File>(&text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signing_table_is_read_and_other_tables_are_left_alone() {
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "theme = \"light\"\n[signing]\nkey = \"alice\"\nrequire_signed = true\n",
        )
        .expect("ok");
        let file = read(&path).expect("ok");
        assert_eq!(file.signing.key.as_ref().map(Name::as_str), Some("alice"));
        assert!(file.signing.require_signed);
        assert_eq!(file.training.keep_epoch_checkpoints, KEEP_EPOCH_CHECKPOINTS);
        std::fs::write(&path, "[signing]\nrequire_signd = true\n").expect("ok");
        assert!(read(&path).expect_err("refused").contains("require_signd"));
        assert_eq!(
            read(&dir.path().join("none.toml")).expect("ok").signing,
            Signing::default()
        );
        std::fs::write(&path, "[training]\nkeep_epoch_checkpoints = 0\n").expect("ok");
        assert_eq!(read(&path).expect("ok").training.keep_epoch_checkpoints, 0);
    }

    #[test]
    fn the_daemon_table_picks_the_executor_and_the_environment_overrides_it() {
        let dir = tempfile::tempdir().expect("ok");
        let path = dir.path().join("config.toml");
        assert_eq!(read(&path).expect("ok").daemon.executor, Executor::Local);
        std::fs::write(
            &path,
            "[daemon]\nexecutor = \"slurm\"\npartition = \"debug\"\ngres = \"gpu:1\"\n\
             time = \"02:00:00\"\nsbatch_args = [\"--qos=low\"]\n",
        )
        .expect("ok");
        let daemon = read(&path).expect("ok").daemon;
        assert_eq!(daemon.executor, Executor::Slurm);
        assert_eq!(daemon.partition.as_deref(), Some("debug"));
        assert_eq!(daemon.sbatch_args, ["--qos=low"]);
        let local = daemon.clone().with_env_override(Some("local")).expect("ok");
        assert_eq!(local.executor, Executor::Local);
        assert_eq!(daemon.clone().with_env_override(Some("")).expect("ok"), daemon);
        let bad = daemon.with_env_override(Some("slrum")).expect_err("refused");
        assert!(
            bad.contains("KILN_EXECUTOR=slrum") && bad.contains("local, slurm"),
            "{bad}"
        );
        std::fs::write(&path, "[daemon]\nexecutor = \"pbs\"\n").expect("ok");
        let bad = read(&path).expect_err("refused");
        assert!(bad.contains("pbs") && bad.contains("slurm"), "{bad}");
    }
}
