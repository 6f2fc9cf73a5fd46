//! The GPU engine against the CPU reference (every switch combination) and the shared test
//! vectors, on whatever adapter is present (lavapipe in CI). No adapter is a failure.

use bitgrok::check::{self, print_table};
use bitgrok::engine::device::{Gpu, Parallelism};
use bitgrok::testvectors;

fn gpu() -> Gpu {
    Gpu::new(None).unwrap_or_else(|e| panic!("a GPU adapter is required for these tests: {e:#}"))
}

fn check_every_switch_combination(gpu: &Gpu) {
    let mut rows = Vec::new();
    for (i, config) in check::switch_combinations().iter().enumerate() {
        rows.extend(check::check_against_reference(gpu, config, 100 + i as u64).unwrap());
    }
    assert!(
        print_table(&rows),
        "engine disagrees with the CPU reference (table above)"
    );
}

#[test]
fn engine_matches_reference_for_every_switch_combination() {
    check_every_switch_combination(&gpu());
}

/// The same with the other layouts of the work: the GPU one (split-K products, a workgroup per
/// row in row-wise kernels; its split thresholds scaled down to these small problems) and the
/// CPU one (unsplit products, a thread per row), whichever the adapter does not use already.
#[test]
fn other_parallelism_matches_reference() {
    use bitgrok::engine::kernels::Kernel;
    use bitgrok::engine::{Engine, Program};
    use bitgrok::model::Params;
    use bitgrok::optim::AdamW;
    use bitgrok::task::Examples;

    let small_gpu = Parallelism {
        min_splits: 2,
        min_split_chunk: 16,
        ..Parallelism::GPU
    };
    let mut gpu = gpu();
    let default = gpu.parallelism;
    for parallelism in [small_gpu, Parallelism::CPU] {
        if parallelism == default {
            continue;
        }
        gpu.parallelism = parallelism;
        let config = &check::switch_combinations()[0];
        let params = Params::init(config, 1);
        let examples = Examples::all(config.p);
        let engine = Engine::new(&gpu, &params, &examples, None, &AdamW::default()).unwrap();
        let splits = engine
            .dispatches(Program::TrainStep)
            .iter()
            .filter(|d| d.kernel == Kernel::ReduceSplit)
            .count();
        if parallelism == small_gpu {
            assert!(
                splits >= 4,
                "only {splits} split products: the test would not test them"
            );
        } else {
            assert_eq!(splits, 0);
        }
        check_every_switch_combination(&gpu);
    }
}

/// `check::odd_width_configs` (packed reads that straddle words) on both implementations of the
/// product.
#[test]
fn odd_widths_match_reference() {
    let small_gpu = Parallelism {
        min_splits: 2,
        min_split_chunk: 16,
        ..Parallelism::GPU
    };
    let mut gpu = gpu();
    let configs = check::odd_width_configs();
    assert_eq!(configs.len(), 12);
    let mut rows = Vec::new();
    for parallelism in [Parallelism::CPU, small_gpu] {
        gpu.parallelism = parallelism;
        for (i, config) in configs.iter().enumerate() {
            rows.extend(check::check_against_reference(&gpu, config, 300 + i as u64).unwrap());
        }
    }
    assert!(
        print_table(&rows),
        "engine disagrees with the CPU reference at odd widths (table above)"
    );
}

/// `check::quantiser_configs` (`--quantize`, `--weight-scale`, `--weight-centre` with each bit
/// precision, at odd widths) on both implementations of the product.
#[test]
fn weight_quantisers_match_reference() {
    let small_gpu = Parallelism {
        min_splits: 2,
        min_split_chunk: 16,
        ..Parallelism::GPU
    };
    let mut gpu = gpu();
    let configs = check::quantiser_configs();
    assert_eq!(configs.len(), 40);
    let mut rows = Vec::new();
    for parallelism in [Parallelism::CPU, small_gpu] {
        gpu.parallelism = parallelism;
        for (i, config) in configs.iter().enumerate() {
            rows.extend(check::check_against_reference(&gpu, config, 500 + i as u64).unwrap());
        }
    }
    assert!(
        print_table(&rows),
        "engine disagrees with the CPU reference for the weight quantisers (table above)"
    );
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
    assert!(
        print_table(&rows),
        "engine disagrees with the test vectors (table above)"
    );
}

