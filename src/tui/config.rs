//! The console's config file: `config.toml` in the platform config dir
//! (`~/.config/kiln/` on Linux; `KILN_CONFIG_DIR` overrides it, for tests).
//!
//! ```toml
//! theme = "high-contrast"
//! [keymap]
//! cancel-job = ["x"]
//! quit = "Q"
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// One action's keys: a single key or a list.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Keys {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    theme: Option<String>,
    #[serde(default)]
    keymap: BTreeMap<String, Keys>,
    /// kilnd's `[signing]`, `[training]` and `[daemon]` tables (kiln_core::settings) and the
    /// `[contexts.NAME]` tables (kiln_core::context) share the file.
    #[serde(default)]
    #[allow(dead_code)]
    signing: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    training: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    daemon: Option<toml::Table>,
    #[serde(default)]
    #[allow(dead_code)]
    contexts: Option<toml::Table>,
}

/// `(theme, keymap)` as read from the file.
type Parsed = (Option<String>, BTreeMap<String, Vec<String>>);

/// What the config file asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Theme name (or path to a `.toml` file).
    pub theme: Option<String>,
    /// Action name → keys.
    pub keymap: BTreeMap<String, Vec<String>>,
    /// The folder the file was looked up in (also holds user `themes/`).
    pub dir: Option<PathBuf>,
}

/// The platform config folder for kiln.
pub fn config_dir() -> Option<PathBuf> {
    kiln_core::home::config_dir()
}

impl Config {
    /// Reads `<dir>/config.toml`; a missing file is the default config, a broken one is
    /// reported (with file and line) and ignored.
    pub fn load(dir: Option<&Path>) -> (Config, Option<String>) {
        let mut config = Config {
            dir: dir.map(Path::to_path_buf),
            ..Config::default()
        };
        let Some(path) = dir.map(|d| d.join("config.toml")) else {
            return (config, None);
        };
        let Ok(text) = std::fs::read_to_string(&path) else {
            return (config, None);
        };
        match Self::parse(&text) {
            Ok((theme, keymap)) => {
                config.theme = theme;
                config.keymap = keymap;
                (config, None)
            }
            Err((line, message)) => (config, Some(format!("{}:{line}: {message}", path.display()))),
        }
    }

    /// Parses the file's text into `(theme, keymap)`, or `(line, message)`.
    fn parse(text: &str) -> Result<Parsed, (usize, String)> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .and_then(|s| text.get(..s.start))
                .map_or(1, |h| h.matches('\n').count() + 1);
            (line, e.message().trim().to_owned())
        })?;
        let keymap = file
            .keymap
            .into_iter()
            .map(|(action, keys)| match keys {
                Keys::One(k) => (action, vec![k]),
                Keys::Many(ks) => (action, ks),
            })
            .collect();
        Ok((file.theme, keymap))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_theme_and_keymap_and_reports_bad_files() {
        let dir = tempfile::tempdir().ok();
        let dir = dir.as_ref().map(|d| d.path());
        let Some(d) = dir else { return };
        let _ = std::fs::write(
            d.join("config.toml"),
            "theme = \"light\"\n[keymap]\nquit = \"Q\"\nhelp = [\"f1\", \"?\"]\n",
        );
        let (config, problem) = Config::load(dir);
        assert_eq!(problem, None);
        assert_eq!(config.theme.as_deref(), Some("light"));
        assert_eq!(config.keymap["help"], vec!["f1", "?"]);
        let _ = std::fs::write(d.join("config.toml"), "theme = \"light\"\ncolour = 3\n");
        let (_, problem) = Config::load(dir);
        let problem = problem.unwrap_or_default();
        assert!(
            problem.ends_with(
                ":2: unknown field `colour`, expected one of `theme`, `keymap`, `signing`, `training`, `daemon`, \
                 `contexts`"
            ),
            "{problem}"
        );
    }
}
