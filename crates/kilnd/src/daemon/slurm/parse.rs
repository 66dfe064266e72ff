//! Slurm's answers, read tolerantly. `squeue --json` changes shape between releases (22.05's
//! openapi v0.0.38 has `job_state: "PENDING"` and `exit_code` as a raw wait status; 23.x and
//! 24.x have `job_state: ["PENDING"]` and `exit_code: {status, return_code, signal}` with
//! `{set, number}` wrappers), so each field is looked up in every form it has had and a job
//! missing one is still read. `scontrol show job -o` and `sacct -P` are the fallbacks for a
//! job that has left the queue.

use serde_json::Value;

/// What Slurm says about one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub job_id: u64,
    pub name: Option<String>,
    /// The base state (`PENDING`, `RUNNING`, `FAILED`, …); `COMPLETING` while a finished
    /// job's processes are still being cleaned up.
    pub state: String,
    /// Why it waits or ended; `None` when Slurm says `None`.
    pub reason: Option<String>,
    /// `exit:signal`, as `scontrol` prints it.
    pub exit_code: Option<String>,
}

/// Every job of a `squeue --json` answer that has an id and a state.
pub fn squeue(json: &str) -> Result<Vec<Observed>, String> {
    let doc: Value = serde_json::from_str(json).map_err(|e| format!("squeue --json printed no JSON: {e}"))?;
    let jobs = doc
        .get("jobs")
        .and_then(Value::as_array)
        .ok_or("squeue --json printed no `jobs` list")?;
    Ok(jobs.iter().filter_map(job).collect())
}

fn job(value: &Value) -> Option<Observed> {
    let job_id = number(value.get("job_id")?)?;
    // 24.x also nests the state as `state: {current, reason}` in some answers.
    let nested = value.get("state");
    let state = value
        .get("job_state")
        .or_else(|| nested?.get("current"))
        .and_then(state_word)?;
    let reason = value
        .get("state_reason")
        .or_else(|| nested?.get("reason"))
        .and_then(Value::as_str)
        .and_then(reason_word);
    Some(Observed {
        job_id,
        name: value.get("name").and_then(Value::as_str).map(str::to_owned),
        state,
        reason,
        exit_code: value.get("exit_code").and_then(exit_code),
    })
}

/// A number, bare or in the `{set, infinite, number}` wrapper of openapi v0.0.39 and later
/// (unset or infinite: none).
fn number(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.trim().parse().ok(),
        Value::Object(o) => {
            let unset = o.get("set").and_then(Value::as_bool) == Some(false);
            let infinite = o.get("infinite").and_then(Value::as_bool) == Some(true);
            if unset || infinite {
                return None;
            }
            o.get("number").and_then(number)
        }
        _ => None,
    }
}

/// The state from a string (`"RUNNING"`) or a list of a base state and flags
/// (`["COMPLETED", "COMPLETING"]`): the base state, unless the job is still completing.
fn state_word(value: &Value) -> Option<String> {
    let words: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => return None,
    };
    let words: Vec<&str> = words.into_iter().map(str::trim).filter(|w| !w.is_empty()).collect();
    if words.contains(&"COMPLETING") {
        return Some("COMPLETING".into());
    }
    // scontrol and sacct add words: `CANCELLED by 0`.
    words
        .first()
        .and_then(|w| w.split_whitespace().next())
        .map(str::to_owned)
}

fn reason_word(reason: &str) -> Option<String> {
    let reason = reason.trim();
    (!reason.is_empty() && reason != "None" && reason != "(null)").then(|| reason.to_owned())
}

/// `exit:signal` from a raw wait status (22.05: `768` is exit 3, `15` is signal 15) or an
/// object with `return_code` and `signal` (23.x and later).
fn exit_code(value: &Value) -> Option<String> {
    if let Value::Object(o) = value {
        let code = o.get("return_code").and_then(number);
        let signal = o.get("signal").and_then(|s| {
            ["id", "signal_id"]
                .iter()
                .find_map(|key| s.get(key).and_then(number))
                .or_else(|| number(s))
        });
        return match (code, signal) {
            (None, None) => None,
            (code, signal) => Some(format!("{}:{}", code.unwrap_or(0), signal.unwrap_or(0))),
        };
    }
    let status = number(value)?;
    Some(format!("{}:{}", (status >> 8) & 0xff, status & 0x7f))
}