/// Twenty epochs on the GPU follow the reference's trajectory: AdamW's moments and bias
/// correction carry across steps, and the metrics reported per epoch are those of each step.
#[test]
fn training_trajectory_matches_reference() {
    use bitgrok::engine::Engine;
    use bitgrok::model::{ModelConfig, Params, Preset};
    use bitgrok::optim::AdamW;
    use bitgrok::reference;
    use bitgrok::task::Split;

    let gpu = gpu();
    let mut c = ModelConfig::preset(Preset::Nanda, 7);
    (c.d_model, c.n_heads, c.d_head, c.d_mlp) = (16, 2, 8, 32);
    let split = Split::new(7, 0.5, 1);
    let (train, test) = (split.train_examples(), split.test_examples());
    let hp = AdamW {
        lr: 3e-3,
        ..AdamW::default()
    };
    let mut params = Params::init(&c, 5);
    let mut engine = Engine::new(&gpu, &params, &train, Some(&test), &hp).unwrap();
    let metrics = engine.run_epochs(1, 20, |_| true).unwrap().remove(0);

    let labels =
        |ex: &bitgrok::task::Examples| ex.labels.iter().map(|&l| l as usize).collect::<Vec<_>>();
    let (mut m, mut v) = (Params::zeros(&c), Params::zeros(&c));
    for (step, got) in metrics.iter().enumerate() {
        let (loss, grads) = reference::loss_and_grads(&params, &train.tokens(7), &labels(&train));
        reference::adamw_step(&mut params, &grads, &mut m, &mut v, step as u64 + 1, &hp);
        let test_logits = reference::forward(&params, &test.tokens(7)).logits;
        let test_loss = reference::cross_entropy(&test_logits, &labels(&test), 7);
        // Accuracy split by whether the transposed pair was trained on.
        let seen: Vec<bool> = (0..test.len())
            .map(|i| (0..train.len()).any(|j| train.a[j] == test.b[i] && train.b[j] == test.a[i]))
            .collect();
        for (group, got_acc) in [
            (true, got.test_acc_transpose_seen),
            (false, got.test_acc_transpose_unseen),
        ] {
            let idx: Vec<usize> = (0..test.len()).filter(|&i| seen[i] == group).collect();
            assert!(!idx.is_empty());
            let logits: Vec<f64> = idx
                .iter()
                .flat_map(|&i| test_logits[i * 7..i * 7 + 7].to_vec())
                .collect();
            let group_labels: Vec<usize> = idx.iter().map(|&i| test.labels[i] as usize).collect();
            let want = reference::accuracy(&logits, &group_labels, 7);
            assert!(
                (got_acc as f64 - want).abs() < 1e-6,
                "epoch {}: transpose-seen={group} accuracy {got_acc} vs {want}",
                got.epoch
            );
        }
        assert!(
            (got.train_loss as f64 - loss).abs() < 1e-4 * loss,
            "epoch {}: train loss {} vs {loss}",
            got.epoch,
            got.train_loss
        );
        assert!(
            (got.test_loss as f64 - test_loss).abs() < 1e-4 * test_loss,
            "epoch {}: test loss {} vs {test_loss}",
            got.epoch,
            got.test_loss
        );
    }
    let gpu_params = engine.params(0).unwrap();
    for (id, want) in params.iter() {
        let scale = want.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        let err = gpu_params
            .get(id)
            .iter()
            .zip(want)
            .fold(0.0f64, |a, (g, w)| a.max((g - w).abs()));
        assert!(
            err < 1e-4 * scale,
            "{} after 20 steps: max error {err:e} (scale {scale:e})",
            id.name()
        );
    }
}

/// Losses near 1e-7 survive the f32 loss kernel: after training a tiny model to a very low loss,
/// the GPU's train loss matches the f64 cross-entropy of the same parameters, with one thread
/// per example (the CPU layout) and with 64 summing in trees (the GPU layout).
#[test]
fn tiny_losses_are_reported_accurately() {
    let mut gpu = gpu();
    for parallelism in [Parallelism::CPU, Parallelism::GPU] {
        gpu.parallelism = parallelism;
        tiny_loss_matches_reference(&gpu);
    }
}

