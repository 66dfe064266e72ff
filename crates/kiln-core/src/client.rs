//! A small blocking client for the daemon's control API, used by the CLI. It finds the
//! daemon through `$KILN_HOME/daemon/{address,token}`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

/// Why a control-API call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no kilnd answers for {home}; start it with `kiln daemon start`")]
    NotRunning { home: String },
    #[error("kilnd answered {status}: {message}")]
    Http { status: u16, message: String },
    #[error("cannot talk to kilnd at {address}: {reason}")]
    Transport { address: String, reason: String },
}

/// A connection to the daemon of one `KILN_HOME`.
pub struct Client {
    base: String,
    token: String,
    agent: ureq::Agent,
}

impl Client {
    /// Reads the daemon's address and token; does not contact it yet.
    pub fn from_home(home: &Path) -> Result<Self, ClientError> {
        let dir = home.join("daemon");
        let not_running = || ClientError::NotRunning {
            home: home.display().to_string(),
        };
        let address = std::fs::read_to_string(dir.join("address")).map_err(|_| not_running())?;
        let token = std::fs::read_to_string(dir.join("token")).map_err(|_| not_running())?;
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(30)))
            .build()
            .into();
        Ok(Self {
            base: format!("http://{}", address.trim()),
            token: token.trim().to_owned(),
            agent,
        })
    }

    /// `GET path`, returning the JSON body of a 2xx answer.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let request = self
            .agent
            .get(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.finish(request.call())
    }

    /// `POST path` with a JSON body.
    pub fn post(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let request = self
            .agent
            .post(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token))
            .header("Content-Type", "application/json");
        self.finish(request.send(body.to_string()))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let request = self
            .agent
            .delete(format!("{}{path}", self.base))
            .header("Authorization", format!("Bearer {}", self.token));
        self.finish(request.call())
    }

    fn finish(&self, result: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Result<Value, ClientError> {
        let mut response = result.map_err(|e| match e {
            ureq::Error::Io(_) | ureq::Error::ConnectionFailed => ClientError::NotRunning {
                home: self.base.clone(),
            },
            other => ClientError::Transport {
                address: self.base.clone(),
                reason: other.to_string(),
            },
        })?;
        let status = response.status().as_u16();
        let body: Value = response.body_mut().read_json().unwrap_or(Value::Null);
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            let message = body["error"].as_str().unwrap_or("no error message").to_owned();
            Err(ClientError::Http { status, message })
        }
    }
}
