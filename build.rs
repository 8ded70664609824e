//! Rebuilds the crate when the embedded web UI (`assets/ui`, written by the
//! UI's `vite build`) changes, so `rust-embed` never serves a stale copy.

fn main() {
    println!("cargo:rerun-if-changed=assets/ui");
    // The fixture the `ui` unit tests embed.
    println!("cargo:rerun-if-changed=tests/fixtures/ui-embed");
    println!("cargo:rerun-if-changed=build.rs");
}
