// libmoert's folder (found by moert-sys: MOERT_LIB_DIR or pkg-config) as the rpath of this crate's tests
// and examples, so they start without LD_LIBRARY_PATH. A program depending on moert does the same in its
// own build.rs (README, "Install").
fn main() {
    println!("cargo:rerun-if-env-changed=DEP_MOERT_LIBDIR");
    if let Ok(dir) = std::env::var("DEP_MOERT_LIBDIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
