use std::collections::HashMap;
use bitgrok::model::{ActQuant, Init, LinearNorm, ModelConfig, ParamId, Params, Weights};
use bitgrok::reference::{self, ActRow, Exact, Quantiser};
use bitgrok::task::Examples;

struct FrozenOffsets { exact: Exact, weights: HashMap<ParamId, Vec<f64>>, acts: HashMap<ActRow, Vec<f64>> }
fn sub(a: &[f64], b: &[f64]) -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x - y).collect() }
fn add(a: &[f64], b: &[f64]) -> Vec<f64> { a.iter().zip(b).map(|(x, y)| x + y).collect() }
impl Quantiser for FrozenOffsets {
    fn weight(&mut self, id: ParamId, w: &[f64]) -> Vec<f64> {
        let offset = self.weights.entry(id).or_insert_with(|| sub(&self.exact.weight(id, w), w));
        add(w, offset)
    }
    fn act(&mut self, at: ActRow, row: &[f64]) -> Vec<f64> {
        let offset = self.acts.entry(at).or_insert_with(|| sub(&self.exact.act(at, row), row));
        add(row, offset)
    }
}

fn run(weights: Weights, act_quant: ActQuant, ln: LinearNorm, pos: bool, causal: bool, fin: bool) {
    let c = ModelConfig { p: 5, d_model: 8, n_heads: 2, d_head: 4, d_mlp: 16, weights, act_quant, linear_norm: ln, pos_embed: pos, causal, final_norm: fin, init: Init::TransformerLens };
    let params = Params::init(&c, 11);
    let ex = Examples::all(5);
    let tokens = ex.tokens(5);
    let labels: Vec<usize> = ex.labels.iter().map(|&l| l as usize).collect();
    let (l0, grads) = reference::loss_and_grads(&params, &tokens, &labels);
    let mut q = FrozenOffsets { exact: Exact::new(&c), weights: HashMap::new(), acts: HashMap::new() };
    let mut loss = |p: &Params| reference::cross_entropy(&reference::forward_with(p, &tokens, &mut q).logits, &labels, 5);
    assert!((loss(&params) - l0).abs() < 1e-12);
    let h = 1e-6;
    let mut worst = 0.0f64; let mut worst_abs = 0.0f64;
    for (id, g) in grads.iter() {
        for i in 0..g.len() {
            let mut pp = params.clone(); pp.get_mut(id)[i] += h;
            let mut pm = params.clone(); pm.get_mut(id)[i] -= h;
            let fd = (loss(&pp) - loss(&pm)) / (2.0 * h);
            let e = (fd - g[i]).abs();
            worst_abs = worst_abs.max(e);
            worst = worst.max(e / (g[i].abs() + 1e-6));
        }
    }
    println!("{weights:?} {act_quant:?} {ln:?} pos={pos} causal={causal} fin={fin}: loss {l0:.4} worst rel {worst:.2e} abs {worst_abs:.2e}");
}

#[test]
fn fd() {
    for ln in [LinearNorm::None, LinearNorm::Rms] { for pos in [false, true] { for causal in [false, true] { for fin in [false, true] {
        run(Weights::F32, ActQuant::None, ln, pos, causal, fin);
    }}}}
    for w in [Weights::Binary, Weights::Ternary] { for a in [ActQuant::None, ActQuant::Int8] {
        run(w, a, LinearNorm::Rms, true, true, true);
        run(w, a, LinearNorm::Rms, false, false, true);
    }}
}
