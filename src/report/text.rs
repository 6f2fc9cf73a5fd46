//! Numbers as the reports write them.

/// "epoch 907", or "never".
pub fn epoch(e: Option<usize>) -> String {
    e.map_or("never".into(), |e| format!("epoch {e}"))
}

/// "3, 4, 11", or "none".
pub fn list(freqs: &[usize]) -> String {
    if freqs.is_empty() {
        return "none".into();
    }
    freqs
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A fraction as a whole percentage: "66%".
pub fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
}
