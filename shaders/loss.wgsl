// Softmax cross-entropy of the last position, its gradient, and the batch mean.
// Written so that tiny losses survive f32: with m the largest logit and r the sum of
// exp(l_j - m) over every other class, loss = (m - l_label) + log1p(r), and the label's
// gradient p_label - 1 = -(sum over j != label of e_j) / S is summed directly instead of
// subtracting two numbers near 1. A loss of 1e-7 then comes out as 1e-7, not 0.

struct Params {
    n: u32,
    p: u32,
    metric: u32,     // column of `metrics`: 0 train, 2 test (loss; accuracy next to it)
    with_grad: u32,
    inv_n: f32,
    metric_slots: u32,
    lanes: u32,      // threads per example in per_example_loss
    _pad0: u32,
}

@group(0) @binding(UNIFORM_BINDING) var<uniform> prm: Params;
@group(0) @binding(LOGITS_BINDING) var<storage, read> logits: array<f32>;
@group(0) @binding(LABELS_BINDING) var<storage, read> labels: array<u32>;
// [n, 2] = (loss, correct)
@group(0) @binding(PER_EXAMPLE_BINDING) var<storage, read_write> per_example: array<f32>;
@group(0) @binding(DLOGITS_BINDING) var<storage, read_write> dlogits: array<f32>;
// reduction
@group(0) @binding(PER_EXAMPLE_IN_BINDING) var<storage, read> per_example_in: array<f32>;
@group(0) @binding(STATE_BINDING) var<storage, read> state: array<u32>;        // [0] = step
// [slots, METRIC_COLUMNS]
@group(0) @binding(METRICS_BINDING) var<storage, read_write> metrics: array<f32>;
// Per example: 1 when the transposed pair (b, a) is in the train set. A model symmetric in a and
// b gets those right by memorisation, so accuracy is also reported for each group (columns 4, 5).
@group(0) @binding(GROUPS_BINDING) var<storage, read> groups: array<u32>;

const METRIC_COLUMNS: u32 = 6u;

fn log1p_f32(x: f32) -> f32 {
    // Goldberg's trick: exact to a few ulps for small x where log(1 + x) would round to 0.
    let u = 1.0 + x;
    if (u == 1.0) {
        return x;
    }
    return log(u) * x / (u - 1.0);
}

// Each example gets `lanes` threads that stride over its logits and combine their partial
// results in fixed trees (shaders/include/workgroup_reduce.wgsl): 64 on GPUs, 1 on CPU adapters.
@compute @workgroup_size(SUM_THREADS)
fn per_example_loss(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = row_lane(wg, nwg, lid, prm.n, prm.lanes);
    let n = t.row;
    // Threads past the last example loop over nothing.
    let classes = select(0u, prm.p, t.in_range);
    let base_i = at(LOGITS_BINDING) + n * prm.p;
    var label = 0u;
    if (t.in_range) {
        label = labels[at(LABELS_BINDING) + n];
    }
    // The largest logit, and the first class that has it (as one thread scanning in order
    // finds it): the smallest of the lanes' first classes holding it.
    var lane_max = bitcast<f32>(0xff800000u);
    var lane_arg = prm.p;
    for (var j = t.lane; j < classes; j += prm.lanes) {
        let l = logits[base_i + j];
        if (l > lane_max) {
            lane_max = l;
            lane_arg = j;
        }
    }
    let m = segment_reduce(lane_max, lid, prm.lanes, true);
    let first = select(f32(prm.p), f32(lane_arg), lane_max == m);
    let arg = u32(-segment_reduce(-first, lid, prm.lanes, true));
    var rest_max = 0.0;   // sum over j != argmax
    var rest_label = 0.0; // sum over j != label
    for (var j = t.lane; j < classes; j += prm.lanes) {
        let e = exp(logits[base_i + j] - m);
        if (j != arg) {
            rest_max += e;
        }
        if (j != label) {
            rest_label += e;
        }
    }
    rest_max = segment_reduce(rest_max, lid, prm.lanes, false);
    rest_label = segment_reduce(rest_label, lid, prm.lanes, false);
    let total = 1.0 + rest_max;
    if (t.in_range && t.lane == 0u) {
        let out = at(PER_EXAMPLE_BINDING) + 2u * n;
        per_example[out] = (m - logits[base_i + label]) + log1p_f32(rest_max);
        per_example[out + 1u] = select(0.0, 1.0, arg == label);
    }
    if (prm.with_grad != 0u) {
        for (var j = t.lane; j < classes; j += prm.lanes) {
            var g: f32;
            if (j == label) {
                g = -rest_label / total;
            } else {
                g = exp(logits[base_i + j] - m) / total;
            }
            dlogits[at(DLOGITS_BINDING) + n * prm.p + j] = g * prm.inv_n;
        }
    }
}

// count / size, NaN for an empty group.
fn ratio(count: f32, size: f32) -> f32 {
    if (size == 0.0) {
        return bitcast<f32>(0x7fc00000u);
    }
    return fraction(count, size);
}

// count / size for 0 <= count <= size, held to its bound: Vulkan allows a division 2.5 ulp of
// error (an H200 gave 3830 / 3830 = 1.0000001, an accuracy above 1), and its fma need not be
// fused, so a correction step with the residual would not be exact either.
fn fraction(count: f32, size: f32) -> f32 {
    return min(count / size, 1.0);
}

var<workgroup> red_loss: array<f32, 256>;
var<workgroup> red_correct: array<f32, 256>;
var<workgroup> red_group_correct: array<f32, 256>;
var<workgroup> red_group_size: array<f32, 256>;

// Mean loss and accuracy in one workgroup: fixed-order strided sums, then a tree.
@compute @workgroup_size(256)
fn reduce(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    enter_model(wg.z);
    var loss = 0.0;
    var correct = 0.0;
    var group_correct = 0.0;
    var group_size = 0.0;
    for (var n = lid; n < prm.n; n += 256u) {
        loss += per_example_in[at(PER_EXAMPLE_IN_BINDING) + 2u * n];
        let c = per_example_in[at(PER_EXAMPLE_IN_BINDING) + 2u * n + 1u];
        correct += c;
        let g = f32(groups[at(GROUPS_BINDING) + n]);
        group_correct += g * c;
        group_size += g;
    }
    red_loss[lid] = loss;
    red_correct[lid] = correct;
    red_group_correct[lid] = group_correct;
    red_group_size[lid] = group_size;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) {
            red_loss[lid] += red_loss[lid + stride];
            red_correct[lid] += red_correct[lid + stride];
            red_group_correct[lid] += red_group_correct[lid + stride];
            red_group_size[lid] += red_group_size[lid + stride];
        }
        workgroupBarrier();
    }
    if (lid == 0u) {
        let slot = (state[at(STATE_BINDING)] - 1u) % prm.metric_slots;
        let row = at(METRICS_BINDING) + slot * METRIC_COLUMNS;
        metrics[row + prm.metric] = red_loss[0] / f32(prm.n);
        metrics[row + prm.metric + 1u] = fraction(red_correct[0], f32(prm.n));
        if (prm.metric == 2u) {
            let rest_size = f32(prm.n) - red_group_size[0];
            metrics[row + 4u] = ratio(red_group_correct[0], red_group_size[0]);
            metrics[row + 5u] = ratio(red_correct[0] - red_group_correct[0], rest_size);
        }
    }
}
