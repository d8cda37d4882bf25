//! Gives the shared library its SONAME, `libvalve.so.<major>`, so that programs linked against
//! one release keep loading a compatible upgrade installed by `make install`
//! (`libvalve.so.<version>`, with the links `libvalve.so.<major>` and `libvalve.so`). The flag
//! reaches only the cdylib: the rlib and the staticlib have no SONAME.

fn main() {
    // ELF platforms only: Apple's linker names a dylib with -install_name, Windows has no SONAME.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let elf = std::env::var("CARGO_CFG_TARGET_FAMILY")
        .is_ok_and(|families| families.split(',').any(|family| family == "unix"))
        && !matches!(os.as_str(), "macos" | "ios" | "tvos" | "watchos" | "visionos");
    if elf {
        let major =
            std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets the package version");
        println!("cargo:rustc-cdylib-link-arg=-Wl,-soname,libvalve.so.{major}");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
