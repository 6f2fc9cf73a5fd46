// The residual stream at the embedding is a function of (token, position) only, so it is built
// as a table of 2p + 1 rows: a at position 0 (rows 0..p), b at position 1 (rows p..2p) and `=`
// at position 2 (row 2p). Without positional embeddings rows p..2p repeat rows 0..p; keeping
// the layout fixed keeps every kernel free of that switch. Quantised embeddings are read from
// their packed codes.

struct Params {
    p: u32,
    d_model: u32,
    w_e: u32,    // offset of embed.W_E
    w_pos: u32,  // offset of pos_embed.W_pos
    has_pos: u32,
    // 0: W_E and W_pos are floats in qparams; else their packing (the model quantises them):
    // the first word of each one's codes in `packed` and its index in `scales`.
    packing: u32,
    w_e_codes: u32,
    w_e_scale: u32,
    w_pos_codes: u32,
    w_pos_scale: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(UNIFORM_BINDING) var<uniform> prm: Params;
@group(0) @binding(QPARAMS_BINDING) var<storage, read> qparams: array<f32>;
@group(0) @binding(TABLE_BINDING) var<storage, read_write> table: array<f32>;
@group(0) @binding(DTABLE_BINDING) var<storage, read> dtable: array<f32>;
@group(0) @binding(GRADS_BINDING) var<storage, read_write> grads: array<f32>;
@group(0) @binding(PACKED_BINDING) var<storage, read> packed: array<u32>;
@group(0) @binding(SCALES_BINDING) var<storage, read> scales: array<f32>;

// Element e of an embedding matrix (its float at `off`, or its code times its scale).
fn embedding(off: u32, e: u32, codes: u32, scale: u32) -> f32 {
    if (prm.packing == 0u) {
        return qparams[at(QPARAMS_BINDING) + off + e];
    }
    let per_word = packed_codes_per_word(prm.packing);
    let word = packed[at(PACKED_BINDING) + codes + e / per_word];
    return f32(packed_code_in_word(prm.packing, word, e % per_word))
        * scales[at(SCALES_BINDING) + scale];
}

@compute @workgroup_size(64)
fn build_table(@builtin(global_invocation_id) gid: vec3<u32>) {
    enter_model(gid.z);
    let rows = 2u * prm.p + 1u;
    let i = gid.x;
    if (i >= rows * prm.d_model) {
        return;
    }
    let row = i / prm.d_model;
    let j = i % prm.d_model;
    let pos = min(row / prm.p, 2u);
    let tok = select(row % prm.p, prm.p, row == 2u * prm.p);
    var v = embedding(prm.w_e, tok * prm.d_model + j, prm.w_e_codes, prm.w_e_scale);
    if (prm.has_pos != 0u) {
        v += embedding(prm.w_pos, pos * prm.d_model + j, prm.w_pos_codes, prm.w_pos_scale);
    }
    table[at(TABLE_BINDING) + i] = v;
}

// Gradients of W_E and W_pos from the gradient of the table (one thread per output scalar).
@compute @workgroup_size(64)
fn embed_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    enter_model(gid.z);
    let p = prm.p;
    let g = at(GRADS_BINDING) + prm.w_e;
    let dt = at(DTABLE_BINDING);
    let d = prm.d_model;
    let i = gid.x;
    let n_we = (p + 1u) * d;
    if (i < n_we) {
        let tok = i / d;
        let j = i % d;
        if (tok == p) {
            grads[g + i] = dtable[dt + 2u * p * d + j];
        } else {
            grads[g + i] = dtable[dt + tok * d + j] + dtable[dt + (p + tok) * d + j];
        }
        return;
    }
    let k = i - n_we;
    if (prm.has_pos == 0u || k >= 3u * d) {
        return;
    }
    let pos = k / d;
    let j = k % d;
    let g_pos = at(GRADS_BINDING) + prm.w_pos + k;
    if (pos == 2u) {
        grads[g_pos] = dtable[dt + 2u * p * d + j];
        return;
    }
    var s = 0.0;
    for (var t = 0u; t < p; t++) {
        s += dtable[dt + (pos * p + t) * d + j];
    }
    grads[g_pos] = s;
}
