// Finds libmoert for linking, with no crate from outside the standard library:
//  1. MOERT_LIB_DIR, when set: the folder holding libmoert.so (an explicit choice, e.g. a build tree);
//  2. else pkg-config (`pkg-config --libs moert`; PKG_CONFIG_PATH for a private prefix), its -L folders;
//  3. else the linker's default search path.
// The folder found becomes this crate's rpath for its own tests and is published to the build scripts of
// crates depending on moert-sys as DEP_MOERT_LIBDIR (the safe crate moert makes it its tests' and examples'
// rpath; see the README for a program's). Nothing here fails: `cargo doc` works without the library, which
// only the final link needs.
use std::process::Command;

fn pkg_config_lib_dirs() -> Option<Vec<String>> {
    let out = Command::new("pkg-config").args(["--libs", "moert"]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let libs = String::from_utf8(out.stdout).ok()?;
    Some(libs.split_whitespace().filter_map(|f| f.strip_prefix("-L")).map(str::to_owned).collect())
}

fn main() {
    for var in ["MOERT_LIB_DIR", "PKG_CONFIG_PATH", "PKG_CONFIG_LIBDIR"] {
        println!("cargo:rerun-if-env-changed={var}");
    }
    let dirs = match std::env::var("MOERT_LIB_DIR") {
        Ok(dir) if !dir.is_empty() => vec![dir],
        _ => pkg_config_lib_dirs().unwrap_or_else(|| {
            println!("cargo:warning=moert: pkg-config found no moert and MOERT_LIB_DIR is not set; linking -lmoert from the default search path");
            Vec::new()
        }),
    };
    for dir in &dirs {
        println!("cargo:rustc-link-search=native={dir}");
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
    if let Some(dir) = dirs.first() {
        println!("cargo:libdir={dir}");
    }
    println!("cargo:rustc-link-lib=dylib=moert");
}
