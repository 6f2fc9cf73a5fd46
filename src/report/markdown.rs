//! `report.md`: the figures inline, each with a sentence or two generated from the numbers.

use std::fmt::Write;

use super::figures::Figure;
use super::Analysis;

fn epoch(e: Option<usize>) -> String {
    e.map_or("no epoch (not reached)".into(), |e| format!("epoch {e}"))
}

fn list(freqs: &[usize]) -> String {
    if freqs.is_empty() {
        return "none".into();
    }
    freqs
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The sentence under each figure.
fn caption(an: &Analysis, file: &str) -> String {
    let s = &an.summary;
    let n = &s.neurons;
    match file {
        "training_curves.png" => format!(
            "Train accuracy first reached 100% at {}; test accuracy first reached 99.9% at {}. The dashed \
             curves split the test set by whether the transposed pair (b, a) was trained on: a \
             model symmetric in a and b gets those right by memorisation, so only the other \
             group measures generalisation.",
            epoch(s.phases.memorised),
            epoch(s.phases.grokked)
        ),
        "attention_mean.png" => "How much `=` attends to a, b and itself in each head, averaged over all pairs.".into(),
        "attention_grid.png" => "Attention from `=` to a for every input pair; periodic stripes mean the head reads a Fourier feature of the inputs.".into(),
        "neuron_activations.png" => "The first MLP neurons over the (a, b) grid. Periodic patterns are the signature of the Fourier algorithm.".into(),
        "embedding_singular_values.png" => "A spectrum that drops after a few pairs of values (against the flat Gaussian control) means W_E lives in a low-dimensional subspace.".into(),
        "embedding_principal_components.png" => "Tokens placed on a circle in a pair of principal components are a clock representation of the number.".into(),
        "fourier_basis.png" => "The basis: the constant, then cos k and sin k for k = 1..(p−1)/2, each normalised.".into(),
        "embedding_fourier.png" => "W_E in the Fourier basis: a sparse set of bright rows means the embedding uses a few frequencies.".into(),
        "embedding_fourier_norms.png" => format!("Key frequencies (highlighted): {}.", list(&s.key_frequencies)),
        "key_frequency_dot_products.png" => "Dot products between the key-frequency directions of W_E: near-diagonal means the frequencies occupy separate subspaces.".into(),
        "key_frequencies.png" => format!("Rule: {}", s.key_frequency_rule),
        "neuron_fourier_2d.png" => "The neuron whose variance is best explained by one frequency, in the 2D Fourier basis; energy in the (const, k), (k, const) and (k, k) terms is the trig-identity structure.".into(),
        "neuron_frequency_fractions.png" => "Each row is a neuron, each column a frequency; neurons grouped by the frequency they belong to.".into(),
        "neuron_max_fraction.png" => format!(
            "{} of {} neurons ({:.0}%) have at least 85% of their variance in one frequency; {} neurons never vary (dead).",
            n.clustered,
            n.d_mlp,
            100.0 * n.clustered_fraction,
            n.dead
        ),
        "neuron_clusters.png" => format!(
            "Cluster sizes: {}.",
            n.cluster_sizes.iter().map(|(f, c)| format!("frequency {f}: {c}")).collect::<Vec<_>>().join(", ")
        ),
        "quantised_patterns.png" => "The effective weights of every quantised matrix as codes (blue +1, white 0, red −1).".into(),
        "quantised_composed_v_o_in.png" => "The composed linear map from the residual stream through the quantised V, O and MLP-in matrices (ignoring the per-token norms).".into(),
        "progress_measures.png" => {
            let last = s.progress.last();
            format!(
                "Restricted loss keeps only the logit directions cos(w(a+b)), sin(w(a+b)) of the key frequencies; excluded loss removes them (train set). \
                 At the last checkpoint: restricted {:.3e}, excluded {:.3e}. Phases: memorisation until {}, circuit formation until {}, cleanup until {}.",
                last.map_or(f64::NAN, |q| q.restricted_loss),
                last.map_or(f64::NAN, |q| q.excluded_loss),
                epoch(s.phases.memorised),
                epoch(s.phases.cleanup_start),
                epoch(s.phases.grokked)
            )
        }
        "clock_pizza.png" => format!(
            "Distance irrelevance {:.2} (≈1 for a clock, ≈0 for a pizza: how little the correct logit depends on a − b) and \
             gradient symmetricity {:.2} (mean cosine between the correct logit's gradients with respect to the a and b inputs; ≈1 for a pizza).",
            s.distance_irrelevance, s.gradient_symmetricity
        ),
        _ => String::new(),
    }
}

pub fn report(an: &Analysis, figures: &[Figure]) -> String {
    let s = &an.summary;
    let c = &s.config;
    let mut md = String::new();
    let _ = writeln!(md, "# Analysis of {}\n", s.run.display());
    let _ = writeln!(
        md,
        "Checkpoint epoch {} of a `{:?}` model (weights {:?}, activations {:?}), p = {}, d_model {}, {} heads × {}, d_mlp {}.\n",
        s.epoch,
        c.preset,
        c.model.weights,
        c.model.act_quant,
        c.model.p,
        c.model.d_model,
        c.model.n_heads,
        c.model.d_head,
        c.model.d_mlp
    );
    let _ = writeln!(
        md,
        "Accuracy over all p² pairs: {:.4}. Key frequencies: {}. Clustered neurons: {:.0}%. Analysis took {:.1} s.\n",
        s.accuracy_all_pairs,
        list(&s.key_frequencies),
        100.0 * s.neurons.clustered_fraction,
        s.seconds
    );
    for f in figures {
        let _ = writeln!(
            md,
            "## {}\n\n![{}]({})\n\n{}\n",
            f.title,
            f.title,
            f.file,
            caption(an, &f.file)
        );
    }
    md
}
