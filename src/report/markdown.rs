//! `report.md`: the numbers of each level, then the figures inline, each with its caption.

use std::fmt::Write;

use super::figures::Figure;
use super::text::{list, pct};
use super::Analysis;
use crate::model::name_of;

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
        "Accuracy over all p² pairs: {:.4}. Key frequencies: {}. Neurons with ≥ 85% of their \
         variance in one frequency: {} pre-ReLU, {} post-ReLU. Analysis took {:.1} s.\n",
        s.accuracy_all_pairs,
        list(&s.key_frequencies),
        pct(s.neuron_level.at(&s.neuron_level.clustered_pre, 0.85)),
        pct(s.neurons.clustered_fraction),
        s.seconds
    );
    md.push_str(&levels_section(s));
    for f in figures {
        let _ = writeln!(
            md,
            "## {}\n\n![{}]({})\n\n{}\n",
            f.title, f.title, f.file, f.caption
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
