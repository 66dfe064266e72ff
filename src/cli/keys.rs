//! `kiln keys gen|ls|trust|untrust`: the signing keys and the trust store in the config
//! folder (`~/.config/kiln`, or `$KILN_CONFIG_DIR`). The config folder is the operator's, not
//! `$KILN_HOME`'s, so these commands need no daemon. A private key is written 0600 and never
//! printed.

use std::path::PathBuf;

use clap::Subcommand;

use super::error::CliError;
use super::output::emit;
use super::table;
use kiln_core::names::Name;
use kiln_core::signing::{KeyEntry, KeyStore, SigningError};

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a P-256 signing key (private key 0600 in the config folder; its public key is
    /// trusted at once).
    Gen {
        /// The key's name.
        #[arg(long, default_value = "default")]
        name: Name,
    },
    /// List own and trusted keys (names, curves and key hints).
    Ls,
    /// Trust the public key in a PEM file: signatures by it are accepted.
    Trust {
        /// A public key PEM file (`-----BEGIN PUBLIC KEY-----`), ECDSA P-256, P-384 or P-521.
        file: PathBuf,
        /// The name to trust it under [default: the file's stem].
        #[arg(long)]
        name: Option<Name>,
    },
    /// Stop trusting a key.
    Untrust { name: Name },
}

fn store() -> Result<KeyStore, CliError> {
    kiln_core::home::config_dir()
        .map(|dir| KeyStore::new(&dir))
        .ok_or_else(|| CliError::failure("cannot find a config folder; set KILN_CONFIG_DIR to a private folder"))
}

/// A key store error: bad input (a wrong key, a taken or unknown name) exits 2, I/O exits 1.
fn failed(e: SigningError) -> CliError {
    match e {
        SigningError::Io { .. } => CliError::failure(e.to_string()),
        other => CliError::bad_input(other.to_string()),
    }
}

pub fn run(cmd: &KeysCommand, json: bool) -> Result<u8, CliError> {
    let store = store()?;
    match cmd {
        KeysCommand::Gen { name } => {
            let entry = store.generate(name).map_err(failed)?;
            emit(json, &entry, || {
                format!(
                    "generated {} key {} (hint {}); its public key is trusted; share it with `kiln keys trust` on other boxes",
                    entry.curve, entry.name, entry.hint
                )
            })?;
        }
        KeysCommand::Ls => {
            let keys = store.list().map_err(failed)?;
            emit(json, &keys, || render(&keys))?;
        }
        KeysCommand::Trust { file, name } => {
            let name = match name {
                Some(name) => name.clone(),
                None => stem_name(file)?,
            };
            let entry = store.trust(file, &name).map_err(failed)?;
            emit(json, &entry, || {
                format!("trusting {} key {} (hint {})", entry.curve, entry.name, entry.hint)
            })?;
        }
        KeysCommand::Untrust { name } => {
            store.untrust(name).map_err(failed)?;
            emit(json, &serde_json::json!({ "untrusted": name }), || {
                format!("no longer trusting {name}")
            })?;
        }
    }
    Ok(0)
}

/// The name a trusted key gets from its file: `partner.pub` → `partner`.
fn stem_name(file: &std::path::Path) -> Result<Name, CliError> {
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    Name::new(&stem.to_ascii_lowercase()).map_err(|e| {
        CliError::bad_input(format!(
            "cannot name the key after {}: {e}; pass --name",
            file.display()
        ))
    })
}

fn render(keys: &[KeyEntry]) -> String {
    if keys.is_empty() {
        return "no keys yet: `kiln keys gen` makes one, `kiln keys trust FILE` trusts another's".into();
    }
    let rows: Vec<Vec<String>> = keys
        .iter()
        .map(|k| {
            let role = match (k.own, k.trusted) {
                (true, true) => "own, trusted",
                (true, false) => "own",
                (false, _) => "trusted",
            };
            vec![k.name.to_string(), k.curve.clone(), role.into(), k.hint.clone()]
        })
        .collect();
    table::render(&["NAME", "CURVE", "KEY", "HINT"], &rows)
        .trim_end()
        .to_owned()
}
