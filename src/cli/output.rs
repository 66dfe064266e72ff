//! How commands print: with `--json`, one document on stdout, the typed answer serialized as
//! it is; without, the text a person reads. Unreadable registry entries go to stderr.

use serde::Serialize;

use super::error::CliError;
use kiln_core::registry::Problem;

/// Prints `value` as one JSON line when `json`, else the text `text` makes.
pub fn emit<T: Serialize>(json: bool, value: &T, text: impl FnOnce() -> String) -> Result<(), CliError> {
    if json {
        let doc = serde_json::to_string(value).map_err(|e| CliError::failure(format!("cannot write JSON: {e}")))?;
        println!("{doc}");
    } else {
        println!("{}", text());
    }
    Ok(())
}

/// Warns on stderr about each registry entry the daemon could not read.
pub fn warn_problems(problems: &[Problem]) {
    for p in problems {
        let model = p
            .model
            .as_deref()
            .map(|m| format!(" of model '{m}'"))
            .unwrap_or_default();
        eprintln!(
            "kiln: warning: skipped unreadable entry{model}: {} ({})",
            p.path.display(),
            p.reason
        );
    }
}
