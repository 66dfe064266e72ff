//! `kiln contexts`: this box and every `[contexts.NAME]` of the config file, each with live
//! status (reachable, kilnd there, running jobs, GPU utilisation, deployments), read through
//! the same tunnels `--context` uses, opened side by side.

use std::sync::Arc;

use super::error::CliError;
use super::output::emit;
use super::table;
use kiln_core::client::{Blocking, Client};
use kiln_core::context::{self, ContextStatus, Session};
use kiln_core::home::{config_dir, kiln_home};

pub fn run(json: bool) -> Result<u8, CliError> {
    let contexts = context::load(config_dir().as_deref())?;
    let local = Client::new(&kiln_home()?);
    // Each context's ssh runs on a thread of its own: one slow box does not hold the others.
    let opened: Vec<(String, String, Result<Arc<Session>, String>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = contexts
            .iter()
            .map(|(name, config)| {
                let (name, config) = (name.to_string(), config.clone());
                scope.spawn(move || {
                    let ssh = config.ssh.clone();
                    (
                        name.clone(),
                        ssh,
                        Session::open(&name, config).map_err(|e| e.to_string()),
                    )
                })
            })
            .collect();
        handles.into_iter().filter_map(|h| h.join().ok()).collect()
    });
    let blocking = Blocking::with(local.clone())
        .map_err(|e| CliError::failure(format!("cannot start the client's runtime: {e}")))?;
    let mut statuses = vec![blocking.block_on(context::survey(context::LOCAL, None, &local))];
    for (name, ssh, session) in opened {
        statuses.push(match session {
            Ok(session) => blocking.block_on(context::survey(&name, Some(&ssh), &Client::remote(session))),
            Err(problem) => ContextStatus {
                name,
                ssh: Some(ssh),
                problem: Some(problem),
                ..ContextStatus::default()
            },
        });
    }
    emit(json, &statuses, || render(&statuses))?;
    Ok(0)
}

fn render(statuses: &[ContextStatus]) -> String {
    let rows: Vec<Vec<String>> = statuses
        .iter()
        .map(|s| {
            let gpu = match (s.gpus, s.gpu_utilization_pct) {
                (0, _) => "-".to_owned(),
                (n, Some(pct)) => format!("{n} × {pct:.0}%"),
                (n, None) => format!("{n}"),
            };
            vec![
                s.name.clone(),
                s.ssh.clone().unwrap_or_else(|| "(this box)".into()),
                if s.reachable { "yes".into() } else { "no".into() },
                s.running_jobs.to_string(),
                gpu,
                s.deployments.to_string(),
                s.problem.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let headers = ["CONTEXT", "SSH", "REACHABLE", "JOBS", "GPU", "DEPLOYMENTS", "PROBLEM"];
    table::render(&headers, &rows).trim_end().to_owned()
}
