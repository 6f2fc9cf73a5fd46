use bitgrok::model::ParamId;
use bitgrok::reference;
use bitgrok::testvectors;

fn stats(name: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{name}");
    let scale = want.iter().fold(0.0f64, |m, x| m.max(x.abs()));
    let mut max_abs = 0.0f64;
    let mut max_rel = 0.0f64;
    let mut n_bad = 0;
    for (g, w) in got.iter().zip(want) {
        let e = (g - w).abs();
        max_abs = max_abs.max(e);
        let rel = e / (w.abs() + 1e-3 * scale);
        max_rel = max_rel.max(rel);
        if rel > 1e-9 { n_bad += 1; }
    }
    println!("  {name:30} n={:6} scale={scale:.3e} max_abs={max_abs:.3e} max_rel={max_rel:.3e} bad={n_bad}", got.len());
}

#[test]
fn explore() {
    for path in testvectors::all_files(&testvectors::shared_dir()).unwrap() {
        let tv = testvectors::load(&path).unwrap();
        println!("{}", tv.name);
        let t = std::time::Instant::now();
        let fwd = reference::forward(&tv.params, &tv.tokens);
        println!("  fwd {:?}", t.elapsed());
        stats("logits", &fwd.logits, &tv.logits);
        stats("attn", &fwd.attn_pattern_last(), &tv.attn_pattern_last);
        stats("mlp_post", &fwd.mlp_post_last(tv.config.d_mlp), &tv.mlp_post_last);
        let t = std::time::Instant::now();
        let (loss, grads) = reference::loss_and_grads(&tv.params, &tv.tokens, &tv.labels);
        println!("  bwd {:?}", t.elapsed());
        stats("loss", &[loss], &[tv.loss]);
        stats("ce", &[reference::cross_entropy(&fwd.logits, &tv.labels, tv.config.p)], &[tv.loss]);
        for (id, g) in grads.iter() { stats(&format!("grad {}", id.name()), g, tv.grads.get(id)); }
        let mut p = tv.params.clone();
        let (mut m, mut v) = (bitgrok::model::Params::zeros(&tv.config), bitgrok::model::Params::zeros(&tv.config));
        reference::adamw_step(&mut p, &grads, &mut m, &mut v, tv.adamw_step, &tv.adamw);
        for (id, x) in p.iter() { stats(&format!("adamw1 {}", id.name()), x, tv.adamw1.get(id)); }
        let _ = ParamId::WE;
    }
}
