// Attention of the last position (`=`) over [a, b, =].
// Only the last position feeds the loss, and with one layer its keys and values are rows of
// the per-(token, position) tables K, V [H, 2p+1, Dh]; its query is the single row q [H, Dh].
// A causal mask never hides anything from the last position, so it does not appear here.

struct Params {
    n: u32,         // examples
    p: u32,
    n_heads: u32,
    d_head: u32,
    scale: f32,     // 1 / sqrt(d_head)
    lanes: u32,     // threads per output of query_grad
    head_lanes: u32, // threads per (example, head) of forward and score_grad
    _pad: u32,
}

@group(0) @binding(UNIFORM_BINDING) var<uniform> prm: Params;
@group(0) @binding(EXAMPLES_BINDING) var<storage, read> examples: array<u32>; // [n, 2] = (a, b)
@group(0) @binding(K_TAB_BINDING) var<storage, read> k_tab: array<f32>;
@group(0) @binding(V_TAB_BINDING) var<storage, read> v_tab: array<f32>;
@group(0) @binding(Q_BINDING) var<storage, read> q: array<f32>;
@group(0) @binding(PATTERN_BINDING) var<storage, read_write> pattern: array<f32>; // [n, H, 3]
@group(0) @binding(Z_BINDING) var<storage, read_write> z: array<f32>;       // [n, H * Dh]
// backward
@group(0) @binding(PATTERN_IN_BINDING) var<storage, read> pattern_in: array<f32>;
@group(0) @binding(DZ_BINDING) var<storage, read> dz: array<f32>;
@group(0) @binding(DS_BINDING) var<storage, read_write> ds: array<f32>;      // [n, H, 3] d score
@group(0) @binding(DS_IN_BINDING) var<storage, read> ds_in: array<f32>;
@group(0) @binding(CSR_START_BINDING) var<storage, read> csr_start: array<u32>;    // [2p + 1]
@group(0) @binding(CSR_ITEMS_BINDING) var<storage, read> csr_items: array<u32>;    // n * 3 + slot
@group(0) @binding(DK_TAB_BINDING) var<storage, read_write> dk_tab: array<f32>;
@group(0) @binding(DV_TAB_BINDING) var<storage, read_write> dv_tab: array<f32>;
@group(0) @binding(DQ_BINDING) var<storage, read_write> dq: array<f32>;
// [H, 2p+1]: d score summed per row
@group(0) @binding(ROW_DS_BINDING) var<storage, read_write> row_ds: array<f32>;
@group(0) @binding(ROW_DS_IN_BINDING) var<storage, read> row_ds_in: array<f32>;

fn table_row(n: u32, slot: u32) -> u32 {
    if (slot == 0u) {
        return examples[at(EXAMPLES_BINDING) + 2u * n];
    }
    if (slot == 1u) {
        return prm.p + examples[at(EXAMPLES_BINDING) + 2u * n + 1u];
    }
    return 2u * prm.p;
}

fn tab_index(h: u32, row: u32, e: u32) -> u32 {
    return (h * (2u * prm.p + 1u) + row) * prm.d_head + e;
}

// The table rows of an example's three positions.
fn table_rows(n: u32) -> vec3<u32> {
    return vec3<u32>(table_row(n, 0u), table_row(n, 1u), table_row(n, 2u));
}

// Element e of head h's K table, and of its V table, at the three rows.
fn keys(h: u32, rows: vec3<u32>, e: u32) -> vec3<f32> {
    return vec3<f32>(k_tab[at(K_TAB_BINDING) + tab_index(h, rows.x, e)],
        k_tab[at(K_TAB_BINDING) + tab_index(h, rows.y, e)],
        k_tab[at(K_TAB_BINDING) + tab_index(h, rows.z, e)]);
}

fn values(h: u32, rows: vec3<u32>, e: u32) -> vec3<f32> {
    return vec3<f32>(v_tab[at(V_TAB_BINDING) + tab_index(h, rows.x, e)],
        v_tab[at(V_TAB_BINDING) + tab_index(h, rows.y, e)],
        v_tab[at(V_TAB_BINDING) + tab_index(h, rows.z, e)]);
}

