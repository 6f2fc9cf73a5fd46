//! The GPU engine against the CPU reference (every switch combination) and the shared test
//! vectors, on whatever adapter is present (lavapipe in CI). No adapter is a failure.

use bitgrok::check::{self, print_table};
use bitgrok::engine::device::Gpu;
use bitgrok::testvectors;

fn gpu() -> Gpu {
    Gpu::new(None).unwrap_or_else(|e| panic!("a GPU adapter is required for these tests: {e:#}"))
}

#[test]
fn engine_matches_reference_for_every_switch_combination() {
    let gpu = gpu();
    let mut rows = Vec::new();
    for (i, config) in check::switch_combinations().iter().enumerate() {
        rows.extend(check::check_against_reference(&gpu, config, 100 + i as u64).unwrap());
    }
    assert!(print_table(&rows), "engine disagrees with the CPU reference (table above)");
}

#[test]
fn engine_matches_shared_test_vectors() {
    let gpu = gpu();
    let files = testvectors::all_files(&testvectors::shared_dir()).unwrap();
    assert!(!files.is_empty(), "no test vectors found");
    let mut rows = Vec::new();
    for f in &files {
        rows.extend(check::check_against_vector(&gpu, f).unwrap());
    }
    assert!(print_table(&rows), "engine disagrees with the test vectors (table above)");
}
