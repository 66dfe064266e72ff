//! `ratings-synth`: ratings generated from a planted rank-4 truth plus Gaussian noise, so a
//! matrix-factorisation model's error can be judged against the known noise floor.

use super::{DataShape, Dataset, LoadOptions, Split, SplitMix64, Targets};
use crate::data::{DataError, Inputs};

pub const USERS: usize = 400;
pub const ITEMS: usize = 300;
pub const RANK: usize = 4;
/// Standard deviation of the noise added to every rating: the best achievable RMSE.
pub const NOISE: f64 = 0.2;
/// Share of the user×item matrix that is observed.
const DENSITY: f64 = 0.25;
/// The generator's own seed: the data is the same whatever the training seed.
const DATA_SEED: u64 = 20_261_129;

pub fn load(options: &LoadOptions<'_>) -> Result<Dataset, DataError> {
    let mut rng = SplitMix64(DATA_SEED);
    let scale = 1.0 / (RANK as f64).sqrt().sqrt();
    let mut factors = |n: usize| -> Vec<f64> { (0..n * RANK).map(|_| rng.normal() * scale).collect() };
    let (users, items) = (factors(USERS), factors(ITEMS));
    let mut pairs = Vec::new();
    let mut ratings = Vec::new();
    for u in 0..USERS {
        for i in 0..ITEMS {
            if rng.uniform() >= DENSITY {
                continue;
            }
            let truth: f64 = (0..RANK).map(|k| users[u * RANK + k] * items[i * RANK + k]).sum();
            pairs.extend([u as i64, i as i64]);
            ratings.push((3.0 + truth + NOISE * rng.normal()) as f32);
        }
    }
    let all = Split {
        inputs: Inputs::Ids(pairs),
        row_len: 2,
        targets: Targets::Ratings(ratings),
    };
    let (train, val) = all.shuffle_split(0.1, options.seed);
    let params = format!(
        "ratings-synth users={USERS} items={ITEMS} rank={RANK} noise={NOISE} density={DENSITY} seed={DATA_SEED}"
    );
    Ok(Dataset {
        id: "ratings-synth".into(),
        digest: kiln_core::registry::sha256(params.as_bytes()),
        files: Vec::new(),
        shape: DataShape::Pairs {
            users: USERS,
            items: ITEMS,
        },
        classes: Vec::new(),
        train,
        val,
        test: None,
        vocab: None,
    })
}
