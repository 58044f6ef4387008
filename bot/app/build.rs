//! Embeds every bundled sample flow in `flows/` into the binary.
use std::fmt::Write;
use std::path::Path;

fn main() {
    // Read at run time: a build script compiled in another checkout must not read that one's.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR is set by cargo");
    let dir = Path::new(&manifest).join("../../flows");
    println!("cargo:rerun-if-changed={}", dir.display());
    // A binary without its samples would start on an empty library: fail the build instead.
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the bundled flows in {} can't be read: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    assert!(!files.is_empty(), "no sample flows in {}", dir.display());
    files.sort();
    let mut code = String::from(
        "/// (file name, contents) of every bundled sample flow.\npub(crate) const SAMPLES: &[(&str, &str)] = &[\n",
    );
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(
            code,
            "    ({name:?}, include_str!({:?})),",
            path.display().to_string()
        );
    }
    code.push_str("];\n");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR is set by cargo")).join("samples.rs");
    std::fs::write(out, code).expect("write samples.rs");
}
