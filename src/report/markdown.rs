//! `report.md`: the figures inline, each with a sentence or two generated from the numbers.

use std::fmt::Write;

use super::figures::Figure;
use super::Analysis;
use crate::model::name_of;

fn epoch(e: Option<usize>) -> String {
    e.map_or("never".into(), |e| format!("epoch {e}"))
}


fn pct(x: f64) -> String {
    format!("{:.0}%", 100.0 * x)
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
            "Train accuracy held 100% from {} on; test accuracy first reached 99.9% at {} and held it \
             (for {} epochs or to the end) from {} on{}. The dashed curves split the test set by \
             whether the transposed pair (b, a) was trained on: a model symmetric in a and b gets \
             those right by memorisation, so only the other group measures generalisation.",
            epoch(s.phases.memorised),
            epoch(s.phases.first_reached),
            super::metrics::SUSTAIN,
            epoch(s.phases.grokked),
            match (s.phases.relapses, s.phases.lowest_after_first) {
                (0, _) => String::new(),
                (n, low) => format!(
                    "; it relapsed below 99% {n} time{} after first reaching it (lowest {:.3})",
                    if n == 1 { "" } else { "s" },
                    low.unwrap_or(f32::NAN)
                ),
            }
        ),
        "attention_mean.png" => "How much `=` attends to a, b and itself in each head, averaged over all pairs.".into(),
        "attention_grid.png" => "Attention from `=` to a for every input pair; periodic stripes mean the head reads a Fourier feature of the inputs.".into(),
        "neuron_activations.png" => "The first MLP neurons over the (a, b) grid. Periodic patterns are the signature of the Fourier algorithm.".into(),
        "embedding_singular_values.png" => "A spectrum that drops after a few pairs of values (against the flat Gaussian control) means W_E lives in a low-dimensional subspace.".into(),
        "embedding_principal_components.png" => "Tokens placed on a circle in a pair of principal components are a clock representation of the number.".into(),
        "fourier_basis.png" => "The basis: the constant, then cos k and sin k for k = 1..⌊p/2⌋, each normalised (for even p the last frequency, p/2, has a cosine only).".into(),
        "embedding_fourier.png" => "W_E in the Fourier basis: a sparse set of bright rows means the embedding uses a few frequencies.".into(),
        "embedding_fourier_norms.png" => format!("Key frequencies (highlighted): {}.", list(&s.key_frequencies)),
        "key_frequency_dot_products.png" => "Dot products between the key-frequency directions of W_E: near-diagonal means the frequencies occupy separate subspaces.".into(),
        "key_frequencies.png" => format!("Rule: {}", s.key_frequency_rule),
        "neuron_fourier_2d.png" => "The neuron whose variance is best explained by one frequency, in the 2D Fourier basis; energy in the (const, k), (k, const) and (k, k) terms is the trig-identity structure.".into(),
        "neuron_frequency_fractions.png" => "Each row is a neuron, each column a frequency, on one 0–1 scale (the 0.85 cut marked on the colour bar); neurons grouped by their dominant pre-ReLU frequency, each group by its largest share.".into(),
        "neuron_max_fraction.png" => format!(
            "Post-ReLU, {} of {} neurons ({:.0}%) have at least 85% of their variance in one frequency (Nanda et al.'s measure); pre-ReLU, {}. Median largest share {:.2} pre-ReLU, {:.2} post-ReLU; {} neurons never vary (dead).",
            n.clustered,
            n.d_mlp,
            100.0 * n.clustered_fraction,
            pct(s.neuron_level.at(&s.neuron_level.clustered_pre, 0.85)),
            s.neuron_level.median_max_share_pre,
            s.neuron_level.median_max_share_post,
            n.dead
        ),
        "neuron_clustered_vs_threshold.png" => {
            let nl = &s.neuron_level;
            let (post, null) = (nl.at(&nl.clustered_post, 0.85), nl.at(&nl.null_post, 0.85));
            format!(
                "At the 0.85 cut: {} of neurons pre-ReLU, {} post-ReLU ({} and {} importance-weighted). \
                 The null keeps each neuron's dominant-frequency shape, pre-ReLU purity and firing rate and \
                 nothing else: {} of its synthetic neurons pass post-ReLU, and {} would if every neuron were \
                 perfectly single-frequency (the neurons fire on a median {} of pairs; a pure cosine firing \
                 on half of them keeps only 84% of its variance in its frequency). {}",
                pct(nl.at(&nl.clustered_pre, 0.85)),
                pct(post),
                pct(nl.at(&nl.weighted_pre, 0.85)),
                pct(nl.at(&nl.weighted_post, 0.85)),
                pct(null),
                pct(nl.at(&nl.pure_null_post, 0.85)),
                pct(nl.median_firing_rate),
                if post + 0.1 < null {
                    "The real neurons pass less often than their null: they mix frequencies beyond their pre-ReLU impurity."
                } else {
                    "The real neurons pass about as often as their null (within 10 points) or more: rectifying neurons of this purity and sparsity accounts for the post-ReLU figure."
                }
            )
        }
        "frequency_ablations.png" => {
            let al = &s.algorithm;
            format!(
                "Loss over all p² pairs (chance, uniform logits: ln p = {:.2}) with one key frequency removed from \
                 the number rows of W_E, or its (const, k), (k, const) and (k, k) terms removed from the MLP's \
                 output over the pairs. All key frequencies removed: {:.3} (W_E), {:.3} (MLP output); every \
                 other frequency removed from W_E: {:.3}, against {:.3} unablated. The key-frequency clock form \
                 Σ α_k cos(w_k(a + b − c)) explains {} of the (per-pair centred) logit variance.",
                al.chance_loss,
                al.embedding_all_keys_loss,
                al.mlp_all_keys_loss,
                al.embedding_non_keys_loss,
                al.loss,
                pct(al.clock_form_fraction)
            )
        }
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
             gradient symmetricity {:.2} (mean cosine between the correct logit's gradients with respect to the a and b inputs \
             over all pairs with a ≠ b; ≈1 for a pizza): {}. Rule: {}. Colours span the 1st to 99th percentile.",
            s.distance_irrelevance,
            s.gradient_symmetricity,
            s.clock_pizza.kind,
            super::levels::kind_rule()
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
        "Checkpoint epoch {} ({}) of a `{}` model ({} weights, {} activation quantisation), p = {}, d_model {}, {} heads × {}, d_mlp {}.\n",
        s.epoch,
        s.checkpoint_choice,
        name_of(c.preset),
        name_of(c.model.weights),
        name_of(c.model.act_quant),
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
    md.push_str(&levels_section(s));
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

/// The numbers of each level a verdict speaks to, in one place.
fn levels_section(s: &super::Summary) -> String {
    let (nl, al, cp) = (&s.neuron_level, &s.algorithm, &s.clock_pizza);
    let worst_key = al
        .ablations
        .iter()
        .map(|a| a.embedding_loss)
        .fold(f64::NAN, f64::min);
    format!(
        "## Features, algorithm, implementation\n\n\
         - **Features** (the embedding): key frequencies {} holding {} of the averaged W_E/W_L Fourier energy.\n\
         - **Algorithm** (what the logits compute, causally): the clock form on the key frequencies explains {} of \
         the logit variance; loss {:.3} unablated, {:.3} with all key frequencies removed from W_E and {:.3} from \
         the MLP output, {:.3} with every other frequency removed from W_E; removing one key frequency from W_E \
         raises the loss to at least {:.3} (chance ln p = {:.2}). Restricted / excluded loss: {}.\n\
         - **Implementation** (how neurons carry it): {} of neurons have ≥ 85% of their variance in one frequency \
         pre-ReLU, {} post-ReLU (rectification null: {}); median frequencies for 85% of the variance {} pre-ReLU, \
         {} post-ReLU; median firing rate {}. Clock or pizza: {} (distance irrelevance {:.2}, gradient \
         symmetricity {:.2}).\n\n",
        list(&s.key_frequencies),
        pct(s.key_frequency_share),
        pct(al.clock_form_fraction),
        al.loss,
        al.embedding_all_keys_loss,
        al.mlp_all_keys_loss,
        al.embedding_non_keys_loss,
        worst_key,
        al.chance_loss,
        s.progress.last().map_or("-".into(), |q| format!("{:.2e} / {:.2e}", q.restricted_loss, q.excluded_loss)),
        pct(nl.at(&nl.clustered_pre, 0.85)),
        pct(nl.at(&nl.clustered_post, 0.85)),
        pct(nl.at(&nl.null_post, 0.85)),
        nl.median_frequencies_needed_pre,
        nl.median_frequencies_needed_post,
        pct(nl.median_firing_rate),
        cp.kind,
        cp.distance_irrelevance,
        cp.gradient_symmetricity,
    )
}