fn tiny_loss_matches_reference(gpu: &Gpu) {
    use bitgrok::engine::Engine;
    use bitgrok::model::{ModelConfig, Preset};
    use bitgrok::optim::AdamW;
    use bitgrok::reference;
    use bitgrok::task::Split;

    let mut c = ModelConfig::preset(Preset::Nanda, 7);
    (c.d_model, c.n_heads, c.d_head, c.d_mlp) = (16, 2, 8, 32);
    let split = Split::new(7, 0.5, 1);
    let train = split.train_examples();
    let hp = AdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..AdamW::default()
    };
    let mut engine =
        Engine::new(gpu, &bitgrok::model::Params::init(&c, 3), &train, None, &hp).unwrap();
    for chunk in 0..4 {
        engine.run_epochs(1 + chunk * 250, 250, |_| false).unwrap();
    }
    let metrics = engine.evaluate().unwrap()[0];
    // Every pair is right: exactly 1, though a GPU's division may be 2.5 ulp off.
    assert_eq!(metrics.train_acc, 1.0, "train accuracy");
    let got = metrics.train_loss as f64;
    let params = engine.params(0).unwrap();
    let labels: Vec<usize> = train.labels.iter().map(|&l| l as usize).collect();
    let want = reference::cross_entropy(
        &reference::forward(&params, &train.tokens(7)).logits,
        &labels,
        7,
    );
    eprintln!(
        "{} lanes per example: train loss GPU {got:e}, f64 {want:e}",
        gpu.parallelism.row_lanes
    );
    assert!(
        want < 1e-5,
        "the model should reach a tiny loss, got {want:e}"
    );
    assert!(got > 0.0, "a loss of {want:e} collapsed to 0");
    assert!(
        (got - want).abs() < 1e-3 * want,
        "GPU loss {got:e} vs f64 {want:e}"
    );
}

/// The packed codes of every quantised matrix are the reference quantiser's, bit for bit, except
/// where a weight lies within f32 rounding of a decision boundary (the GPU takes the means in
/// f32), and the scales agree to f32 rounding (exactly 1 unscaled). The kernels read quantised
/// weights only in this form: their float copies are never written, so every comparison with
/// the reference goes through the packed codes. Each weight precision is checked with each
/// setting of `--weight-scale` and `--weight-centre`, on scopes that cover every matrix.
#[test]
fn packed_weight_codes_match_reference() {
    use bitgrok::engine::Engine;
    use bitgrok::model::config::QUANT_EPS;
    use bitgrok::model::{ModelConfig, Params, Preset, WeightCentre, WeightScale, Weights};
    use bitgrok::optim::AdamW;
    use bitgrok::reference::quant;
    use bitgrok::task::Examples;

    let gpu = gpu();
    let quantisers = [
        ("attn+mlp", WeightScale::Absmean, WeightCentre::None),
        ("all", WeightScale::None, WeightCentre::None),
        ("embed+mlp", WeightScale::Absmean, WeightCentre::Mean),
        ("attn+unembed", WeightScale::None, WeightCentre::Mean),
    ];
    for weights in [Weights::Binary, Weights::Ternary] {
        for (scope, weight_scale, weight_centre) in quantisers {
            let mut c = ModelConfig::preset(Preset::Nanda, 13);
            (c.d_model, c.n_heads, c.d_head, c.d_mlp) = (40, 2, 20, 72);
            (c.weights, c.weight_scale, c.weight_centre) = (weights, weight_scale, weight_centre);
            c.quantize = scope.parse().unwrap();
            let q = c.weight_quantiser();
            let params = Params::init(&c, 4);
            let engine =
                Engine::new(&gpu, &params, &Examples::all(c.p), None, &AdamW::default()).unwrap();
            let mut packed = 0;
            for (id, w) in params.iter() {
                let case = format!("{weights:?} {scope} {weight_scale:?}/{weight_centre:?} {id:?}");
                let Some(got) = engine.packed_codes(0, id).unwrap() else {
                    assert!(!c.quantises(id), "{case} is not packed");
                    continue;
                };
                // The weights as the GPU holds them.
                let w: Vec<f64> = w.iter().map(|&x| x as f32 as f64).collect();
                let (want, scale) = quant::weight_codes(&w, q);
                // How far each weight is from a decision boundary, relative to the scale.
                let n = w.len() as f64;
                let mean = w.iter().sum::<f64>() / n;
                let x = quant::centre(&w, weight_centre);
                let gamma = (x.iter().map(|v| v.abs()).sum::<f64>() / n).max(QUANT_EPS);
                for (e, (&code, &want)) in got.codes.iter().zip(&want).enumerate() {
                    let margin = match weights {
                        Weights::Binary => (w[e] - mean).abs() / gamma,
                        _ => ((x[e] / gamma).abs() - 0.5).abs(),
                    };
                    assert!(
                        code == want || margin < 1e-5,
                        "{case}[{e}]: code {code}, reference {want}"
                    );
                }
                let got_scale = got.scale as f64;
                match weight_scale {
                    WeightScale::None => assert_eq!(got.scale, 1.0, "{case}: scale"),
                    WeightScale::Absmean => assert!(
                        (got_scale - scale).abs() <= 1e-5 * scale,
                        "{case}: scale {got_scale}, reference {scale}"
                    ),
                }
                packed += 1;
            }
            let wanted = Params::zeros(&c)
                .ids()
                .filter(|&id| c.quantises(id))
                .count();
            assert_eq!(packed, wanted, "{weights:?} {scope}: packed matrices");
        }
    }
}

