// Included before every shader file (src/engine/kernels.rs, `prelude`).

// Threads of a workgroup that sums a long column together (see `workgroup_sum`).
const SUM_THREADS: u32 = 64u;

var<workgroup> sum_scratch: array<f32, SUM_THREADS>;

// The sum of `value` over the SUM_THREADS threads of the workgroup (`lid` = local index), in a
// fixed tree, returned to every thread. Call from uniform control flow.
fn workgroup_sum(value: f32, lid: u32) -> f32 {
    sum_scratch[lid] = value;
    for (var half = SUM_THREADS / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if (lid < half) {
            sum_scratch[lid] += sum_scratch[lid + half];
        }
    }
    workgroupBarrier();
    let total = sum_scratch[0];
    // Nobody may start another sum until every thread has read this one.
    workgroupBarrier();
    return total;
}
