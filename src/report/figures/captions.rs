//! The captions whose text depends on the run's numbers.

use crate::metrics::{GENERALISATION_RULE, SUSTAIN};
use crate::report::levels;
use crate::report::text::{epoch, pct};
use crate::report::Summary;

pub(super) fn training_curves(s: &Summary) -> String {
    format!(
        "Train accuracy held 100% from {} on; the run first generalised ({}) at {} and held it \
         (for {} epochs or to the end) from {} on{}. The dashed curves split the test set by \
         whether the transposed pair (b, a) was trained on: a model symmetric in a and b gets \
         those right by memorisation, so only the other group measures generalisation.",
        epoch(s.phases.memorised),
        GENERALISATION_RULE,
        epoch(s.phases.first_reached),
        SUSTAIN,
        epoch(s.phases.grokked),
        match (s.phases.relapses, s.phases.lowest_after_first) {
            (0, _) => String::new(),
            (n, low) => format!(
                "; it relapsed below 99% {n} time{} after first generalising (lowest {:.3})",
                if n == 1 { "" } else { "s" },
                low.unwrap_or(f32::NAN)
            ),
        }
    )
}

pub(super) fn progress_measures(s: &Summary) -> String {
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

pub(super) fn max_fraction(s: &Summary) -> String {
    let n = &s.neurons;
    format!(
        "Post-ReLU, {} of {} neurons ({:.0}%) have at least 85% of their variance in one frequency (Nanda et al.'s measure); pre-ReLU, {}. Median largest share {:.2} pre-ReLU, {:.2} post-ReLU; {} neurons never vary (dead).",
        n.clustered,
        n.d_mlp,
        100.0 * n.clustered_fraction,
        pct(s.neuron_level.at(&s.neuron_level.clustered_pre, 0.85)),
        s.neuron_level.median_max_share_pre,
        s.neuron_level.median_max_share_post,
        n.dead
    )
}

pub(super) fn clusters(s: &Summary) -> String {
    let n = &s.neurons;
    format!(
        "Cluster sizes: {}.",
        n.cluster_sizes
            .iter()
            .map(|(f, c)| format!("frequency {f}: {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

pub(super) fn clustered_vs_threshold(s: &Summary) -> String {
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

pub(super) fn frequency_ablations(s: &Summary) -> String {
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

pub(super) fn clock_pizza(s: &Summary) -> String {
    format!(
        "Distance irrelevance {:.2} (≈1 for a clock, ≈0 for a pizza: how little the correct logit depends on a − b) and \
         gradient symmetricity {:.2} (mean cosine between the correct logit's gradients with respect to the a and b inputs \
         over all pairs with a ≠ b; ≈1 for a pizza): {}. Rule: {}. Colours span the 1st to 99th percentile.",
        s.distance_irrelevance,
        s.gradient_symmetricity,
        s.clock_pizza.kind,
        levels::kind_rule()
    )
}