/// With int8 activations and binary or ternary weights, a `Linear` is an integer product
/// scaled once: the GPU's `W_in` output equals, bit for bit, the reference's exact integer sums
/// of the GPU's own codes times the weight scale and the row's step (both rounded in f32 as the
/// shader does). The int8 codes themselves are the reference quantiser's, except within f32
/// rounding of a half-integer. Widths that are not a multiple of 4 exercise the padding words.
/// A batch without gradients (the test batch, here of the same examples) computes the same.
#[test]
fn int8_linears_are_exact_integer_products() {
    use bitgrok::engine::Engine;
    use bitgrok::model::{LinearNorm, ModelConfig, ParamId, Params, Preset, Weights};
    use bitgrok::optim::AdamW;
    use bitgrok::reference::{self, quant, ActRow, Quantiser, Site};
    use bitgrok::task::Examples;

    /// The reference's quantiser, recording the last position's `W_in` inputs.
    struct Recorder(reference::Exact, Vec<Vec<f64>>);
    impl Quantiser for Recorder {
        fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64> {
            self.0.weight(id, w)
        }
        fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64> {
            if at.site == Site::MlpIn && at.pos == 2 {
                self.1.push(row.to_vec());
            }
            self.0.act(at, row)
        }
    }

    let gpu = gpu();
    for weights in [Weights::Binary, Weights::Ternary] {
        for norm in [LinearNorm::None, LinearNorm::Rms] {
            let mut c = ModelConfig::preset(Preset::SeedBitnet, 13);
            (c.d_model, c.n_heads, c.d_head, c.d_mlp) = (42, 2, 21, 70);
            (c.weights, c.linear_norm) = (weights, norm);
            let (d, m) = (c.d_model, c.d_mlp);
            let params = Params::init(&c, 5);
            let examples = Examples::all(c.p);
            let mut engine =
                Engine::new(&gpu, &params, &examples, Some(&examples), &AdamW::default()).unwrap();
            let metrics = engine.evaluate().unwrap()[0];
            assert_eq!(
                (metrics.train_loss, metrics.train_acc),
                (metrics.test_loss, metrics.test_acc)
            );
            let pre = engine.forward_train_batch(0).unwrap().mlp_pre;
            let input = engine.int8_input(0, Site::MlpIn).unwrap().unwrap();
            let w = engine.packed_codes(0, ParamId::WIn).unwrap().unwrap();
            let sums = quant::integer_product(&input.codes, &w.codes, d, m);
            for (e, (&got, &sum)) in pre.iter().zip(&sums).enumerate() {
                let want = sum as f32 * (w.scale * input.steps[e / m]);
                assert_eq!(
                    got.to_bits(),
                    want.to_bits(),
                    "{weights:?}/{norm:?} W_in output {e}: GPU {got}, integer sum {sum} scaled {want}"
                );
            }

            let mut recorder = Recorder(reference::Exact::new(&c), Vec::new());
            reference::forward_with(&params, &examples.tokens(c.p), &mut recorder);
            let mut mismatches = 0;
            for (r, row) in recorder.1.iter().enumerate() {
                let scale = quant::int8_scale(row);
                let got_step = input.steps[r] as f64;
                assert!(
                    (got_step * scale - 1.0).abs() < 1e-5,
                    "row {r}: step {got_step}"
                );
                for (k, &x) in row.iter().enumerate() {
                    let want = quant::int8_code(x, scale);
                    let got = input.codes[r * d + k] as f64;
                    if got != want {
                        let near_half = ((x * scale).abs().fract() - 0.5).abs() < 1e-3;
                        assert!(
                            near_half && (got - want).abs() == 1.0,
                            "{weights:?}/{norm:?} row {r}[{k}]: code {got}, reference {want}"
                        );
                        mismatches += 1;
                    }
                }
            }
            assert!(
                mismatches * 1000 < recorder.1.len() * d,
                "{mismatches} codes differ"
            );
        }
    }
}