// Each (example, head) gets `head_lanes` threads that split its d_head elements and sum their
// parts of the three scores in fixed trees: up to d_head on GPUs, 1 on CPU adapters.
struct Pair {
    // Its index n * n_heads + h, and the head.
    nh: u32,
    h: u32,
    rows: vec3<u32>,
    lane: u32,
    // The pair exists; threads past the last one loop over nothing (d_head 0).
    in_range: bool,
    d_head: u32,
}

fn pair(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> Pair {
    let t = row_lane(wg, nwg, lid, prm.n * prm.n_heads, prm.head_lanes);
    let n = t.row / prm.n_heads;
    var rows = vec3<u32>(0u);
    if (t.in_range) {
        rows = table_rows(n);
    }
    return Pair(t.row, t.row % prm.n_heads, rows, t.lane, t.in_range,
        select(0u, prm.d_head, t.in_range));
}

fn pair_sum(parts: vec3<f32>, lid: u32) -> vec3<f32> {
    return vec3<f32>(segment_reduce(parts.x, lid, prm.head_lanes, false),
        segment_reduce(parts.y, lid, prm.head_lanes, false),
        segment_reduce(parts.z, lid, prm.head_lanes, false));
}

@compute @workgroup_size(SUM_THREADS)
fn forward(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let x = pair(wg, nwg, lid);
    var parts = vec3<f32>(0.0);
    for (var e = x.lane; e < x.d_head; e += prm.head_lanes) {
        parts = fma(vec3<f32>(q[at(Q_BINDING) + x.h * prm.d_head + e]), keys(x.h, x.rows, e),
            parts);
    }
    let s = pair_sum(parts, lid) * prm.scale;
    let w = exp(s - max(s.x, max(s.y, s.z)));
    let pattern_nh = w / (w.x + w.y + w.z);
    let t = x.nh;
    if (x.in_range && x.lane == 0u) {
        pattern[at(PATTERN_BINDING) + t * 3u] = pattern_nh.x;
        pattern[at(PATTERN_BINDING) + t * 3u + 1u] = pattern_nh.y;
        pattern[at(PATTERN_BINDING) + t * 3u + 2u] = pattern_nh.z;
    }
    for (var e = x.lane; e < x.d_head; e += prm.head_lanes) {
        let v = values(x.h, x.rows, e);
        let mixed = fma(pattern_nh.z, v.z, fma(pattern_nh.y, v.y, pattern_nh.x * v.x));
        z[at(Z_BINDING) + t * prm.d_head + e] = mixed;
    }
}

// d score_j = P_j (dP_j - sum_i P_i dP_i), dP_j = dz_h . v_j
@compute @workgroup_size(SUM_THREADS)
fn score_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let x = pair(wg, nwg, lid);
    let t = x.nh;
    var parts = vec3<f32>(0.0);
    for (var e = x.lane; e < x.d_head; e += prm.head_lanes) {
        parts = fma(vec3<f32>(dz[at(DZ_BINDING) + t * prm.d_head + e]), values(x.h, x.rows, e),
            parts);
    }
    let dp = pair_sum(parts, lid);
    if (x.in_range && x.lane == 0u) {
        let p = vec3<f32>(pattern_in[at(PATTERN_IN_BINDING) + t * 3u],
            pattern_in[at(PATTERN_IN_BINDING) + t * 3u + 1u],
            pattern_in[at(PATTERN_IN_BINDING) + t * 3u + 2u]);
        let ds_nh = p * (dp - fma(p.z, dp.z, fma(p.y, dp.y, p.x * dp.x)));
        ds[at(DS_BINDING) + t * 3u] = ds_nh.x;
        ds[at(DS_BINDING) + t * 3u + 1u] = ds_nh.y;
        ds[at(DS_BINDING) + t * 3u + 2u] = ds_nh.z;
    }
}

