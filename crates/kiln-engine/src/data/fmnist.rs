//! Fashion-MNIST from IDX files (Debian package `dataset-fashion-mnist`). The official
//! training file is split into train/validation by seed; `t10k` is the test set.

use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;

use super::{DataError, DataShape, Dataset, Inputs, LoadOptions, Split, Targets};

/// Where the Debian package puts the files.
pub const DEFAULT_DIR: &str = "/usr/share/datasets/fashion-mnist";
const CLASSES: [&str; 10] = [
    "t-shirt/top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle boot",
];
const SIDE: usize = 28;

/// The four IDX files under `path` (or the Debian package's folder), all present.
pub fn files(path: Option<&Path>) -> Result<[PathBuf; 4], DataError> {
    let dir = path.map_or_else(|| PathBuf::from(DEFAULT_DIR), Path::to_path_buf);
    let file = |name: &str| dir.join(format!("{name}.gz"));
    let files = [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ]
    .map(file);
    if let Some(missing) = files.iter().find(|f| !f.is_file()) {
        return Err(DataError::Missing {
            id: "fashion-mnist".into(),
            path: missing.clone(),
            hint: "install it with `sudo apt-get install dataset-fashion-mnist`, or pass --data-path <folder with the IDX .gz files>".into(),
        });
    }
    Ok(files)
}

pub fn load(options: &LoadOptions<'_>) -> Result<Dataset, DataError> {
    let files = files(options.path)?;
    let dir = files[0].parent().map(Path::to_path_buf).unwrap_or_default();
    let full = read_split(&files[0], &files[1])?;
    let test = read_split(&files[2], &files[3])?;
    let (train, val) = full.shuffle_split(1.0 / 12.0, options.seed);
    let malformed = |e: std::io::Error| DataError::Malformed {
        path: dir.clone(),
        what: "Fashion-MNIST",
        reason: e.to_string(),
    };
    let (digest, files) = super::digest_files(&files).map_err(malformed)?;
    Ok(Dataset {
        id: "fashion-mnist".into(),
        digest,
        files,
        shape: DataShape::Image {
            channels: 1,
            height: SIDE,
            width: SIDE,
        },
        classes: CLASSES.iter().map(|c| (*c).to_owned()).collect(),
        train,
        val,
        test: Some(test),
        vocab: None,
    })
}

fn read_split(images: &Path, labels_file: &Path) -> Result<Split, DataError> {
    let pixels = read_idx(images, 0x0803, &[SIDE, SIDE])?;
    let labels = read_idx(labels_file, 0x0801, &[])?;
    if pixels.len() != labels.len() * SIDE * SIDE {
        let reason = format!("{} images but {} labels", pixels.len() / (SIDE * SIDE), labels.len());
        return Err(DataError::Malformed {
            path: images.to_owned(),
            what: "Fashion-MNIST",
            reason,
        });
    }
    if let Some(bad) = labels.iter().find(|&&l| l as usize >= CLASSES.len()) {
        let reason = format!("label {bad} is outside 0..10");
        return Err(DataError::Malformed {
            path: labels_file.to_owned(),
            what: "Fashion-MNIST",
            reason,
        });
    }
    Ok(Split {
        inputs: Inputs::Floats(pixels.iter().map(|&p| f32::from(p) / 255.0).collect()),
        row_len: SIDE * SIDE,
        targets: Targets::Classes(labels.iter().map(|&l| i64::from(l)).collect()),
    })
}

/// Reads a gzip'd IDX file with the given magic and trailing dimensions; returns the payload.
fn read_idx(path: &Path, magic: u32, dims: &[usize]) -> Result<Vec<u8>, DataError> {
    let malformed = |reason: String| DataError::Malformed {
        path: path.to_owned(),
        what: "an IDX file",
        reason,
    };
    let file = std::fs::File::open(path).map_err(|e| malformed(e.to_string()))?;
    let mut bytes = Vec::new();
    GzDecoder::new(file)
        .read_to_end(&mut bytes)
        .map_err(|e| malformed(format!("not gzip data: {e}")))?;
    let header_len = 8 + 4 * dims.len();
    if bytes.len() < header_len {
        return Err(malformed("file is shorter than its header".into()));
    }
    let word = |i: usize| u32::from_be_bytes([bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]]);
    if word(0) != magic {
        return Err(malformed(format!("magic {:#x}, expected {magic:#x}", word(0))));
    }
    let count = word(1) as usize;
    for (i, &d) in dims.iter().enumerate() {
        if word(2 + i) as usize != d {
            return Err(malformed(format!(
                "dimension {} is {}, expected {d}",
                i + 1,
                word(2 + i)
            )));
        }
    }
    let payload = count * dims.iter().product::<usize>();
    if bytes.len() != header_len + payload {
        return Err(malformed(format!(
            "{} payload bytes, header promises {payload}",
            bytes.len() - header_len
        )));
    }
    bytes.drain(..header_len);
    Ok(bytes)
}