/// Models trained together in one engine (the model axis) get exactly what each gets in an
/// engine of its own, bit for bit (`check::check_stacked`: metrics, parameters, AdamW state and
/// packed codes), for each weight precision (and a centred, fully quantised ternary model), on
/// both layouts of the work.
#[test]
fn stacked_models_train_exactly_as_alone() {
    let small_gpu = Parallelism {
        min_splits: 2,
        min_split_chunk: 16,
        ..Parallelism::GPU
    };
    let configs = check::stacked_configs();
    assert_eq!(configs.len(), 4);
    let mut gpu = gpu();
    for parallelism in [small_gpu, Parallelism::CPU] {
        gpu.parallelism = parallelism;
        let mut rows = Vec::new();
        for config in &configs {
            rows.extend(check::check_stacked(&gpu, config).unwrap());
        }
        assert!(
            print_table(&rows),
            "{parallelism:?}: stacked models differ from models alone (table above)"
        );
    }
}

/// The integer products (int8 activations times binary or ternary weights) on f16 tiles: the
/// tensor cores' arithmetic, emulated in plain WGSL, and on cooperative matrices too where the
/// adapter has them. Every output of a training step is bit-identical to the integer kernels'
/// (and so as close to the reference as they are, which the tests above check), for every
/// configuration with integer products at odd widths (ragged tiles), in every quantiser scope,
/// with and without biases and residuals. A forced path the adapter lacks is an error.
#[test]
fn integer_products_on_f16_tiles_are_bit_identical() {
    use bitgrok::check::{engine_outputs, odd_width_configs, quantiser_configs};
    use bitgrok::engine::device::{FloatProducts, TensorCores};
    use bitgrok::engine::kernels::{Kernel, TileForm};
    use bitgrok::engine::{Engine, Program};
    use bitgrok::model::{Params, QuantGroup};
    use bitgrok::optim::AdamW;
    use bitgrok::task::Examples;

    let open = |tensor_cores| Gpu::open(None, tensor_cores, FloatProducts::F32);
    let off = open(TensorCores::Off).expect("an adapter");
    let mut tiles = vec![open(TensorCores::Emulated)
        .unwrap_or_else(|e| panic!("the emulated f16 tiles need f16 arithmetic: {e:#}"))];
    match open(TensorCores::On) {
        Ok(gpu) => tiles.push(gpu),
        Err(e) => {
            let message = format!("{e:#}");
            assert!(message.starts_with("--tensor-cores on: "), "{message}");
            println!("{message}: the emulated path alone runs");
        }
    }
    let configs: Vec<_> = odd_width_configs()
        .into_iter()
        .chain(quantiser_configs())
        .filter(|c| c.integer_inputs(QuantGroup::Attn) || c.integer_inputs(QuantGroup::Mlp))
        .collect();
    assert_eq!(configs.len(), 16);
    // Every output as f64s (the engine's f32s, exactly), by name.
    let fields = |o: &bitgrok::check::Outputs| {
        let params = |p: &Params| p.iter().flat_map(|(_, v)| v.to_vec()).collect::<Vec<f64>>();
        [
            ("logits", o.logits.clone()),
            ("loss", vec![o.loss]),
            ("MLP activations", o.mlp_post_last.clone()),
            ("gradients", params(&o.grads)),
            ("parameters after a step", params(&o.adamw1)),
        ]
    };
    let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<u64>>();
    let hp = AdamW::default();
    for (i, config) in configs.iter().enumerate() {
        let started = std::time::Instant::now();
        let params = Params::init(config, 700 + i as u64).with_random_biases(700 + i as u64);
        let examples = Examples::all(config.p);
        let want = engine_outputs(&off, &params, &examples, &hp).unwrap();
        for gpu in &tiles {
            let what = format!(
                "{} with {}",
                check::case_name(config),
                gpu.describe_products()
            );
            let engine = Engine::new(gpu, &params, &examples, None, &hp).unwrap();
            let on_tiles = engine
                .dispatches(Program::TrainStep)
                .iter()
                .filter(|d| matches!(d.kernel, Kernel::F16Tiles(_, TileForm::Int8)))
                .count();
            assert!(on_tiles > 0, "{what}: no product ran on the tiles");
            let got = engine_outputs(gpu, &params, &examples, &hp).unwrap();
            for ((name, got), (_, want)) in fields(&got).into_iter().zip(fields(&want)) {
                assert!(bits(&got) == bits(&want), "{what}: {name} differ");
            }
        }
        println!(
            "{}: {:.1} s",
            check::case_name(config),
            started.elapsed().as_secs_f64()
        );
    }
}

