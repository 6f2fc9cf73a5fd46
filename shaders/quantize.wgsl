// Qw for every parameter, one workgroup per parameter. Full-precision parameters are copied to
// `qparams`, the buffer the kernels read them from. Quantised ones are packed instead: binary
// weights as sign bits, 32 per u32 (bit set: -1), ternary ones as 2-bit codes, 16 per u32
// (0: 0, 1: +1, 2: -1), with the matrix's scale in `scales`; products read them from there
// (shaders/matmul.wgsl), never as floats. Means are over the whole matrix and reduced in a fixed
// order, so the result is deterministic. One workgroup per (parameter, model); the descriptors
// are the same for every model, so `descs` is a single copy.

struct ParamDesc {
    off: u32,
    len: u32,
    mode: u32,
    // First word of its packed codes in `packed`.
    packed_off: u32,
}

const MODE_COPY: u32 = 0u;
const MODE_BINARY: u32 = 1u;
const MODE_TERNARY: u32 = 2u;

@group(0) @binding(0) var<storage, read> descs: array<ParamDesc>;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> qparams: array<f32>;
@group(0) @binding(3) var<storage, read_write> packed: array<u32>;
@group(0) @binding(4) var<storage, read_write> scales: array<f32>; // one per parameter

var<workgroup> red_sum: array<f32, 256>;
var<workgroup> red_abs: array<f32, 256>;

@compute @workgroup_size(256)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    enter_model(wg.z);
    let d = descs[wg.x];
    let src = at(1u) + d.off;
    if (d.mode == MODE_COPY) {
        for (var i = lid; i < d.len; i += 256u) {
            qparams[at(2u) + d.off + i] = params[src + i];
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
    red_sum[lid] = s;
    red_abs[lid] = sa;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red_sum[lid] += red_sum[lid + stride];
            red_abs[lid] += red_abs[lid + stride];
        }
        workgroupBarrier();
    }
    let mean = red_sum[0] / f32(d.len);
    let mean_abs = red_abs[0] / f32(d.len);
    let gamma = max(mean_abs, QUANT_EPS);
    if (lid == 0u) {
        scales[at(4u) + wg.x] = select(gamma, mean_abs, d.mode == MODE_BINARY);
    }
    let per_word = select(16u, 32u, d.mode == MODE_BINARY);
    for (var word = lid; word * per_word < d.len; word += 256u) {
        var bits = 0u;
        for (var e = 0u; e < per_word && word * per_word + e < d.len; e++) {
            let w = params[src + word * per_word + e];
            if (d.mode == MODE_BINARY) {
                // Exactly two values: a weight equal to the mean counts as +1.
                bits |= select(0u, 1u, w < mean) << e;
            } else {
                let q = clamp(round(w / gamma), -1.0, 1.0);
                bits |= select(select(0u, 1u, q > 0.0), 2u, q < 0.0) << (2u * e);
            }
        }
        packed[at(3u) + d.packed_off + word] = bits;
    }
}
