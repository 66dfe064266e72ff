//! `fortunes`: classify a quote by its fortune-cookie category (Debian package `fortunes`).
//!
//! Quotes are split on lines holding `%`, lowercased and split into words. The vocabulary is
//! built from the training split and stored with the version, so evaluation and serving
//! tokenize exactly as training did.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{DataError, DataShape, Dataset, Inputs, LoadOptions, Split, Targets};

pub const DEFAULT_DIR: &str = "/usr/share/games/fortunes";
/// Without an explicit list, categories with at least this many quotes are used.
const MIN_QUOTES: usize = 400;
const MAX_TOKENS: usize = 48;
const MAX_VOCAB: usize = 20_000;
const PAD: i64 = 0;
const UNKNOWN: i64 = 1;

/// Tokenizer settings and vocabulary: token id = index + 2 (0 pads, 1 is unknown).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Vocab {
    pub tokens: Vec<String>,
    pub max_len: usize,
    pub lowercase: bool,
    /// Class names in label order.
    pub classes: Vec<String>,
}

impl Vocab {
    /// Vocabulary size including the two reserved ids.
    pub fn size(&self) -> usize {
        self.tokens.len() + 2
    }

    /// Token ids for `text`, left-padded to `max_len` so the last step is the last word.
    pub fn encode(&self, text: &str, index: &HashMap<&str, i64>) -> Vec<i64> {
        let words = words(text);
        let start = words.len().saturating_sub(self.max_len);
        let ids: Vec<i64> = words[start..]
            .iter()
            .map(|w| index.get(w.as_str()).copied().unwrap_or(UNKNOWN))
            .collect();
        let mut row = vec![PAD; self.max_len - ids.len()];
        row.extend(ids);
        row
    }

    /// Word → id lookup.
    pub fn index(&self) -> HashMap<&str, i64> {
        self.tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_str(), i as i64 + 2))
            .collect()
    }
}

fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric() && c != '\'')
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect()
}

/// The category files under `path` (or the Debian package's folder): the named ones, each
/// present, or (none named) every category with enough quotes.
pub fn categories(path: Option<&Path>, wanted: &[String]) -> Result<Vec<(String, PathBuf)>, DataError> {
    let dir = path.map_or_else(|| PathBuf::from(DEFAULT_DIR), Path::to_path_buf);
    if !dir.is_dir() {
        return Err(DataError::Missing {
            id: "fortunes".into(),
            path: dir,
            hint: "install it with `sudo apt-get install fortunes`, or pass --data-path <folder of fortune files>"
                .into(),
        });
    }
    pick_categories(&dir, wanted)
}

pub fn load(wanted: &[String], options: &LoadOptions<'_>) -> Result<Dataset, DataError> {
    let files = categories(options.path, wanted)?;
    let (quotes, labels) = all_quotes(&files)?;
    let classes: Vec<String> = match options.vocab {
        Some(vocab) => vocab.classes.clone(),
        None => files.iter().map(|(name, _)| name.clone()).collect(),
    };
    let order = super::permutation(quotes.len(), options.seed);
    let val_len = (quotes.len() / 10).max(1);
    let (train_idx, val_idx) = order.split_at(quotes.len() - val_len);
    let vocab = match options.vocab {
        Some(v) => v.clone(),
        None => build_vocab(train_idx.iter().map(|&i| quotes[i].as_str()), classes.clone()),
    };
    let index = vocab.index();
    let split = |rows: &[usize]| Split {
        inputs: Inputs::Ids(rows.iter().flat_map(|&i| vocab.encode(&quotes[i], &index)).collect()),
        row_len: vocab.max_len,
        targets: Targets::Classes(rows.iter().map(|&i| labels[i]).collect()),
    };
    let paths: Vec<PathBuf> = files.iter().map(|(_, p)| p.clone()).collect();
    let (digest, files) = super::digest_files(&paths).map_err(|e| DataError::Malformed {
        path: options
            .path
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), Path::to_path_buf),
        what: "fortune files",
        reason: e.to_string(),
    })?;
    let id = kiln_core::kinds::DataSource::Fortunes {
        categories: wanted.to_vec(),
    }
    .to_string();
    Ok(Dataset {
        id,
        digest,
        files,
        shape: DataShape::Tokens {
            vocab: vocab.size(),
            len: vocab.max_len,
        },
        classes,
        train: split(train_idx),
        val: split(val_idx),
        test: None,
        vocab: Some(vocab),
    })
}

