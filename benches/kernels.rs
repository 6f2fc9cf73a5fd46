//! Single-kernel timings with criterion: every dispatch of the train step and of the test
//! evaluation of the ternary `seed-bitnet` model in the study's configuration (p = 113), each
//! replayed alone on the buffers of a real epoch, plus whole epochs of both presets.
//! `cargo bench --bench kernels [-- FILTER]`; BITGROK_BENCH_P sets another modulus.

use criterion::{criterion_group, criterion_main, Criterion};

use bitgrok::bench::seed_engine;
use bitgrok::engine::device::Gpu;
use bitgrok::engine::Program;
use bitgrok::model::{Preset, Weights};

fn modulus() -> usize {
    std::env::var("BITGROK_BENCH_P")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(113)
}

fn kernels(c: &mut Criterion) {
    let gpu = Gpu::new(None).expect("a GPU adapter (lavapipe will do)");
    let mut engine = seed_engine(
        &gpu,
        Preset::SeedBitnet,
        Weights::Ternary,
        modulus(),
        None,
        1,
    )
    .expect("engine");
    for (program, name) in [
        (Program::TrainStep, "train_step"),
        (Program::TestEval, "test_eval"),
    ] {
        let mut group = c.benchmark_group(format!("seed-bitnet ternary p={} {name}", modulus()));
        group.sample_size(10);
        for (index, d) in engine.dispatches(program).into_iter().enumerate() {
            // Criterion keeps a group's throughput for every later function, so the FLOPs of
            // a product go into its name.
            let flops = if d.flops > 0 {
                format!(" ({:.3} GFLOP)", d.flops as f64 / 1e9)
            } else {
                String::new()
            };
            group.bench_function(format!("{index:02} {}{flops}", d.name), |b| {
                b.iter(|| engine.replay_dispatch(program, index, 1).expect("replay"))
            });
        }
        group.finish();
    }
}

fn epochs(c: &mut Criterion) {
    let gpu = Gpu::new(None).expect("a GPU adapter (lavapipe will do)");
    let mut group = c.benchmark_group(format!("epoch p={}", modulus()));
    group.sample_size(10);
    for preset in [Preset::Nanda, Preset::SeedBitnet] {
        for weights in [Weights::F32, Weights::Ternary] {
            let mut engine =
                seed_engine(&gpu, preset, weights, modulus(), None, 1).expect("engine");
            let name = format!("{preset:?} {weights:?} train step + test eval");
            group.bench_function(name, |b| {
                b.iter(|| engine.run_epochs(2, 1, |_| true).expect("epoch"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, kernels, epochs);
criterion_main!(benches);
