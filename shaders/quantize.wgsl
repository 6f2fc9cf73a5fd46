// Qw for every parameter: one workgroup per parameter writes its effective (quantised) value
// into `qparams`, the buffer every forward kernel reads. Means are over the whole matrix and
// reduced in a fixed order, so the result is deterministic.

struct ParamDesc {
    off: u32,
    len: u32,
    mode: u32,
    _pad: u32,
}

const MODE_COPY: u32 = 0u;
const MODE_BINARY: u32 = 1u;
const MODE_TERNARY: u32 = 2u;

@group(0) @binding(0) var<storage, read> descs: array<ParamDesc>;
@group(0) @binding(1) var<storage, read> params: array<f32>;
@group(0) @binding(2) var<storage, read_write> qparams: array<f32>;

var<workgroup> red_sum: array<f32, 256>;
var<workgroup> red_abs: array<f32, 256>;

@compute @workgroup_size(256)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let d = descs[wg.x];
    if (d.mode == MODE_COPY) {
        for (var i = lid; i < d.len; i += 256u) {
            qparams[d.off + i] = params[d.off + i];
        }
        return;
    }
    var s = 0.0;
    var sa = 0.0;
    for (var i = lid; i < d.len; i += 256u) {
        let w = params[d.off + i];
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
    for (var i = lid; i < d.len; i += 256u) {
        let w = params[d.off + i];
        var q: f32;
        if (d.mode == MODE_BINARY) {
            q = sign(w - mean) * mean_abs;
        } else {
            let gamma = max(mean_abs, QUANT_EPS);
            q = clamp(round(w / gamma), -1.0, 1.0) * gamma;
        }
        qparams[d.off + i] = q;
    }
}