fn all_quotes(files: &[(String, PathBuf)]) -> Result<(Vec<String>, Vec<i64>), DataError> {
    let mut quotes = Vec::new();
    let mut labels = Vec::new();
    for (label, (_, path)) in files.iter().enumerate() {
        for quote in read_quotes(path)? {
            quotes.push(quote);
            labels.push(label as i64);
        }
    }
    Ok((quotes, labels))
}

/// The quote behind row `row` of the validation split [`load`] makes with these options
/// (the text the tokens were made from, words outside the vocabulary included).
pub fn validation_quote(wanted: &[String], options: &LoadOptions<'_>, row: usize) -> Result<String, DataError> {
    let files = categories(options.path, wanted)?;
    let (quotes, _) = all_quotes(&files)?;
    let order = super::permutation(quotes.len(), options.seed);
    let val_len = (quotes.len() / 10).max(1);
    let val = &order[quotes.len() - val_len..];
    val.get(row)
        .map(|&i| quotes[i].clone())
        .ok_or_else(|| DataError::TooSmall {
            id: "fortunes".into(),
            reason: format!("no validation row {row}"),
        })
}

/// The words of `text` as the tokenizer splits them, each marked when `vocab` knows it.
pub fn known_words(vocab: &Vocab, text: &str) -> Vec<(String, bool)> {
    let index = vocab.index();
    words(text)
        .into_iter()
        .map(|w| {
            let known = index.contains_key(w.as_str());
            (w, known)
        })
        .collect()
}

/// (category, file) pairs, sorted by name.
fn pick_categories(dir: &Path, wanted: &[String]) -> Result<Vec<(String, PathBuf)>, DataError> {
    if !wanted.is_empty() {
        let mut out = Vec::new();
        for name in wanted {
            let valid = kiln_core::names::Name::new(name).is_ok();
            let path = dir.join(name);
            if !valid || !path.is_file() {
                let hint = format!("no fortune category '{name}'; `ls {}` lists them", dir.display());
                return Err(DataError::Missing {
                    id: format!("fortunes:{name}"),
                    path,
                    hint,
                });
            }
            out.push((name.clone(), path));
        }
        out.sort();
        return Ok(out);
    }
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if !path.is_file() || name.contains('.') {
            continue;
        }
        if read_quotes(&path).map(|q| q.len()).unwrap_or(0) >= MIN_QUOTES {
            out.push((name, path));
        }
    }
    out.sort();
    if out.len() < 2 {
        let hint = "fewer than two categories found; install `fortunes` or name categories: --data fortunes:a,b".into();
        return Err(DataError::Missing {
            id: "fortunes".into(),
            path: dir.to_owned(),
            hint,
        });
    }
    Ok(out)
}

fn read_quotes(path: &Path) -> Result<Vec<String>, DataError> {
    let bytes = std::fs::read(path).map_err(|e| DataError::Malformed {
        path: path.to_owned(),
        what: "a fortune file",
        reason: e.to_string(),
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let mut quotes = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        if line.trim_end() == "%" {
            if !current.trim().is_empty() {
                quotes.push(std::mem::take(&mut current));
            }
            current.clear();
        } else {
            current.push_str(line);
            current.push('\n');
        }
    }
    if !current.trim().is_empty() {
        quotes.push(current);
    }
    Ok(quotes)
}

fn build_vocab<'a>(texts: impl Iterator<Item = &'a str>, classes: Vec<String>) -> Vocab {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for text in texts {
        for word in words(text) {
            *counts.entry(word).or_default() += 1;
        }
    }
    let mut frequent: Vec<(String, usize)> = counts.into_iter().filter(|(_, c)| *c >= 2).collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    frequent.truncate(MAX_VOCAB);
    Vocab {
        tokens: frequent.into_iter().map(|(w, _)| w).collect(),
        max_len: MAX_TOKENS,
        lowercase: true,
        classes,
    }
}
