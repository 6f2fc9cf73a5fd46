use bitgrok::reference::{self, ActRow, Exact, Quantiser, quant};
use bitgrok::testvectors;
use bitgrok::model::ParamId;
use std::collections::BTreeSet;
struct TieFinder { exact: Exact, margin: f64, rows: Vec<(ActRow, f64)> }
impl Quantiser for TieFinder {
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64> { self.exact.weight(id, w) }
    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64> {
        let absmax = row.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let s = 127.0 / absmax.max(1e-5);
        let m = row.iter().map(|x| ((x * s).abs().fract() - 0.5).abs()).fold(1.0f64, f64::min);
        if m < self.margin { self.rows.push((at, m)); }
        self.exact.act(at, row)
    }
}
#[test]
fn diag() {
    for path in testvectors::all_files(&testvectors::shared_dir()).unwrap() {
        let tv = testvectors::load(&path).unwrap();
        let mut tf = TieFinder { exact: Exact::new(&tv.config), margin: 1e-6, rows: vec![] };
        let f = reference::forward_with(&tv.params, &tv.tokens, &mut tf);
        let p = tv.config.p;
        let bad_logit_ex: BTreeSet<usize> = (0..tv.tokens.len()).filter(|&n| (0..p).any(|j| (f.logits[n*p+j] - tv.logits[n*p+j]).abs() > 1e-9)).collect();
        let int8_ex: BTreeSet<usize> = tf.rows.iter().map(|(a, _)| a.example).collect();
        let m = tv.config.d_mlp;
        let relu_ex: BTreeSet<usize> = (0..tv.tokens.len()).filter(|&n| { let row = &f.mlp_pre[(n*3+2)*m..(n*3+3)*m]; let mx = row.iter().fold(0.0f64, |a, x| a.max(x.abs())); row.iter().any(|x| x.abs() <= 1e-9 * mx) }).collect();
        let mut margins: Vec<f64> = tf.rows.iter().map(|r| r.1).collect(); margins.sort_by(f64::total_cmp);
        println!("{}: N={} logit-mismatch ex {} ; int8 near-tie rows {} in ex {} (mismatch ⊆ int8? {}); relu-tie ex {}; smallest margins {:?}", tv.name, tv.tokens.len(), bad_logit_ex.len(), tf.rows.len(), int8_ex.len(), bad_logit_ex.is_subset(&int8_ex), relu_ex.len(), &margins[..margins.len().min(4)]);
        let sites: BTreeSet<String> = tf.rows.iter().map(|r| format!("{:?}/{}", r.0.site, r.0.pos)).collect();
        println!("   sites {:?}", sites);
        for id in [ParamId::WQ, ParamId::WK, ParamId::WV, ParamId::WO, ParamId::WIn, ParamId::WOut] {
            let w = tv.params.get(id); let g = w.iter().map(|x| x.abs()).sum::<f64>() / w.len() as f64;
            let mm = w.iter().map(|x| ((x / g).abs() - 0.5).abs()).fold(1.0f64, f64::min);
            print!(" {:?}:{:.1e}", id, mm);
        }
        println!();
        let _ = quant::act_int8(&[1.0]);
    }
}
