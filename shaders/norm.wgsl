// Row-wise normalisation and activation quantisation, one thread per row (token):
//   forward:  y = Qa(N(relu?(x))) (* gain), keeping inv_rms for the backward pass;
//   backward: dx = (base +) N'(x)^T dy, masked by the ReLU when the input went through one.
// `Linear` uses it without gain (N = rms or identity, Qa = int8 or identity); the final
// RMSNorm uses it with the learned gain and no quantisation. Qa is straight-through.

struct Params {
    rows: u32,
    width: u32,
    flags: u32,
    gain_off: u32,
}

const RELU_INPUT: u32 = 1u;
const RMS: u32 = 2u;
const INT8: u32 = 4u;
const GAIN: u32 = 8u;
const ADD_BASE: u32 = 16u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<storage, read_write> inv_rms: array<f32>;
@group(0) @binding(4) var<storage, read> gain: array<f32>;
// backward
@group(0) @binding(5) var<storage, read> dy: array<f32>;
@group(0) @binding(6) var<storage, read> base: array<f32>;
@group(0) @binding(7) var<storage, read_write> dx: array<f32>;
@group(0) @binding(8) var<storage, read> inv_rms_in: array<f32>;

fn has(flag: u32) -> bool {
    return (prm.flags & flag) != 0u;
}

fn input(i: u32) -> f32 {
    let v = x[i];
    if (has(RELU_INPUT)) {
        return max(v, 0.0);
    }
    return v;
}

fn gain_at(j: u32) -> f32 {
    if (has(GAIN)) {
        return gain[prm.gain_off + j];
    }
    return 1.0;
}

fn row_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.x + gid.y * nwg.x * 64u;
}

@compute @workgroup_size(64)
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_id(gid, nwg);
    if (row >= prm.rows) {
        return;
    }
    let base_i = row * prm.width;
    var inv = 1.0;
    if (has(RMS)) {
        var ss = 0.0;
        for (var j = 0u; j < prm.width; j++) {
            let v = input(base_i + j);
            ss = fma(v, v, ss);
        }
        inv = inverseSqrt(ss / f32(prm.width) + NORM_EPS);
    }
    inv_rms[row] = inv;
    var scale = 1.0;
    if (has(INT8)) {
        var amax = 0.0;
        for (var j = 0u; j < prm.width; j++) {
            amax = max(amax, abs(input(base_i + j) * inv));
        }
        scale = 127.0 / max(amax, QUANT_EPS);
    }
    for (var j = 0u; j < prm.width; j++) {
        var v = input(base_i + j) * inv;
        if (has(INT8)) {
            v = clamp(round(v * scale), -128.0, 127.0) / scale;
        }
        y[base_i + j] = v * gain_at(j);
    }
}

@compute @workgroup_size(64)
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_id(gid, nwg);
    if (row >= prm.rows) {
        return;
    }
    let base_i = row * prm.width;
    let inv = inv_rms_in[row];
    // For y = x * inv: dx = inv * dy - inv^3 * x * mean(dy * x).
    var dot = 0.0;
    if (has(RMS)) {
        for (var j = 0u; j < prm.width; j++) {
            dot = fma(dy[base_i + j] * gain_at(j), input(base_i + j), dot);
        }
    }
    let k = inv * inv * inv * dot / f32(prm.width);
    for (var j = 0u; j < prm.width; j++) {
        let i = base_i + j;
        var g = inv * dy[i] * gain_at(j) - k * input(i);
        if (has(RELU_INPUT) && x[i] <= 0.0) {
            g = 0.0;
        }
        if (has(ADD_BASE)) {
            g += base[i];
        }
        dx[i] = g;
    }
}

// d gain[j] = sum over rows of dy * x * inv_rms: one workgroup per column sums over the rows
// in a fixed tree (a column's thousands of rows would serialise one thread).
@compute @workgroup_size(SUM_THREADS)
fn gain_grad(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let j = wg.x;
    var s = 0.0;
    for (var r = lid.x; r < prm.rows; r += SUM_THREADS) {
        s = fma(dy[r * prm.width + j], x[r * prm.width + j] * inv_rms_in[r], s);
    }
    let total = workgroup_sum(s, lid.x);
    if (lid.x == 0u) {
        dx[prm.gain_off + j] = total;
    }
}