/// Products with a float operand on f16 tiles (`--float-products split-f16`), each operand split
/// into two f16 parts, hold every switch combination, odd width and weight quantiser to the f32
/// tolerances of the check, on the emulated path and on tensor cores where the adapter has them.
/// Without a tile path the option is an error.
#[test]
fn float_products_on_split_f16_tiles_match_reference() {
    use bitgrok::engine::device::{FloatProducts, TensorCores};
    use bitgrok::engine::kernels::{Kernel, TileForm};
    use bitgrok::engine::{Engine, Program};
    use bitgrok::model::{Params, QuantGroup};
    use bitgrok::optim::AdamW;
    use bitgrok::task::Examples;

    let split = |tensor_cores| Gpu::open(None, tensor_cores, FloatProducts::SplitF16);
    let mut gpus = vec![split(TensorCores::Emulated)
        .unwrap_or_else(|e| panic!("the emulated f16 tiles need f16 arithmetic: {e:#}"))];
    if let Ok(gpu) = split(TensorCores::On) {
        gpus.push(gpu);
    }
    let message = match split(TensorCores::Off) {
        Ok(_) => panic!("split-f16 products without a tile path"),
        Err(e) => format!("{e:#}"),
    };
    assert!(
        message.starts_with("--float-products split-f16 runs on f16 tiles"),
        "{message}"
    );
    for gpu in &gpus {
        let products = gpu.describe_products();
        assert!(products.contains("float products split"), "{products}");
        let configs = check::switch_combinations()
            .into_iter()
            .chain(check::odd_width_configs())
            .chain(check::quantiser_configs());
        let mut rows = Vec::new();
        for (i, config) in configs.enumerate() {
            // Every form of float operand runs on the tiles somewhere: floats (with packed
            // weights where the model quantises) and, where a Linear keeps its input's int8
            // codes, codes (its weight gradient).
            let params = Params::init(&config, 900 + i as u64);
            let examples = Examples::all(config.p);
            let engine = Engine::new(gpu, &params, &examples, None, &AdamW::default()).unwrap();
            let forms: Vec<TileForm> = engine
                .dispatches(Program::TrainStep)
                .iter()
                .filter_map(|d| match d.kernel {
                    Kernel::F16Tiles(_, form) => Some(form),
                    _ => None,
                })
                .collect();
            let name = check::case_name(&config);
            assert!(forms.contains(&TileForm::Floats), "{name}: {products}");
            if [QuantGroup::Attn, QuantGroup::Mlp]
                .iter()
                .any(|&g| config.integer_inputs(g))
            {
                assert!(forms.contains(&TileForm::Codes), "{name}: {products}");
            }
            rows.extend(check::check_against_reference(gpu, &config, 900 + i as u64).unwrap());
        }
        assert!(
            print_table(&rows),
            "split-f16 products disagree with the reference on {products} (table above)"
        );
    }
}
