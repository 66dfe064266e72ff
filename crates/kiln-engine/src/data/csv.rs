//! `csv:<file>`: a header line, then either `user,item,rating` rows (for `mf`) or numeric
//! feature columns whose last column is an integer class label (for `mlp`).

use std::path::Path;

use super::{DataError, DataShape, Dataset, Inputs, LoadOptions, Split, Targets};

/// The error for a CSV file that is not there.
pub fn missing(path: &Path) -> DataError {
    DataError::Missing {
        id: format!("csv:{}", path.display()),
        path: path.to_owned(),
        hint: "check the file name (a relative path is read from the directory kiln ran in)".into(),
    }
}

pub fn load(path: &Path, options: &LoadOptions<'_>) -> Result<Dataset, DataError> {
    let malformed = |reason: String| DataError::Malformed {
        path: path.to_owned(),
        what: "CSV data",
        reason,
    };
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => missing(path),
        _ => malformed(e.to_string()),
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| malformed("the file is empty".into()))?
        .split(',')
        .map(|h| h.trim().to_lowercase())
        .collect();
    let mut rows: Vec<Vec<f64>> = Vec::new();
    for (n, line) in lines.enumerate() {
        let row: Result<Vec<f64>, _> = line.split(',').map(|v| v.trim().parse::<f64>()).collect();
        let row = row.map_err(|e| malformed(format!("line {}: {e}", n + 2)))?;
        if row.len() != header.len() {
            return Err(malformed(format!(
                "line {} has {} columns, the header has {}",
                n + 2,
                row.len(),
                header.len()
            )));
        }
        rows.push(row);
    }
    if header.len() < 2 || rows.is_empty() {
        return Err(malformed(
            "need a header with at least two columns and at least one row".into(),
        ));
    }
    let is_ratings = header == ["user", "item", "rating"];
    let (all, shape, classes) = if is_ratings {
        ratings(&rows).map_err(malformed)?
    } else {
        features(&rows).map_err(malformed)?
    };
    let (train, val) = all.shuffle_split(0.1, options.seed);
    let (digest, files) = super::digest_files(&[path.to_owned()]).map_err(|e| malformed(e.to_string()))?;
    Ok(Dataset {
        id: format!("csv:{}", path.display()),
        digest,
        files,
        shape,
        classes,
        train,
        val,
        test: None,
        vocab: None,
    })
}

type Parsed = (Split, DataShape, Vec<String>);

fn ratings(rows: &[Vec<f64>]) -> Result<Parsed, String> {
    let id = |v: f64, what: &str, line: usize| {
        if v >= 0.0 && v.fract() == 0.0 {
            Ok(v as i64)
        } else {
            Err(format!(
                "line {}: {what} id {v} is not a non-negative integer",
                line + 2
            ))
        }
    };
    let mut pairs = Vec::with_capacity(rows.len() * 2);
    for (n, r) in rows.iter().enumerate() {
        pairs.extend([id(r[0], "user", n)?, id(r[1], "item", n)?]);
    }
    let users = pairs.iter().step_by(2).max().map_or(0, |m| *m as usize + 1);
    let items = pairs.iter().skip(1).step_by(2).max().map_or(0, |m| *m as usize + 1);
    let ratings = rows.iter().map(|r| r[2] as f32).collect();
    let split = Split {
        inputs: Inputs::Ids(pairs),
        row_len: 2,
        targets: Targets::Ratings(ratings),
    };
    Ok((split, DataShape::Pairs { users, items }, Vec::new()))
}

fn features(rows: &[Vec<f64>]) -> Result<Parsed, String> {
    let width = rows[0].len() - 1;
    let mut labels = Vec::with_capacity(rows.len());
    for (n, r) in rows.iter().enumerate() {
        let l = r[width];
        if l < 0.0 || l.fract() != 0.0 {
            return Err(format!("line {}: label {l} is not a non-negative integer class", n + 2));
        }
        labels.push(l as i64);
    }
    let classes = labels.iter().max().map_or(0, |m| *m as usize + 1);
    let inputs = rows.iter().flat_map(|r| r[..width].iter().map(|&v| v as f32)).collect();
    let split = Split {
        inputs: Inputs::Floats(inputs),
        row_len: width,
        targets: Targets::Classes(labels),
    };
    Ok((
        split,
        DataShape::Features(width),
        (0..classes).map(|c| c.to_string()).collect(),
    ))
}
