// libmoert's folder as this program's rpath, so it starts without LD_LIBRARY_PATH: MOERT_LIB_DIR when set,
// else pkg-config's libdir for moert (what moert-sys links against). A program of your own can copy this.
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-env-changed=MOERT_LIB_DIR");
    println!("cargo:rerun-if-env-changed=PKG_CONFIG_PATH");
    let dir = std::env::var("MOERT_LIB_DIR").ok().filter(|d| !d.is_empty()).or_else(|| {
        let out = Command::new("pkg-config").args(["--variable=libdir", "moert"]).output().ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    });
    if let Some(dir) = dir {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
