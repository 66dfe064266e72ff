//! Registry benchmark: 10,000 versions, listed and filtered per keystroke.
//!
//! Prints each figure with its reference measured in the same run:
//! * cold scan vs. just reading every manifest's bytes (the I/O floor);
//! * per-keystroke filter vs. the 20 ms target (DESIGN §7).
//!
//! Run: `scripts/bench registry` (or `cargo bench --bench registry`).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use kiln_core::kinds::Arch;
use kiln_core::names::Name;
use kiln_core::registry::{Architecture, Catalog, ModelRecord, Registry, VersionDraft, now_rfc3339};

const MODELS: usize = 100;
const VERSIONS_PER_MODEL: usize = 100;
const TARGET_PER_KEYSTROKE: Duration = Duration::from_millis(20);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let home = tempfile::tempdir()?;
    let registry = Registry::open(home.path())?;
    let started = Instant::now();
    populate(&registry)?;
    let total = MODELS * VERSIONS_PER_MODEL;
    println!("built {total} versions in {:.1} s", started.elapsed().as_secs_f64());

    let floor = best_of(5, || read_manifest_bytes(&registry));
    let scan = best_of(5, || {
        black_box(registry.scan().map(|l| l.models.len()).unwrap_or(0));
    });
    println!(
        "cold list (scan + parse {total} manifests): {:.2} ms  = {:.2}x the raw read of the same files ({:.2} ms)",
        ms(scan),
        ms(scan) / ms(floor),
        ms(floor)
    );

    let listing = registry.scan()?;
    let catalog_build = best_of(5, || {
        black_box(Catalog::from_listing(&listing).rows().len());
    });
    let catalog = Catalog::from_listing(&listing);
    println!(
        "catalog build: {:.2} ms (once per refresh, not per keystroke)",
        ms(catalog_build)
    );

    let query = "cnn-40 production";
    let mut worst = Duration::ZERO;
    let mut sum = Duration::ZERO;
    for end in 1..=query.len() {
        let t = best_of(3, || {
            black_box(catalog.filter(&query[..end]).len());
        });
        worst = worst.max(t);
        sum += t;
    }
    let mean = sum / query.len() as u32;
    println!(
        "filter per keystroke over {total} versions: mean {:.3} ms, worst {:.3} ms = {:.3}x the {} ms target",
        ms(mean),
        ms(worst),
        ms(worst) / ms(TARGET_PER_KEYSTROKE),
        TARGET_PER_KEYSTROKE.as_millis()
    );
    println!("matches for {query:?}: {}", catalog.filter(query).len());
    Ok(())
}

fn populate(registry: &Registry) -> Result<(), Box<dyn std::error::Error>> {
    let lock = registry.lock()?;
    for m in 0..MODELS {
        let arch = [Arch::Cnn, Arch::Mlp, Arch::Rnn, Arch::Mf][m % 4];
        let name = Name::new(&format!("{arch}-{m}"))?;
        let record = ModelRecord {
            name: name.clone(),
            task: "classification".into(),
            description: String::new(),
            created_at: now_rfc3339(),
            owner: None,
            license: None,
        };
        registry.ensure_model(&lock, record)?;
        for v in 0..VERSIONS_PER_MODEL {
            let digest = registry.blobs().put_bytes(format!("{m}/{v}").as_bytes())?;
            let draft = VersionDraft {
                architecture: Architecture {
                    name: arch,
                    config: serde_json::json!({"classes": 10}),
                },
                dataset: None,
                hyperparameters: BTreeMap::from([
                    ("lr".into(), serde_json::json!(0.001)),
                    ("epochs".into(), serde_json::json!(v)),
                ]),
                seed: Some(v as u64),
                metrics: BTreeMap::from([("accuracy".into(), 0.5 + v as f64 / 1000.0)]),
                parent: None,
                job_id: None,
                blobs: BTreeMap::from([("weights".into(), digest)]),
                device: Some("cpu".into()),
                source: None,
                libtorch_version: Some("2.9.0".into()),
                study: None,
                compression: None,
                license: None,
                checkpoint: None,
            };
            registry.add_version(&lock, &name, draft, &Default::default())?;
        }
        registry.set_alias(&lock, &name, &Name::new("production")?, VERSIONS_PER_MODEL as u32 / 2)?;
    }
    Ok(())
}

fn read_manifest_bytes(registry: &Registry) {
    let models = registry.root().join("models");
    let mut bytes = 0;
    for model in std::fs::read_dir(models).into_iter().flatten().flatten() {
        for v in std::fs::read_dir(model.path().join("versions"))
            .into_iter()
            .flatten()
            .flatten()
        {
            bytes += std::fs::read(v.path()).map(|b| b.len()).unwrap_or(0);
        }
    }
    black_box(bytes);
}

fn best_of(runs: usize, mut f: impl FnMut()) -> Duration {
    (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .min()
        .unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
