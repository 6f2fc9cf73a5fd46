//! Row-vector linear algebra on row-major slices, and its gradients.

/// `x @ W` for a row `x` and a row-major `W` of shape `[x.len(), cols]`.
pub fn vec_mat(x: &[f64], w: &[f64], cols: usize) -> Vec<f64> {
    debug_assert_eq!(w.len(), x.len() * cols);
    let mut out = vec![0.0; cols];
    for (&xi, w_row) in x.iter().zip(w.chunks_exact(cols)) {
        out.iter_mut()
            .zip(w_row)
            .for_each(|(o, &wij)| *o += xi * wij);
    }
    out
}

/// `W @ d`: the gradient of `x @ W` with respect to `x`, given `d = dL/d(x @ W)`.
pub fn mat_vec(w: &[f64], d: &[f64]) -> Vec<f64> {
    w.chunks_exact(d.len()).map(|w_row| dot(w_row, d)).collect()
}

/// `dW += x^T d`: the gradient of `x @ W` with respect to `W`.
pub fn add_outer(dw: &mut [f64], x: &[f64], d: &[f64]) {
    for (&xi, dw_row) in x.iter().zip(dw.chunks_exact_mut(d.len())) {
        dw_row.iter_mut().zip(d).for_each(|(g, &dj)| *g += xi * dj);
    }
}

pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// `a += b`.
pub fn add_assign(a: &mut [f64], b: &[f64]) {
    a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
}

/// `a + b`.
pub fn add(a: &[f64], b: &[f64]) -> Vec<f64> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}
