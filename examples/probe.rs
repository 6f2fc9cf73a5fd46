use bitgrok::engine::{device::Gpu, Engine};
use bitgrok::model::{ModelConfig, Params, Preset};
use bitgrok::optim::AdamW;
use bitgrok::task::Split;
use std::time::Instant;
fn main() {
    let gpu = Gpu::new(None).unwrap();
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().unwrap())
        .collect();
    let (p, d, m) = (args[0], args[1], args[2]);
    let mut c = ModelConfig::preset(Preset::Nanda, p);
    c.d_model = d;
    c.d_head = d / 4;
    c.d_mlp = m;
    let split = Split::new(p, 0.7, 598);
    let params = Params::init(&c, 0);
    let mut e = Engine::new(
        &gpu,
        &params,
        &split.train_examples(),
        Some(&split.test_examples()),
        &AdamW::default(),
    )
    .unwrap();
    println!("dispatches {:?}", e.dispatch_counts());
    e.run_epochs(1, 5, |_| true).unwrap();
    for eval in [true, false] {
        let t = Instant::now();
        e.run_epochs(1, 20, |_| eval).unwrap();
        println!(
            "p{p} d{d} m{m} eval={eval}: {:.1} ms/epoch",
            t.elapsed().as_secs_f64() * 50.0
        );
    }
}