/// The job of `scontrol show job ID -o` (one line of `Key=Value` words).
pub fn scontrol(text: &str) -> Option<Observed> {
    let field = |key: &str| {
        text.split_whitespace()
            .find_map(|word| word.strip_prefix(key)?.strip_prefix('='))
    };
    Some(Observed {
        job_id: field("JobId")?.parse().ok()?,
        name: field("JobName").map(str::to_owned),
        state: state_word(&Value::String(field("JobState")?.to_owned()))?,
        reason: field("Reason").and_then(reason_word),
        exit_code: field("ExitCode").map(str::to_owned),
    })
}

/// Job `job_id`'s line of `sacct -j ID -X -n -P -o JobID,State,ExitCode`
/// (`12|CANCELLED by 0|0:15`).
pub fn sacct(text: &str, job_id: u64) -> Option<Observed> {
    text.lines().find_map(|line| {
        let mut fields = line.split('|');
        let id = fields.next()?.trim();
        if id != job_id.to_string() {
            return None;
        }
        let state = state_word(&Value::String(fields.next()?.to_owned()))?;
        Some(Observed {
            job_id,
            name: None,
            state,
            reason: None,
            exit_code: fields
                .next()
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Trimmed from Slurm 22.05.8's `squeue --json` (openapi v0.0.38) on a one-node cluster.
    const SQUEUE_22_05: &str = r#"{
      "meta": {"plugin": {"type": "openapi/v0.0.38", "name": "Slurm OpenAPI v0.0.38"},
               "Slurm": {"version": {"major": 22, "micro": 8, "minor": 5}, "release": "22.05.8"}},
      "errors": [],
      "jobs": [
        {"account": "", "job_id": 1, "name": "kiln-j1-aaaa", "job_state": "COMPLETED",
         "state_reason": "None", "exit_code": 0, "derived_exit_code": 0},
        {"job_id": 2, "name": "wrap", "job_state": "FAILED", "state_reason": "NonZeroExitCode",
         "exit_code": 768},
        {"job_id": 3, "name": "wrap", "job_state": "CANCELLED", "state_reason": "None",
         "exit_code": 15},
        {"job_id": 4, "name": "kiln-j2-bbbb", "job_state": "PENDING", "state_reason": "Resources",
         "exit_code": 0},
        {"job_id": 5, "name": "kiln-j3-cccc", "job_state": "COMPLETING", "state_reason": "None",
         "exit_code": 256}
      ]
    }"#;

    /// The shape of Slurm 24.05's `squeue --json` (data_parser v0.0.41): state lists, `{set,
    /// infinite, number}` numbers and an exit-code object.
    const SQUEUE_24_05: &str = r#"{
      "jobs": [
        {"job_id": 812, "name": "kiln-j1-aaaa", "job_state": ["PENDING"], "state_reason": "Priority",
         "exit_code": {"status": ["PENDING"], "return_code": {"set": false, "infinite": false, "number": 0},
                       "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}}},
        {"job_id": 813, "name": "kiln-j2-bbbb", "job_state": ["FAILED"], "state_reason": "NonZeroExitCode",
         "exit_code": {"status": ["EXITED"], "return_code": {"set": true, "infinite": false, "number": 1},
                       "signal": {"id": {"set": false, "infinite": false, "number": 0}, "name": ""}}},
        {"job_id": 814, "name": "kiln-j3-cccc", "job_state": ["CANCELLED"], "state_reason": "None",
         "exit_code": {"status": ["SIGNALED"], "return_code": {"set": true, "infinite": false, "number": 0},
                       "signal": {"id": {"set": true, "infinite": false, "number": 15}, "name": "TERM"}}},
        {"job_id": 815, "job_state": ["COMPLETED", "COMPLETING"], "state_reason": "None",
         "exit_code": {"status": "EXITED", "return_code": 0}},
        {"job_id": {"set": true, "infinite": false, "number": 816}, "state": {"current": ["RUNNING"], "reason": "None"}},
        {"name": "no id: skipped", "job_state": ["RUNNING"]},
        {"job_id": 817, "name": "no state: skipped"}
      ],
      "warnings": [], "errors": []
    }"#;

    fn seen(
        job_id: u64,
        state: &str,
        reason: Option<&str>,
        exit_code: Option<&str>,
    ) -> (u64, String, Option<String>, Option<String>) {
        (job_id, state.into(), reason.map(Into::into), exit_code.map(Into::into))
    }

    fn fields(jobs: &[Observed]) -> Vec<(u64, String, Option<String>, Option<String>)> {
        jobs.iter()
            .map(|j| (j.job_id, j.state.clone(), j.reason.clone(), j.exit_code.clone()))
            .collect()
    }

    #[test]
    fn squeue_22_05_states_are_strings_and_exit_codes_wait_statuses() {
        let jobs = squeue(SQUEUE_22_05).expect("parsed");
        assert_eq!(
            fields(&jobs),
            [
                seen(1, "COMPLETED", None, Some("0:0")),
                seen(2, "FAILED", Some("NonZeroExitCode"), Some("3:0")),
                seen(3, "CANCELLED", None, Some("0:15")),
                seen(4, "PENDING", Some("Resources"), Some("0:0")),
                seen(5, "COMPLETING", None, Some("1:0")),
            ]
        );
        assert_eq!(jobs[0].name.as_deref(), Some("kiln-j1-aaaa"));
    }

    #[test]
    fn squeue_24_05_states_are_lists_and_exit_codes_objects() {
        let jobs = squeue(SQUEUE_24_05).expect("parsed");
        assert_eq!(
            fields(&jobs),
            [
                seen(812, "PENDING", Some("Priority"), None),
                seen(813, "FAILED", Some("NonZeroExitCode"), Some("1:0")),
                seen(814, "CANCELLED", None, Some("0:15")),
                seen(815, "COMPLETING", None, Some("0:0")),
                seen(816, "RUNNING", None, None),
            ]
        );
    }

    #[test]
    fn an_answer_that_is_not_a_job_list_is_an_error() {
        assert!(squeue("slurm_load_jobs error: Unable to contact slurm controller").is_err());
        assert!(
            squeue(r#"{"errors": [{"error": "down"}]}"#)
                .expect_err("no jobs")
                .contains("jobs")
        );
    }

    #[test]
    fn scontrol_one_line_is_read_by_key() {
        let line = "JobId=12 JobName=kiln-j1-aaaa UserId=root(0) GroupId=root(0) Priority=1 \
                    JobState=PENDING Reason=Resources Dependency=(null) ExitCode=0:0 RunTime=00:00:00";
        let job = scontrol(line).expect("parsed");
        assert_eq!(
            (
                job.job_id,
                job.name.as_deref(),
                job.state.as_str(),
                job.reason.as_deref(),
                job.exit_code.as_deref()
            ),
            (12, Some("kiln-j1-aaaa"), "PENDING", Some("Resources"), Some("0:0"))
        );
        let failed = scontrol("JobId=13 JobState=FAILED Reason=NonZeroExitCode ExitCode=1:0").expect("parsed");
        assert_eq!(
            (failed.state.as_str(), failed.exit_code.as_deref()),
            ("FAILED", Some("1:0"))
        );
        assert_eq!(scontrol("slurm_load_jobs error: Invalid job id specified"), None);
    }

    #[test]
    fn sacct_picks_the_jobs_own_line() {
        let text = "12.batch|CANCELLED|0:15\n12|CANCELLED by 0|0:15\n";
        let job = sacct(text, 12).expect("parsed");
        assert_eq!(
            (job.state.as_str(), job.exit_code.as_deref()),
            ("CANCELLED", Some("0:15"))
        );
        assert_eq!(
            sacct("13|FAILED|1:0\n", 13).map(|j| j.exit_code),
            Some(Some("1:0".into()))
        );
        assert_eq!(sacct("", 12), None);
        assert_eq!(sacct("Slurm accounting storage is disabled", 12), None);
    }
}
