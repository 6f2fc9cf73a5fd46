//! The f16 tile products (tensor-core arithmetic) on plain matrices, through their conformance
//! launcher (the engine's integer products on them are checked in tests/engine.rs): both
//! kernels are valid WGSL for naga with the capabilities they declare; on this adapter the
//! emulated kernel multiplies integer codes
//! exactly (bit-identical to the integer sum, ragged edges included) and split f32 operands as
//! src/f16_split.rs computes them, within f32's tolerances of the exact product. The
//! cooperative-matrix kernel runs too where the adapter reports cooperative matrices.

use bitgrok::engine::device::{adapters, choose, open_device};
use bitgrok::engine::f16_tiles::{TilePath, TileProducts};
use bitgrok::f16_split::split_product;
use rand::{Rng, SeedableRng};

#[test]
fn both_kernels_are_valid_wgsl() {
    use naga::valid::{Capabilities, ValidationFlags, Validator};
    for (path, capabilities) in [
        (TilePath::Emulated, Capabilities::SHADER_FLOAT16),
        (
            TilePath::Cooperative,
            Capabilities::SHADER_FLOAT16 | Capabilities::COOPERATIVE_MATRIX,
        ),
    ] {
        let source = path.source();
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("shaders")
            .join(path.file())
            .with_extension("wgsl");
        assert!(source.starts_with(path.enables()), "{path:?}");
        assert!(
            source.ends_with(&std::fs::read_to_string(file).unwrap()),
            "{path:?}"
        );
        let module = naga::front::wgsl::parse_str(&source)
            .unwrap_or_else(|e| panic!("{path:?}: {}", e.emit_to_string(&source)));
        Validator::new(ValidationFlags::all(), capabilities)
            .validate(&module)
            .unwrap_or_else(|e| panic!("{path:?}: {e:?}"));
    }
}

/// A device with f16 arithmetic (and cooperative matrices where the adapter has them); the test
/// fails without one.
fn device() -> (wgpu::Device, wgpu::Queue) {
    let adapters = adapters();
    let adapter = &adapters[choose(&adapters, None).expect("an adapter")];
    let wanted = TilePath::Emulated.features() | TilePath::Cooperative.features();
    let features = adapter.features() & wanted;
    assert!(
        features.contains(TilePath::Emulated.features()),
        "{} has no f16 arithmetic, which the f16 tile products need",
        adapter.get_info().name
    );
    open_device(adapter, Some(features)).expect("opening the adapter")
}

/// Every path this device can run.
fn paths(device: &wgpu::Device) -> Vec<TileProducts> {
    let mut out = vec![TileProducts::new(device, TilePath::Emulated).unwrap()];
    if device.features().contains(TilePath::Cooperative.features()) {
        out.push(TileProducts::new(device, TilePath::Cooperative).unwrap());
    } else {
        println!("this adapter reports no cooperative matrices: the emulated path alone runs");
    }
    out
}

const SHAPES: [(usize, usize, usize); 4] =
    [(16, 16, 16), (37, 300, 21), (1, 1000, 3), (33, 17, 48)];

#[test]
fn integer_codes_multiply_exactly() {
    let (device, queue) = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for kernels in paths(&device) {
        for (m, k, n) in SHAPES {
            // Int8 activation codes times ternary weight codes.
            let a: Vec<i64> = (0..m * k).map(|_| rng.random_range(-127..=127)).collect();
            let b: Vec<i64> = (0..k * n).map(|_| rng.random_range(-1..=1)).collect();
            let as_f32 = |v: &[i64]| v.iter().map(|&x| x as f32).collect::<Vec<f32>>();
            let c = kernels
                .product(&device, &queue, &as_f32(&a), &as_f32(&b), (m, k, n), false)
                .unwrap();
            for i in 0..m {
                for j in 0..n {
                    let exact: i64 = (0..k).map(|l| a[i * k + l] * b[l * n + j]).sum();
                    assert_eq!(
                        c[i * n + j].to_bits(),
                        (exact as f32).to_bits(),
                        "{:?} {m}×{k}×{n} at ({i}, {j})",
                        kernels.path()
                    );
                }
            }
        }
    }
}

#[test]
fn split_operands_hold_f32_tolerances() {
    let (device, queue) = device();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    for kernels in paths(&device) {
        for (m, k, n) in SHAPES {
            for magnitude in [1.0f32, 3e-6, 4e5] {
                let a: Vec<f32> = (0..m * k)
                    .map(|_| magnitude * rng.random_range(-1.0f32..1.0))
                    .collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
                let c = kernels
                    .product(&device, &queue, &a, &b, (m, k, n), true)
                    .unwrap();
                let mirror = split_product(&a, &b, m, k, n);
                for i in 0..m {
                    for j in 0..n {
                        let terms = (0..k).map(|l| a[i * k + l] as f64 * b[l * n + j] as f64);
                        let exact: f64 = terms.clone().sum();
                        let scale: f64 = terms.map(f64::abs).sum();
                        let (got, at) = (c[i * n + j] as f64, (i, j));
                        // f32 accumulation over k terms, 2^-21 per split operand.
                        let bound = scale * (k as f64 * 2f64.powi(-24) + 2f64.powi(-19));
                        assert!(
                            (got - exact).abs() <= bound,
                            "{:?} {m}×{k}×{n} ×{magnitude} at {at:?}: {got} against {exact}",
                            kernels.path()
                        );
                        // The CPU mirror sums in the same order (fused multiply-adds aside).
                        let mirrored = mirror[i * n + j] as f64;
                        assert!(
                            (got - mirrored).abs() <= scale * k as f64 * 2f64.powi(-23),
                            "{:?} at {at:?}: {got} against the mirror's {mirrored}",
                            kernels.path()
                        );
                    }
                }
            }
        }
    }
}
