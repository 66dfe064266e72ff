//! The CLI's one error type: a message and the documented exit code it ends the process with,
//! mapped here once from every error a command meets (the client's, inference's, the home's).

use serde::Serialize;

use kiln_core::client::{ClientError, InferenceError};
use kiln_core::context::ContextError;
use kiln_core::home::HomeError;

/// Exit code: something failed.
pub const FAILURE: u8 = 1;
/// Exit code: bad input or usage.
pub const BAD_INPUT: u8 = 2;
/// Exit code: not found.
pub const NOT_FOUND: u8 = 3;
/// Exit code: corrupt data found.
pub const CORRUPT: u8 = 4;
/// Exit code: refused (e.g. removing a version an alias or a deployment depends on).
pub const REFUSED: u8 = 5;
/// Exit code: the job was cancelled.
pub const CANCELLED: u8 = 6;

/// Error carrying the exit code it should end the process with.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CliError {
    pub code: u8,
    pub message: String,
}

/// What `--json` prints on stdout for an error.
#[derive(Serialize)]
struct ErrorDoc<'a> {
    error: &'a str,
    code: u8,
}

impl CliError {
    /// A failure (exit code 1).
    pub fn failure(message: impl Into<String>) -> Self {
        Self {
            code: FAILURE,
            message: message.into(),
        }
    }

    /// A mistake in what the user asked for (exit code 2).
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self {
            code: BAD_INPUT,
            message: message.into(),
        }
    }

    /// Reports the error: on stderr, and as a JSON document on stdout with `--json`.
    pub fn print(&self, json: bool) {
        if json
            && let Ok(doc) = serde_json::to_string(&ErrorDoc {
                error: &self.message,
                code: self.code,
            })
        {
            println!("{doc}");
        }
        eprintln!("kiln: error: {}", self.message);
    }
}

/// The exit code of an HTTP status from kilnd's control API.
fn control_code(status: u16) -> u8 {
    match status {
        404 => NOT_FOUND,
        409 => REFUSED,
        400 | 401 | 422 => BAD_INPUT,
        _ => FAILURE,
    }
}

impl From<ClientError> for CliError {
    fn from(e: ClientError) -> Self {
        let code = match &e {
            ClientError::NotRunning(_) => NOT_FOUND,
            ClientError::Http { status, .. } => control_code(*status),
            ClientError::Transport(_) | ClientError::Decode(_) | ClientError::Tunnel(_) => FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<InferenceError> for CliError {
    fn from(e: InferenceError) -> Self {
        let code = match &e {
            InferenceError::Http { status: 404, .. } => NOT_FOUND,
            InferenceError::Http {
                status: 400 | 413 | 422,
                ..
            } => BAD_INPUT,
            _ => FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<ContextError> for CliError {
    fn from(e: ContextError) -> Self {
        let code = match &e {
            ContextError::Unknown { .. } | ContextError::Config(_) => BAD_INPUT,
            ContextError::Unreachable { .. } => FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<HomeError> for CliError {
    fn from(e: HomeError) -> Self {
        Self::failure(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_api_answers_map_to_the_documented_exit_codes() {
        let http = |status| {
            CliError::from(ClientError::Http {
                status,
                message: "m".into(),
            })
        };
        let codes: Vec<u8> = [404, 409, 400, 401, 422, 500]
            .into_iter()
            .map(|s| http(s).code)
            .collect();
        assert_eq!(codes, [3, 5, 2, 2, 2, 1]);
        assert_eq!(CliError::from(ClientError::NotRunning("/h".into())).code, 3);
        assert_eq!(CliError::from(ClientError::Transport("reset".into())).code, 1);
        let refused = http(409);
        assert_eq!(
            refused.message, "kilnd answered 409: m",
            "the daemon's message reaches the user"
        );
    }
}
