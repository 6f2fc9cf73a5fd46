// Included before every shader file (src/engine/kernels.rs, `prelude`).

// Threads of a workgroup that reduce rows or columns together (`segment_reduce`).
const SUM_THREADS: u32 = 64u;

var<workgroup> reduce_scratch: array<f32, SUM_THREADS>;

// Reduces `value` over each segment of `lanes` consecutive threads (`lid` = local index;
// `lanes` a power of two dividing SUM_THREADS) in a fixed tree: the sum, or the maximum when
// `take_max`, returned to every thread of the segment. Call from uniform control flow.
fn segment_reduce(value: f32, lid: u32, lanes: u32, take_max: bool) -> f32 {
    // A thread per segment (CPU adapters) needs no barrier; `lanes` is uniform.
    if (lanes == 1u) {
        return value;
    }
    reduce_scratch[lid] = value;
    for (var half = lanes / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if (lid % lanes < half) {
            let a = reduce_scratch[lid];
            let b = reduce_scratch[lid + half];
            reduce_scratch[lid] = select(a + b, max(a, b), take_max);
        }
    }
    workgroupBarrier();
    let total = reduce_scratch[lid - lid % lanes];
    // Nobody may start another reduction until every thread has read this one.
    workgroupBarrier();
    return total;
}

// The sum of `value` over the whole workgroup.
fn workgroup_sum(value: f32, lid: u32) -> f32 {
    return segment_reduce(value, lid, SUM_THREADS, false);
}

// A thread's row and its lane within the row, for kernels that give each row `lanes` threads
// (a power of two dividing SUM_THREADS) of a workgroup of SUM_THREADS; rows fold into two
// dispatch dimensions (kernels::groups_2d). Selects the workgroup's model.
struct RowLane {
    row: u32,
    lane: u32,
    // The row exists: threads past the last row still take part in the reductions.
    in_range: bool,
}

fn row_lane(wg: vec3<u32>, nwg: vec3<u32>, lid: u32, rows: u32, lanes: u32) -> RowLane {
    enter_model(wg.z);
    let row = (wg.x + wg.y * nwg.x) * (SUM_THREADS / lanes) + lid / lanes;
    return RowLane(row, lid % lanes, row < rows);
}
