use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Result;
use clap::Parser;

use bitgrok::check;
use bitgrok::cli::{Cli, Command};
use bitgrok::engine::device::{self, Gpu};
use bitgrok::error::is_usage_error;
use bitgrok::run::RunDir;
use bitgrok::sweep::{self, Shard};
use bitgrok::{bench, eval, interop, report, reproduce, train};

/// Exit code of invalid input (as clap uses).
const USAGE_ERROR: u8 = 2;
/// Exit code of a run stopped by SIGINT or SIGTERM (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    quiet_device_selection_layer();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) if is_usage_error(&e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(USAGE_ERROR)
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Mesa's implicit Vulkan layer `VK_LAYER_MESA_device_select` probes the window system (Wayland,
/// X11) to pick a default GPU, which prints `error: XDG_RUNTIME_DIR is invalid or not set` on
/// headless machines although nothing is wrong. bitgrok chooses its adapter itself (`--adapter`),
/// so the layer is switched off through its documented variable unless the user set it.
/// (Here, before any thread exists, the environment can be changed safely.)
fn quiet_device_selection_layer() {
    if std::env::var_os("NODEVICE_SELECT").is_none() {
        std::env::set_var("NODEVICE_SELECT", "1");
    }
}

/// What `bitgrok train` was asked to do, and the run directory (one value per process, so the
/// variants' sizes do not matter).
#[allow(clippy::large_enum_variant)]
enum TrainJob<'a> {
    New(bitgrok::run::RunConfig, &'a std::path::PathBuf),
    Resume(train::PendingRun, &'a std::path::PathBuf),
}

/// A flag SIGINT and SIGTERM set, so that training checkpoints and stops at the next submission;
/// a second signal exits at once.
fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM] {
        // Registered first, so it sees the flag as it was before this signal.
        signal_hook::flag::register_conditional_shutdown(signal, INTERRUPTED.into(), stop.clone())?;
        signal_hook::flag::register(signal, stop.clone())?;
    }
    Ok(stop)
}

/// How `sweep` and `study` train their grids.
fn sweep_options(
    force: bool,
    together: Option<u64>,
    stop: &AtomicBool,
    compact: bool,
) -> sweep::run::SweepOptions<'_> {
    sweep::run::SweepOptions {
        force,
        together: together.map(|k| k as usize),
        stop: Some(stop),
        compact,
    }
}

fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Devices { adapter } => {
            let adapters = device::adapters();
            if adapters.is_empty() {
                anyhow::bail!(device::NO_ADAPTER_HELP);
            }
            let chosen = device::choose(&adapters, adapter.as_deref()).ok();
            for (i, a) in adapters.iter().enumerate() {
                let mark = if Some(i) == chosen { "*" } else { " " };
                println!("{mark} {}", device::describe(&a.get_info()));
                println!("    {}", device::capabilities(a));
            }
            println!("(* = used; pick another with --adapter NAME or WGPU_ADAPTER_NAME, backends with WGPU_BACKEND)");
        }
        Command::Train(args) => {
            // Validated before the adapter is opened.
            let job = match &args.resume {
                Some(dir) => {
                    TrainJob::Resume(train::PendingRun::reopen(dir, args.model.epochs)?, dir)
                }
                None => {
                    let out = args
                        .out
                        .as_ref()
                        .expect("clap requires --out without --resume");
                    let config = args.run_config()?;
                    RunDir::check_new(out, args.force)?;
                    TrainJob::New(config, out)
                }
            };
            let gpu = args.device.open()?;
            eprintln!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            let stop = stop_on_signals()?;
            let control = train::Control {
                progress: true,
                stop: Some(&stop),
            };
            let (s, out) = match job {
                TrainJob::Resume(r, dir) => (train::resume(&gpu, r, control)?, dir),
                TrainJob::New(config, out) => {
                    (train::train(&gpu, &config, out, args.force, control)?, out)
                }
            };
            let m = s.final_metrics;
            println!(
                "epoch {}: train loss {:.3e} acc {:.4}, test loss {:.3e} acc {:.4}; memorised at {}, grokked at {}; {:.1} epochs/s",
                s.epochs,
                m.train_loss,
                m.train_acc,
                m.test_loss,
                m.test_acc,
                s.memorised_at.map_or("-".into(), |e| e.to_string()),
                s.grokked_at.map_or("-".into(), |e| e.to_string()),
                s.epochs_per_second
            );
            if s.interrupted {
                eprintln!(
                    "interrupted: checkpoint of epoch {} written; continue with `bitgrok train --resume {}`",
                    s.epochs,
                    out.display()
                );
                return Ok(ExitCode::from(INTERRUPTED));
            }
            println!("run written to {}", out.display());
        }
        Command::Check { vectors, device } => {
            let gpu = device.open()?;
            println!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            if !check::run(&gpu, &vectors)? {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Analyze {
            run,
            epoch,
            adapter,
        } => {
            let gpu = Gpu::new(adapter.as_deref())?;
            let an = report::analyze(&gpu, &run, epoch, true)?;
            let s = &an.summary;
            println!(
                "epoch {}: key frequencies {:?}, {:.0}% of neurons clustered pre-ReLU ({:.0}% post-ReLU), {}; {:.1} s",
                s.epoch,
                s.key_frequencies,
                100.0 * s.neuron_level.at(&s.neuron_level.clustered_pre, 0.85),
                100.0 * s.neurons.clustered_fraction,
                s.clock_pizza.kind,
                s.seconds
            );
            println!("report: {}", an.out_dir.join("report.md").display());
        }
        Command::Compare { runs, out, adapter } => {
            let gpu = Gpu::new(adapter.as_deref())?;
            let path = report::compare::compare(&gpu, &runs, &out)?;
            println!("report: {}", path.display());
        }
        Command::Reproduce {
            out,
            full,
            force,
            adapter,
        } => {
            let gpu = Gpu::new(adapter.as_deref())?;
            reproduce::reproduce(&gpu, &out, full, force)?;
        }
        Command::Sweep(args) => {
            // Every model's configuration is validated before the adapter is opened.
            let spec = args.grid.spec()?;
            let shard = args.shard.unwrap_or(Shard::WHOLE);
            // Held until the sweep ends: one process writes a sweep directory at a time.
            let _lock = sweep::run::prepare_out_dir(&args.out, &spec, shard, args.force)?;
            let gpu = args.device.open()?;
            eprintln!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            let stop = stop_on_signals()?;
            let options = sweep_options(args.force, args.together, &stop, args.compact);
            let outcome = sweep::run::sweep(&gpu, &spec, shard, &args.out, options)?;
            let csv = args.out.join(sweep::file::CSV_NAME);
            if outcome.interrupted {
                eprintln!(
                    "interrupted after {} models (listed in {}); {}",
                    outcome.file.rows.len(),
                    csv.display(),
                    sweep::run::continue_hint(args.force)
                );
                return Ok(ExitCode::from(INTERRUPTED));
            }
            println!(
                "{} models in {}; next: `bitgrok sweep-report {}`",
                outcome.file.rows.len(),
                csv.display(),
                args.out.display()
            );
        }
        Command::Study(args) => {
            // Every arm's models are validated before the adapter is opened.
            let plan = args.plan()?;
            bitgrok::study::prepare_out_dir_for(&plan, &args.out, args.force)?;
            let gpu = args.device.open()?;
            eprintln!("adapter: {} ({})", gpu.describe(), gpu.describe_products());
            let stop = stop_on_signals()?;
            let options = sweep_options(args.force, args.together, &stop, !args.keep_checkpoints);
            let interrupted = bitgrok::study::run(&gpu, &plan, &args.out, &args.arms, options)?;
            if interrupted {
                eprintln!("interrupted; {}", sweep::run::continue_hint(args.force));
                return Ok(ExitCode::from(INTERRUPTED));
            }
            let report = bitgrok::study::report::write(&args.out)?;
            println!("report: {}", report.display());
        }
        Command::StudyReport { dir } => {
            println!("report: {}", bitgrok::study::report::write(&dir)?.display());
        }
        Command::SweepMerge { shards, out } => {
            let merged = sweep::merge::merge(&shards, &out)?;
            println!(
                "{} models from {} shards in {}",
                merged.rows.len(),
                shards.len(),
                out.join(sweep::file::CSV_NAME).display()
            );
        }
        Command::SweepReport { dir } => {
            println!("report: {}", sweep::report::sweep_report(&dir)?.display());
        }
        Command::Bench {
            weights,
            models,
            p,
            d_model,
            epochs,
            json,
            kernels,
            split_target,
            device,
        } => {
            // Validated before the adapter is opened.
            let request = bench::Request::new(weights, models, p, d_model, epochs, json, kernels)?;
            let mut gpu = device.open()?;
            if let Some(target) = split_target {
                gpu.parallelism.split_target = target;
            }
            bench::run(&gpu, &request)?;
        }
        Command::Export { run, epoch, out } => {
            let e = interop::export::export(&run, epoch, &out)?;
            println!(
                "epoch {} of {} written to {} and {}",
                e.epoch,
                run.display(),
                e.weights.display(),
                e.config.display()
            );
            if !e.note.exact_in_transformer_lens {
                println!("TransformerLens cannot express (see the config's \"bitgrok\" entry):");
                for what in &e.note.not_expressible {
                    println!("  - {what}");
                }
            }
        }
        Command::Import {
            model,
            config,
            out,
            force,
        } => {
            let extra = match &config {
                Some(path) => interop::import::read_import_config(path)?,
                None => Default::default(),
            };
            let i = interop::import::import(&model, &extra, &out, force)?;
            let c = &i.config;
            println!(
                "{:?} layout: p = {}, d_model {}, {} heads × {}, d_mlp {}{}{}; run written to {} (epoch {})",
                i.layout,
                c.p,
                c.d_model,
                c.n_heads,
                c.d_head,
                c.d_mlp,
                if c.biases { ", biases" } else { "" },
                if c.eq_output { ", an output for =" } else { "" },
                i.run.display(),
                i.epoch
            );
        }
        Command::Eval {
            run,
            epoch,
            adapter,
        } => {
            let checkpoint = eval::Checkpoint::load(&run, epoch)?;
            let gpu = Gpu::new(adapter.as_deref())?;
            let m = checkpoint.evaluate(&gpu)?;
            println!(
                "epoch {}: train loss {:e} acc {:.4}, test loss {:e} acc {:.4}",
                checkpoint.epoch, m.train_loss, m.train_acc, m.test_loss, m.test_acc
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
