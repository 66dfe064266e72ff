//! Links against the libtorch that torch-sys found and embeds an rpath to it, so kilnd and the
//! engine's own tests and benches run without `LD_LIBRARY_PATH`. kilnd's package uses this same
//! script (`build = "../kiln-engine/build.rs"`): link arguments apply only to the package whose
//! build script emits them. The console (`kiln`) links no libtorch at all.
//!
//! For the engine itself it also compiles `csrc/kiln_ops.cpp`, the two libtorch calls tch
//! does not wrap (src/ops/ffi.rs), against the same libtorch headers and C++ ABI as torch-sys.

use std::env;
use std::fs;
use std::path::Path;

fn main() {
    // Relative to the package being built: this one path names the script from both
    // packages that use it (a bare `build.rs` would name a file kilnd does not have, and
    // cargo would rebuild kilnd on every run).
    println!("cargo:rerun-if-changed=../kiln-engine/build.rs");
    // torch-sys (links = "tch") publishes its libtorch lib folder to direct dependents.
    let Ok(lib) = env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=KILN_LIBTORCH_VERSION=unknown");
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // Rust links with --as-needed, which would drop libtorch_cuda (nothing references it by
    // symbol) and leave libtorch blind to GPUs.
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
    let version = libtorch_header_version(Path::new(&lib)).unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=KILN_LIBTORCH_VERSION={version}");
    println!("cargo:rustc-env=KILN_LIBTORCH_LIB={lib}");
    if env::var("CARGO_PKG_NAME").as_deref() == Ok("kiln-engine") {
        compile_ops(Path::new(&lib));
    }
}

/// Builds the engine's C++ shim into a static library linked into the engine.
fn compile_ops(lib: &Path) {
    println!("cargo:rerun-if-changed=csrc/kiln_ops.cpp");
    println!("cargo:rerun-if-env-changed=LIBTORCH_CXX11_ABI");
    let include = lib.parent().unwrap_or(lib).join("include");
    // torch-sys's rule for a LIBTORCH install: the C++11 ABI unless told otherwise.
    let abi = env::var("LIBTORCH_CXX11_ABI").unwrap_or_else(|_| "1".into());
    cc::Build::new()
        .cpp(true)
        .pic(true)
        .warnings(false)
        .include(&include)
        .include(include.join("torch/csrc/api/include"))
        .flag("-std=c++17")
        .flag(format!("-D_GLIBCXX_USE_CXX11_ABI={abi}"))
        .flag("-DGLOG_USE_GLOG_EXPORT")
        .file("csrc/kiln_ops.cpp")
        .compile("kiln_ops");
}

/// `TORCH_VERSION` from the headers the engine is compiled against.
fn libtorch_header_version(lib: &Path) -> Option<String> {
    let header = lib.parent()?.join("include/torch/csrc/api/include/torch/version.h");
    println!("cargo:rerun-if-changed={}", header.display());
    let text = fs::read_to_string(header).ok()?;
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("#define TORCH_VERSION_{name} ")))
            .map(|v| v.trim().to_owned())
    };
    Some(format!("{}.{}.{}", field("MAJOR")?, field("MINOR")?, field("PATCH")?))
}
