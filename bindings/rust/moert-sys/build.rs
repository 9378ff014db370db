// Links libmoert. MOERT_LIB_DIR names the folder holding libmoert.so (CMake sets it to its build folder);
// without it the system's library path is searched.
fn main() {
    println!("cargo:rerun-if-env-changed=MOERT_LIB_DIR");
    if let Ok(dir) = std::env::var("MOERT_LIB_DIR") {
        println!("cargo:rustc-link-search=native={}", dir);
    }
    println!("cargo:rustc-link-lib=dylib=moert");
}
