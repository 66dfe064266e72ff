//! `kiln inspect m@v [--cell TRUE,PRED | --worst N | --disagree m@w]`: the samples behind a
//! version's latest evaluation, through the control API.

use clap::Args;

use super::daemon::connect;
use super::error::CliError;
use super::output::emit;
use super::table;
use kiln_core::api::{InspectQuery, Inspection};
use kiln_core::inspect::SampleOrder;
use kiln_core::names::ModelRef;

/// `kiln inspect` arguments.
#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("which").args(["cell", "worst", "disagree"]).multiple(false))]
pub struct InspectArgs {
    /// `<model>@<version|alias>` whose latest evaluation (`kiln eval`) to look into.
    reference: ModelRef,
    /// The rows of one confusion-matrix cell: `TRUE,PRED` as class indexes or names
    /// (e.g. `6,0` or `shirt,t-shirt/top`).
    #[arg(long)]
    cell: Option<String>,
    /// The N rows of highest loss (cross-entropy; for ratings, the largest errors).
    #[arg(long)]
    worst: Option<usize>,
    /// The rows where another version of the model (`m@w`, evaluated on the same data)
    /// predicts otherwise.
    #[arg(long)]
    disagree: Option<ModelRef>,
    /// Order: most confident first, or highest loss first [default: confidence].
    #[arg(long)]
    sort: Option<SampleOrder>,
    /// At most this many rows [default: 100].
    #[arg(long)]
    limit: Option<usize>,
}

pub fn inspect(args: &InspectArgs, json: bool) -> Result<u8, CliError> {
    let client = connect()?;
    let model = &args.reference.model;
    let view = client.run(|c| c.version(model, &args.reference.selector))?;
    let version = view.version.version;
    let disagree = match &args.disagree {
        Some(other) if &other.model != model => {
            return Err(CliError::bad_input(format!(
                "--disagree compares versions of {model}; {other} is another model"
            )));
        }
        Some(other) => Some(client.run(|c| c.version(model, &other.selector))?.version.version),
        None => None,
    };
    let query = InspectQuery {
        cell: args.cell.clone(),
        worst: args.worst,
        disagree,
        sort: args.sort,
        limit: args.limit,
    };
    let found = client.run(|c| c.inspect(model, version, &query))?;
    emit(json, &found, || render(&found, args))?;
    Ok(0)
}

fn render(found: &Inspection, args: &InspectArgs) -> String {
    let what = match (&args.cell, args.worst, &args.disagree) {
        (Some(cell), _, _) => format!("cell {cell} (true, predicted)"),
        (_, Some(n), _) => format!("the {n} hardest rows"),
        (_, _, Some(other)) => format!("rows where {other} disagrees"),
        _ => "every row".to_owned(),
    };
    let mut out = format!(
        "{}@{} on {} ({} split): {what}: {} rows{}\n",
        found.model,
        found.version,
        found.dataset,
        found.split,
        found.total,
        if found.samples.len() < found.total {
            format!(", showing {}", found.samples.len())
        } else {
            String::new()
        }
    );
    let disagree = found.samples.iter().any(|s| s.other.is_some());
    let rows: Vec<Vec<String>> = found
        .samples
        .iter()
        .map(|s| {
            let top = s
                .top
                .iter()
                .map(|t| format!("{} {:.0}%", t.class, t.probability * 100.0))
                .collect::<Vec<_>>()
                .join(", ");
            let mut row = vec![
                s.index.to_string(),
                s.label.clone(),
                s.prediction.clone(),
                format!("{:.3}", s.confidence),
                format!("{:.3}", s.loss),
                top,
            ];
            if disagree {
                row.push(s.other.as_ref().map_or_else(String::new, |o| {
                    format!("v{}: {} ({:.0}%)", o.version, o.prediction, o.confidence * 100.0)
                }));
            }
            row
        })
        .collect();
    let mut headers = vec!["ROW", "TRUE", "PREDICTED", "CONFIDENCE", "LOSS", "TOP CLASSES"];
    if disagree {
        headers.push("OTHER VERSION");
    }
    out.push_str(table::render(&headers, &rows).trim_end());
    out
}
