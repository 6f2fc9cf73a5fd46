// Qw for every parameter, one workgroup per parameter. Full-precision parameters are copied to
// `qparams`, the buffer the kernels read them from. Quantised ones are packed instead
// (shaders/include/packed_codes.wgsl), with the matrix's scale in `scales`; products and the
// embedding table read them from there, never as floats. Means are over the whole matrix and
// reduced in a fixed order, so the result is deterministic. One workgroup per (parameter,
// model); the descriptors are the same for every model, so `descs` is a single copy.
//
// With x = W, or W - mean W when centred: binary codes are -1 where W < mean W, else +1, with
// scale mean|x|; ternary codes are clamp(round(x / g), -1, 1) with scale g = max(mean|x|, eps);
// unscaled matrices have scale 1 (src/reference/quant.rs, `weight_codes`).

struct ParamDesc {
    off: u32,
    len: u32,
    // MODE_COPY, or the packing (PACKED_BINARY, PACKED_TERNARY).
    mode: u32,
    // First word of its packed codes in `packed`.
    packed_off: u32,
    // The quantiser sees W - mean W, and the gradient is centred too (`centre_grads`).
    centred: u32,
    // The values are the codes themselves (scale 1).
    unscaled: u32,
}

const MODE_COPY: u32 = 0u;

@group(0) @binding(DESCS_BINDING) var<storage, read> descs: array<ParamDesc>;
@group(0) @binding(PARAMS_BINDING) var<storage, read> params: array<f32>;
@group(0) @binding(QPARAMS_BINDING) var<storage, read_write> qparams: array<f32>;
@group(0) @binding(PACKED_BINDING) var<storage, read_write> packed: array<u32>;
@group(0) @binding(SCALES_BINDING) var<storage, read_write> scales: array<f32>; // one per parameter
@group(0) @binding(GRADS_BINDING) var<storage, read_write> grads: array<f32>;

var<workgroup> red: array<f32, 256>;

// The sum of `value` over the workgroup in a fixed tree. Call from uniform control flow.
fn tree_sum(value: f32, lid: u32) -> f32 {
    red[lid] = value;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red[lid] += red[lid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];
    // Nobody may start another sum until every thread has read this one.
    workgroupBarrier();
    return total;
}

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    enter_model(wg.z);
    let d = descs[wg.x];
    let src = at(PARAMS_BINDING) + d.off;
    if (d.mode == MODE_COPY) {
        for (var i = lid; i < d.len; i += 256u) {
            qparams[at(QPARAMS_BINDING) + d.off + i] = params[src + i];
        }
        return;
    }
    var s = 0.0;
    var sa = 0.0;
    for (var i = lid; i < d.len; i += 256u) {
        let w = params[src + i];
        s += w;
        sa += abs(w);
    }
    let mean = tree_sum(s, lid) / f32(d.len);
    var mean_abs = tree_sum(sa, lid) / f32(d.len);
    let centred = d.centred != 0u;
    if (centred) {
        var sc = 0.0;
        for (var i = lid; i < d.len; i += 256u) {
            sc += abs(params[src + i] - mean);
        }
        mean_abs = tree_sum(sc, lid) / f32(d.len);
    }
    let shift = select(0.0, mean, centred);
    let gamma = max(mean_abs, QUANT_EPS);
    if (lid == 0u) {
        let scale = select(gamma, mean_abs, d.mode == PACKED_BINARY);
        scales[at(SCALES_BINDING) + wg.x] = select(scale, 1.0, d.unscaled != 0u);
    }
    let per_word = packed_codes_per_word(d.mode);
    for (var word = lid; word * per_word < d.len; word += 256u) {
        var bits = 0u;
        for (var e = 0u; e < per_word && word * per_word + e < d.len; e++) {
            let w = params[src + word * per_word + e];
            var code = 0;
            if (d.mode == PACKED_BINARY) {
                // Exactly two values: a weight equal to the mean counts as +1.
                code = select(1, -1, w < mean);
            } else {
                code = i32(clamp(round((w - shift) / gamma), -1.0, 1.0));
            }
            bits |= packed_code_bits(d.mode, code, e);
        }
        packed[at(PACKED_BINDING) + d.packed_off + word] = bits;
    }
}

// The latent gradient of a centred matrix: the quantiser saw W - mean W, whose Jacobian is the
// same centring, so the gradient of W is g - mean g (one workgroup per parameter and model).
@compute @workgroup_size(256)
fn centre_grads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    enter_model(wg.z);
    let d = descs[wg.x];
    if (d.centred == 0u) {
        return;
    }
    let g = at(GRADS_BINDING) + d.off;
    var s = 0.0;
    for (var i = lid; i < d.len; i += 256u) {
        s += grads[g + i];
    }
    let mean = tree_sum(s, lid) / f32(d.len);
    for (var i = lid; i < d.len; i += 256u) {
        grads[g + i] -= mean;
    }
}
