//! Which libtorch is loaded and which devices it reports.

#![allow(deprecated)] // burn-tch is deprecated upstream; kiln pins burn 0.22 on purpose.

use std::sync::OnceLock;

use burn::tensor::{Device, Tensor};

/// Version of the libtorch headers the engine was compiled against (from build.rs).
pub const LIBTORCH_VERSION: &str = env!("KILN_LIBTORCH_VERSION");

/// What libtorch reports about this machine.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LibtorchInfo {
    pub version: &'static str,
    /// Path of the `libtorch_cpu.so` this process actually mapped.
    pub loaded_from: Option<String>,
    pub cpu_threads: i32,
    pub cuda_devices: i64,
    pub cudnn: bool,
}

/// Queries libtorch, running one real tensor op on the CPU to prove the library works.
pub fn probe() -> LibtorchInfo {
    let device = Device::libtorch();
    let sum = Tensor::<1>::ones([4], &device).sum().into_scalar::<f32>();
    debug_assert!((sum - 4.0).abs() < f32::EPSILON);
    LibtorchInfo {
        version: LIBTORCH_VERSION,
        loaded_from: loaded_library("libtorch_cpu.so"),
        cpu_threads: intra_op_threads(),
        cuda_devices: tch::Cuda::device_count(),
        cudnn: tch::Cuda::cudnn_is_available(),
    }
}

/// libtorch's intra-op thread count as this process started (`OMP_NUM_THREADS`, else the
/// core count), read once. Serving sets the count per thread, and a thread that has not set
/// its own starts from whatever was set last, so this is read before any serving starts.
pub fn intra_op_threads() -> i32 {
    static THREADS: OnceLock<i32> = OnceLock::new();
    *THREADS.get_or_init(tch::get_num_threads)
}

/// libgomp's busy-wait before an idle OpenMP worker sleeps, as the daemon runs it: long
/// enough to bridge the gaps between the parallel regions of one forward pass (a worker that
/// slept there would cost a futex wake-up per region), short enough that it sleeps between
/// requests. libgomp's default (300000 iterations, a few ms) keeps the lead's worker spinning
/// through every gap at one client, holding a core the HTTP threads and the client need; at
/// 3000 it sleeps about once per request.
const SERVING_SPIN_COUNT: &str = "3000";

/// Marks a `GOMP_SPINCOUNT` that kilnd set (not the operator), so job workers drop it.
pub const SPIN_COUNT_SET_BY_KILND: &str = "KILN_SET_GOMP_SPINCOUNT";

/// Runs this process again with [`SERVING_SPIN_COUNT`], unless `GOMP_SPINCOUNT` is already
/// set (by the operator, or by the first run). libgomp reads it once, as it loads, before
/// `main`, so setting it from inside would do nothing. Returns only when nothing needed doing,
/// or when the re-run failed (the daemon then runs with libgomp's default, and says so).
pub fn rerun_with_serving_spin_count() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os("GOMP_SPINCOUNT").is_some() {
        return;
    }
    let mut args = std::env::args_os();
    let arg0 = args.next().unwrap_or_default();
    let error = match std::env::current_exe() {
        Ok(exe) => std::process::Command::new(exe)
            .arg0(arg0)
            .args(args)
            .env("GOMP_SPINCOUNT", SERVING_SPIN_COUNT)
            .env(SPIN_COUNT_SET_BY_KILND, "1")
            .exec(),
        Err(e) => e,
    };
    eprintln!(
        "kilnd: cannot re-run with GOMP_SPINCOUNT={SERVING_SPIN_COUNT} ({error}); libgomp's default spin applies"
    );
}

/// The first mapped file whose name ends with `name`, read from `/proc/self/maps`.
fn loaded_library(name: &str) -> Option<String> {
    let maps = std::fs::read_to_string("/proc/self/maps").ok()?;
    maps.lines()
        .filter_map(|line| line.split_whitespace().nth(5))
        .find(|path| path.ends_with(name))
        .map(str::to_owned)
}