// Gradients of the K and V tables, one thread per (head, row, e), for the rows of a and b:
// each gathers the examples that use its row through a CSR index built on the host. The
// summed d score of each row is kept for query_grad.
@compute @workgroup_size(64)
fn table_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    enter_model(gid.z);
    let rows = 2u * prm.p + 1u;
    let t = gid.x;
    let e = t % prm.d_head;
    let row = (t / prm.d_head) % rows;
    let h = t / (prm.d_head * rows);
    if (h >= prm.n_heads || row == 2u * prm.p) {
        return;
    }
    let width = prm.n_heads * prm.d_head;
    var sum_ds = 0.0;
    var sum_dv = 0.0;
    let start = at(CSR_START_BINDING) + row;
    for (var c = csr_start[start]; c < csr_start[start + 1u]; c++) {
        let item = csr_items[at(CSR_ITEMS_BINDING) + c];
        let n = item / 3u;
        let i = (n * prm.n_heads + h) * 3u + item % 3u;
        sum_ds += ds_in[at(DS_IN_BINDING) + i];
        sum_dv = fma(pattern_in[at(PATTERN_IN_BINDING) + i],
            dz[at(DZ_BINDING) + n * width + h * prm.d_head + e], sum_dv);
    }
    write_table_grad(h, row, e, sum_ds, sum_dv);
}

fn write_table_grad(h: u32, row: u32, e: u32, sum_ds: f32, sum_dv: f32) {
    let t = tab_index(h, row, e);
    dk_tab[at(DK_TAB_BINDING) + t] = sum_ds * q[at(Q_BINDING) + h * prm.d_head + e] * prm.scale;
    dv_tab[at(DV_TAB_BINDING) + t] = sum_dv;
    if (e == 0u) {
        row_ds[at(ROW_DS_BINDING) + h * (2u * prm.p + 1u) + row] = sum_ds;
    }
}

// The same for the `=` row, which every example uses: one workgroup per (head, e) sums over
// the examples in a fixed tree.
@compute @workgroup_size(SUM_THREADS)
fn eq_row_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    enter_model(wg.z);
    let h = wg.x / prm.d_head;
    let e = wg.x % prm.d_head;
    let width = prm.n_heads * prm.d_head;
    var sum_ds = 0.0;
    var sum_dv = 0.0;
    for (var n = lid.x; n < prm.n; n += SUM_THREADS) {
        let i = (n * prm.n_heads + h) * 3u + 2u;
        sum_ds += ds_in[at(DS_IN_BINDING) + i];
        sum_dv = fma(pattern_in[at(PATTERN_IN_BINDING) + i],
            dz[at(DZ_BINDING) + n * width + h * prm.d_head + e], sum_dv);
    }
    let total_ds = workgroup_sum(sum_ds, lid.x);
    let total_dv = workgroup_sum(sum_dv, lid.x);
    if (lid.x == 0u) {
        write_table_grad(h, 2u * prm.p, e, total_ds, total_dv);
    }
}

// Gradient of the single query row: d score times the key, summed over examples and slots,
// which is each table row's summed d score times its key. Each of its (head, e) gets `lanes`
// threads that stride over the table rows and sum in a fixed tree.
@compute @workgroup_size(SUM_THREADS)
fn query_grad(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let t = row_lane(wg, nwg, lid, prm.n_heads * prm.d_head, prm.lanes);
    let h = t.row / prm.d_head;
    let e = t.row % prm.d_head;
    // Threads past the last output loop over nothing.
    let rows = select(0u, 2u * prm.p + 1u, t.in_range);
    var acc = 0.0;
    for (var row = t.lane; row < rows; row += prm.lanes) {
        let row_ds_h = row_ds_in[at(ROW_DS_IN_BINDING) + h * (2u * prm.p + 1u) + row];
        acc = fma(row_ds_h, k_tab[at(K_TAB_BINDING) + tab_index(h, row, e)], acc);
    }
    let total = segment_reduce(acc, lid, prm.lanes, false);
    if (t.in_range && t.lane == 0u) {
        dq[at(DQ_BINDING) + t.row] = total * prm.scale;
    }
}
