// AdamW over every parameter in one dispatch (PyTorch semantics: decoupled weight decay first,
// then the bias-corrected Adam update). The step counter lives on the GPU so that many epochs can
// be recorded into one submission. A parameter that comes out NaN or infinite records the step in
// state[1] (atomicMin, so the first such step wins whatever the scheduling); the host reads it
// back with the metrics. Every model of a stacked engine has its own state, hyper-parameters
// (lr and weight decay may differ) and slice of the buffers.

struct Hyper {
    lr: f32,
    weight_decay: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    len: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(HYPERS_BINDING) var<storage, read> hypers: array<Hyper>; // one per model
@group(0) @binding(STATE_BINDING) var<storage, read_write> state: array<atomic<u32>>; // [step, first non-finite step or 0xffffffff]
@group(0) @binding(PARAMS_BINDING) var<storage, read_write> params: array<f32>;
@group(0) @binding(GRADS_BINDING) var<storage, read> grads: array<f32>;
@group(0) @binding(M_BINDING) var<storage, read_write> m: array<f32>;
@group(0) @binding(V_BINDING) var<storage, read_write> v: array<f32>;

@compute @workgroup_size(1)
fn begin_step(@builtin(workgroup_id) wg: vec3<u32>) {
    enter_model(wg.z);
    atomicAdd(&state[at(STATE_BINDING)], 1u);
}

@compute @workgroup_size(256)
fn adamw(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    enter_model(gid.z);
    let hp = hypers[model];
    let i = gid.x + gid.y * nwg.x * 256u;
    if (i >= hp.len) {
        return;
    }
    let step = atomicLoad(&state[at(STATE_BINDING)]);
    let t = f32(step);
    let g = grads[at(GRADS_BINDING) + i];
    var p = params[at(PARAMS_BINDING) + i] * (1.0 - hp.lr * hp.weight_decay);
    let mi = hp.beta1 * m[at(M_BINDING) + i] + (1.0 - hp.beta1) * g;
    let vi = hp.beta2 * v[at(V_BINDING) + i] + (1.0 - hp.beta2) * g * g;
    m[at(M_BINDING) + i] = mi;
    v[at(V_BINDING) + i] = vi;
    let bc1 = 1.0 - pow(hp.beta1, t);
    let bc2 = 1.0 - pow(hp.beta2, t);
    p -= (hp.lr / bc1) * mi / (sqrt(vi) / sqrt(bc2) + hp.eps);
    params[at(PARAMS_BINDING) + i] = p;
    // Finite floats have an exponent below all ones; NaN and infinities have it all set.
    if ((bitcast<u32>(p) & 0x7f800000u) == 0x7f800000u) {
        atomicMin(&state[at(STATE_BINDING) + 1u], step);
    }
}
