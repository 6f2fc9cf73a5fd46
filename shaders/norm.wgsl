// Row-wise normalisation and activation quantisation. Each row (token) gets `lanes` threads
// that stride over it and reduce in a fixed tree: 64 (a workgroup per row) on GPUs, where
// coalesced loads and parallel sums matter; 1 on CPU adapters, whose SIMD lanes then run
// separate rows without barriers in between:
//   forward:  y = Qa(N(relu?(x))) (* gain), keeping inv_rms for the backward pass;
//   backward: dx = (base +) N'(x)^T dy, masked by the ReLU when the input went through one.
// `Linear` uses it without gain (N = rms or identity, Qa = int8 or identity); the final
// RMSNorm uses it with the learned gain and no quantisation. Qa is straight-through.
// With PACK (int8 input of a quantised weight matrix), the forward pass stores the int8 codes
// instead of y, four per u32 with each row padded to whole words by zero codes, and each row's
// dequantisation step: the products of shaders/matmul.wgsl read those.

struct Params {
    rows: u32,
    width: u32,
    flags: u32,
    gain_off: u32,
    lanes: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

const RELU_INPUT: u32 = 1u;
const RMS: u32 = 2u;
const INT8: u32 = 4u;
const GAIN: u32 = 8u;
const ADD_BASE: u32 = 16u;
const PACK: u32 = 32u;

@group(0) @binding(UNIFORM_BINDING) var<uniform> prm: Params;
@group(0) @binding(X_BINDING) var<storage, read> x: array<f32>;
@group(0) @binding(Y_BINDING) var<storage, read_write> y: array<f32>;
@group(0) @binding(INV_RMS_BINDING) var<storage, read_write> inv_rms: array<f32>;
@group(0) @binding(GAIN_BINDING) var<storage, read> gain: array<f32>;
// backward
@group(0) @binding(DY_BINDING) var<storage, read> dy: array<f32>;
@group(0) @binding(BASE_BINDING) var<storage, read> base: array<f32>;
@group(0) @binding(DX_BINDING) var<storage, read_write> dx: array<f32>;
@group(0) @binding(INV_RMS_IN_BINDING) var<storage, read> inv_rms_in: array<f32>;
// forward with PACK: [rows, ceil(width / 4)] packed codes and [rows] steps (1 / scale).
@group(0) @binding(CODES_BINDING) var<storage, read_write> codes: array<u32>;
@group(0) @binding(STEPS_BINDING) var<storage, read_write> steps: array<f32>;

fn has(flag: u32) -> bool {
    return (prm.flags & flag) != 0u;
}

fn input(i: u32) -> f32 {
    return activation(x[at(X_BINDING) + i]);
}

fn activation(v: f32) -> f32 {
    if (has(RELU_INPUT)) {
        return max(v, 0.0);
    }
    return v;
}

fn gain_at(j: u32) -> f32 {
    if (has(GAIN)) {
        return gain[at(GAIN_BINDING) + prm.gain_off + j];
    }
    return 1.0;
}

fn row_sum(value: f32, lid: u32) -> f32 {
    return segment_reduce(value, lid, prm.lanes, false);
}

fn row_max(value: f32, lid: u32) -> f32 {
    return segment_reduce(value, lid, prm.lanes, true);
}

@compute @workgroup_size(SUM_THREADS)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = row_lane(wg, nwg, lid, prm.rows, prm.lanes);
    let base_i = t.row * prm.width;
    // Threads past the last row loop over nothing.
    let width = select(0u, prm.width, t.in_range);
    // One pass for both statistics: max |x * inv| = inv * max |x| exactly (inv > 0, and
    // rounding a product by a positive factor keeps the order).
    var ss = 0.0;
    var amax = 0.0;
    if (has(RMS) || has(INT8)) {
        for (var j = t.lane; j < width; j += prm.lanes) {
            let v = input(base_i + j);
            ss = fma(v, v, ss);
            amax = max(amax, abs(v));
        }
    }
    var inv = 1.0;
    if (has(RMS)) {
        inv = inverseSqrt(row_sum(ss, lid) / f32(prm.width) + NORM_EPS);
    }
    if (t.in_range && t.lane == 0u) {
        inv_rms[at(INV_RMS_BINDING) + t.row] = inv;
    }
    var scale = 1.0;
    if (has(INT8)) {
        scale = 127.0 / max(row_max(amax, lid) * inv, QUANT_EPS);
    }
    if (has(PACK)) {
        let words = (prm.width + 3u) / 4u;
        for (var w = t.lane; w < select(0u, words, t.in_range); w += prm.lanes) {
            var bits = 0u;
            for (var j = 4u * w; j < min(4u * w + 4u, prm.width); j++) {
                let code = int8_code(input(base_i + j) * inv, scale);
                bits |= (u32(i32(code)) & 0xffu) << (8u * (j % 4u));
            }
            codes[at(CODES_BINDING) + t.row * words + w] = bits;
        }
        if (t.in_range && t.lane == 0u) {
            steps[at(STEPS_BINDING) + t.row] = 1.0 / scale;
        }
        return;
    }
    for (var j = t.lane; j < width; j += prm.lanes) {
        var v = input(base_i + j) * inv;
        if (has(INT8)) {
            v = int8_code(v, scale) / scale;
        }
        y[at(Y_BINDING) + base_i + j] = v * gain_at(j);
    }
}

// Round half to even, as the reference (WGSL's round).
fn int8_code(v: f32, scale: f32) -> f32 {
    return clamp(round(v * scale), -128.0, 127.0);
}

@compute @workgroup_size(SUM_THREADS)
fn backward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = row_lane(wg, nwg, lid, prm.rows, prm.lanes);
    let base_i = t.row * prm.width;
    let width = select(0u, prm.width, t.in_range);
    let inv = select(0.0, inv_rms_in[at(INV_RMS_IN_BINDING) + min(t.row, prm.rows - 1u)],
        t.in_range);
    // For y = x * inv: dx = inv * dy - inv^3 * x * mean(dy * x).
    var dot = 0.0;
    if (has(RMS)) {
        for (var j = t.lane; j < width; j += prm.lanes) {
            dot = fma(dy[at(DY_BINDING) + base_i + j] * gain_at(j), input(base_i + j), dot);
        }
        dot = row_sum(dot, lid);
    }
    let k = inv * inv * inv * dot / f32(prm.width);
    for (var j = t.lane; j < width; j += prm.lanes) {
        let i = base_i + j;
        let xi = x[at(X_BINDING) + i];
        var g = inv * dy[at(DY_BINDING) + i] * gain_at(j) - k * activation(xi);
        if (has(RELU_INPUT) && xi <= 0.0) {
            g = 0.0;
        }
        if (has(ADD_BASE)) {
            g += base[at(BASE_BINDING) + i];
        }
        dx[at(DX_BINDING) + i] = g;
    }
}

// d gain[j] = sum over rows of dy * x * inv_rms: one workgroup per column sums over the rows
// in a fixed tree (a column's thousands of rows would serialise one thread).
@compute @workgroup_size(SUM_THREADS)
fn gain_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    enter_model(wg.z);
    let j = wg.x;
    var s = 0.0;
    for (var r = lid.x; r < prm.rows; r += SUM_THREADS) {
        let i = r * prm.width + j;
        s = fma(dy[at(DY_BINDING) + i], x[at(X_BINDING) + i] * inv_rms_in[at(INV_RMS_IN_BINDING) + r],
            s);
    }
    let total = workgroup_sum(s, lid.x);
    if (lid.x == 0u) {
        dx[at(DX_BINDING) + prm.gain_off + j] = total;
    }
}
