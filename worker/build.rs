//! Bakes the location of libtorch into the worker's binaries (an rpath), so that
//! `allsweep-worker` runs without `LD_LIBRARY_PATH`. torch-sys finds libtorch (from the
//! project's virtual environment, `LIBTORCH_USE_PYTORCH=1`) and passes its folder on as
//! `DEP_TCH_LIBTORCH_LIB`.
//!
//! With a CUDA build of libtorch (PyPI's default wheel) it also keeps `libtorch_cuda`
//! linked: no symbol of it is named, so the linker would drop it and the binary would not
//! see the GPU where one exists.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=DEP_TCH_LIBTORCH_LIB");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else { return };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}
