// Batched, strided matrix product with an optional residual, bias and accumulation:
//   C[b,i,j] (+)= sum_k A[b,i,k] B[b,k,j] (+ R[b,i,j]) (+ bias[b,j])
// Every operand is addressed through strides, so transposes, broadcast rows (stride 0) and
// per-head weight layouts need no copies. The contraction index k may be split in two,
// k = k_hi * k_div + k_lo, with a stride for each part: this sums over (head, d_head) pairs of
// [H, ., Dh] tensors in one product. Each thread computes a 4x4 register block (four vec4 rows) of a 64x64 tile.
//
// Split-K: a product with few output tiles and a long contraction (a weight gradient summed over
// the batch) would leave most of a GPU idle, so it may run as `k_splits` chunks of the
// contraction (workgroup z = batch * k_splits + chunk), each writing its partial product to a
// scratch matrix, followed by `reduce_split`, which sums the partials in a fixed order and
// applies residual, bias and accumulation as an unsplit product would.
//
// `int8_main` is the product of int8 activations (shaders/norm.wgsl, PACK) and a packed binary or
// ternary weight matrix: four codes per u32 on both sides, multiplied and summed exactly in i32
// by dot4I8Packed (a native instruction where the device has one; naga writes a portable
// bit-extract fallback elsewhere), then scaled once: C = f32(sum) * (weight scale * row step).
// Its A operand counts bytes (codes), with column stride 1, and it never splits K.
// `main_codes` is `main` with A read from the same codes, as code * step (a weight gradient
// a^T dy); a separate entry point, so that `main` carries no test for it.

struct Operand {
    off: u32,
    s_batch: u32,
    s_row: u32,
    s_col: u32,
}

struct Params {
    m: u32,
    n: u32,
    k: u32,
    k_div: u32,
    // A: s_row strides i; s_col strides k_lo; a_k_hi strides k_hi. B: s_row strides k_lo; s_col strides j.
    a: Operand,
    b: Operand,
    c: Operand,
    r: Operand,
    a_k_hi: u32,
    b_k_hi: u32,
    flags: u32,
    bias_off: u32,
    bias_s_batch: u32,
    k_splits: u32,
    // Contraction length of one chunk (k itself when k_splits is 1).
    k_chunk: u32,
    // B is a quantised weight matrix read from its packed codes (PACKED_*, or 0: from b_buf):
    // the matrix starts at element b_param_off of the parameters, its codes at word
    // b_packed_off of `packed`, its scale is scales[b_scale].
    b_packed: u32,
    b_param_off: u32,
    b_packed_off: u32,
    b_scale: u32,
    // A's int8 codes (int8_main, main_codes): element (i, k) has the step
    // a_steps[a_steps_off + i * a_steps_row + k * a_steps_col].
    a_steps_off: u32,
    a_steps_row: u32,
    a_steps_col: u32,
}

const ADD_RESIDUAL: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const ADD_BIAS: u32 = 4u;

// b_packed: the quantisation mode of shaders/quantize.wgsl (2: ternary).
const PACKED_BINARY: u32 = 1u;

const TILE: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> a_buf: array<f32>;
@group(0) @binding(2) var<storage, read> b_buf: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_buf: array<f32>;
@group(0) @binding(4) var<storage, read> r_buf: array<f32>;
@group(0) @binding(5) var<storage, read> bias_buf: array<f32>;
// reduce_split only: the chunks' partial products, [batch * k_splits + chunk, m, n].
@group(0) @binding(6) var<storage, read> partials: array<f32>;
// main and int8_main: packed quantised weights and their scales (shaders/quantize.wgsl).
@group(0) @binding(7) var<storage, read> packed: array<u32>;
@group(0) @binding(8) var<storage, read> scales: array<f32>;
// int8_main and main_codes: A's packed int8 codes and its rows' steps.
@group(0) @binding(9) var<storage, read> a_codes: array<u32>;
@group(0) @binding(10) var<storage, read> a_steps: array<f32>;

// a_tile[kk * 16 + g] holds rows 4g..4g+3 of the tile at contraction step kk; b_tile columns.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

fn k_offset(k: u32, s_lo: u32, s_hi: u32) -> u32 {
    return (k / prm.k_div) * s_hi + (k % prm.k_div) * s_lo;
}

// Element (i, k) of A; from its int8 codes when `codes` (a constant of each entry point).
fn load_a(base: u32, i: u32, k: u32, k_end: u32, codes: bool) -> f32 {
    if (i < prm.m && k < k_end) {
        let e = base + i * prm.a.s_row + k_offset(k, prm.a.s_col, prm.a_k_hi);
        if (codes) {
            let word = bitcast<i32>(a_codes[at(9u) + e / 4u]);
            let code = extractBits(word, 8u * (e % 4u), 8u);
            return f32(code) * a_step(i, k);
        }
        return a_buf[at(1u) + e];
    }
    return 0.0;
}

fn a_step(i: u32, k: u32) -> f32 {
    return a_steps[at(10u) + prm.a_steps_off + i * prm.a_steps_row + k * prm.a_steps_col];
}

fn load_b(base: u32, k: u32, j: u32, k_end: u32) -> f32 {
    if (k < k_end && j < prm.n) {
        let i = base + k_offset(k, prm.b.s_row, prm.b_k_hi) + j * prm.b.s_col;
        if (prm.b_packed != 0u) {
            return packed_weight(i - prm.b_param_off);
        }
        return b_buf[at(2u) + i];
    }
    return 0.0;
}

// The code (-1, 0 or +1) of element e of the packed weight matrix; `main` multiplies the sums
// by the matrix's scale once, at the end.
fn packed_weight(e: u32) -> f32 {
    return f32(weight_code(e));
}

fn weight_code(e: u32) -> i32 {
    if (prm.b_packed == PACKED_BINARY) {
        let bit = (packed[at(7u) + prm.b_packed_off + e / 32u] >> (e % 32u)) & 1u;
        return select(1, -1, bit == 1u);
    }
    let code = (packed[at(7u) + prm.b_packed_off + e / 16u] >> (2u * (e % 16u))) & 3u;
    return select(select(0, 1, code == 1u), -1, code == 2u);
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    tiled_product(wg, lid, false);
}

@compute @workgroup_size(16, 16, 1)
fn main_codes(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    tiled_product(wg, lid, true);
}

fn tiled_product(wg: vec3<u32>, lid: vec3<u32>, codes: bool) {
    // Output batch z: the product's batch, or with split-K a chunk's partial product.
    let z = enter_model_grid(wg.z);
    let batch = z / prm.k_splits;
    let k_begin = (z % prm.k_splits) * prm.k_chunk;
    let k_end = min(prm.k, k_begin + prm.k_chunk);
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tx = lid.x;
    let ty = lid.y;
    let a_base = prm.a.off + batch * prm.a.s_batch;
    // Without the model's offset: a packed B is indexed relative to its parameter.
    let b_base = prm.b.off + batch * prm.b.s_batch;

    // Thread (tx, ty) owns rows 4ty..4ty+3 and columns 4tx..4tx+3 of the tile.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        // Thread (tx, ty) loads four rows of A and four columns of B at step k0 + ty.
        let k = k0 + ty;
        let i = row0 + 4u * tx;
        a_tile[ty * 16u + tx] = vec4<f32>(
            load_a(a_base, i, k, k_end, codes), load_a(a_base, i + 1u, k, k_end, codes),
            load_a(a_base, i + 2u, k, k_end, codes), load_a(a_base, i + 3u, k, k_end, codes));
        let j = col0 + 4u * tx;
        b_tile[ty * 16u + tx] = vec4<f32>(
            load_b(b_base, k, j, k_end), load_b(b_base, k, j + 1u, k_end),
            load_b(b_base, k, j + 2u, k_end), load_b(b_base, k, j + 3u, k_end));
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            let a = a_tile[kk * 16u + ty];
            let b = b_tile[kk * 16u + tx];
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    if (prm.b_packed != 0u) {
        let scale = scales[at(8u) + prm.b_scale];
        acc0 *= scale;
        acc1 *= scale;
        acc2 *= scale;
        acc3 *= scale;
    }
    store_row(z, row0 + 4u * ty, col0 + 4u * tx, acc0);
    store_row(z, row0 + 4u * ty + 1u, col0 + 4u * tx, acc1);
    store_row(z, row0 + 4u * ty + 2u, col0 + 4u * tx, acc2);
    store_row(z, row0 + 4u * ty + 3u, col0 + 4u * tx, acc3);
}

fn store_row(batch: u32, i: u32, j0: u32, acc: vec4<f32>) {
    if (i >= prm.m) {
        return;
    }
    for (var c = 0u; c < 4u; c++) {
        let j = j0 + c;
        if (j >= prm.n) {
            return;
        }
        store(batch, i, j, acc[c]);
    }
}

fn store(batch: u32, i: u32, j: u32, product: f32) {
    var v = product;
    if ((prm.flags & ADD_RESIDUAL) != 0u) {
        v += r_buf[at(4u) + prm.r.off + batch * prm.r.s_batch + i * prm.r.s_row + j * prm.r.s_col];
    }
    if ((prm.flags & ADD_BIAS) != 0u) {
        v += bias_buf[at(5u) + prm.bias_off + batch * prm.bias_s_batch + j];
    }
    let ci = at(3u) + prm.c.off + batch * prm.c.s_batch + i * prm.c.s_row + j * prm.c.s_col;
    if ((prm.flags & ACCUMULATE) != 0u) {
        v += c_buf[ci];
    }
    c_buf[ci] = v;
}

// One thread per output element (workgroup z = batch within the model): the sum of its k_splits partials.
@compute @workgroup_size(256)
fn reduce_split(
    @builtin(global_invocation_id) gid: vec3<u32>,
) {
    let batch = enter_model_grid(gid.z);
    let idx = gid.x;
    if (idx >= prm.m * prm.n) {
        return;
    }
    var v = 0.0;
    for (var s = 0u; s < prm.k_splits; s++) {
        v += partials[at(6u) + (batch * prm.k_splits + s) * prm.m * prm.n + idx];
    }
    store(batch, idx / prm.n, idx % prm.n, v);
}

// int8_main's tiles: word w (codes 4w..4w+3 of a tile step) of row or column r at [w * 64 + r].
var<workgroup> a_words: array<u32, 256>;
var<workgroup> b_words: array<u32, 256>;

// Codes k..k+3 of column j of the packed weight matrix (element index base + k * s_row + j *
// s_col, relative to the matrix) as four int8 bytes; zero past the matrix.
fn weight_word(base: u32, k: u32, j: u32) -> u32 {
    var word = 0u;
    if (j < prm.n) {
        for (var e = 0u; e < 4u && k + e < prm.k; e++) {
            let code = weight_code(base + (k + e) * prm.b.s_row + j * prm.b.s_col);
            word |= (u32(code) & 0xffu) << (8u * e);
        }
    }
    return word;
}

@compute @workgroup_size(16, 16, 1)
fn int8_main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
) {
    let batch = enter_model_grid(wg.z);
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tx = lid.x;
    let ty = lid.y;
    // Each thread loads word `w` of one row of A and one column of B per tile step.
    let r = (ty * 16u + tx) % TILE;
    let w = (ty * 16u + tx) / TILE;
    let a_row = prm.a.off + batch * prm.a.s_batch + (row0 + r) * prm.a.s_row;
    let b_base = prm.b.off + batch * prm.b.s_batch - prm.b_param_off;

    var acc0 = vec4<i32>(0);
    var acc1 = vec4<i32>(0);
    var acc2 = vec4<i32>(0);
    var acc3 = vec4<i32>(0);
    for (var k0 = 0u; k0 < prm.k; k0 += TK) {
        let k = k0 + 4u * w;
        var a = 0u;
        if (row0 + r < prm.m && k < prm.k) {
            a = a_codes[at(9u) + (a_row + k) / 4u];
        }
        a_words[w * TILE + r] = a;
        b_words[w * TILE + r] = weight_word(b_base, k, col0 + r);
        workgroupBarrier();
        for (var kw = 0u; kw < TK / 4u; kw++) {
            let ar = kw * TILE + 4u * ty;
            let bc = kw * TILE + 4u * tx;
            let b = vec4<u32>(b_words[bc], b_words[bc + 1u], b_words[bc + 2u], b_words[bc + 3u]);
            acc0 += dot4_row(a_words[ar], b);
            acc1 += dot4_row(a_words[ar + 1u], b);
            acc2 += dot4_row(a_words[ar + 2u], b);
            acc3 += dot4_row(a_words[ar + 3u], b);
        }
        workgroupBarrier();
    }
    let scale = scales[at(8u) + prm.b_scale];
    store_int_row(batch, row0 + 4u * ty, col0 + 4u * tx, acc0, scale);
    store_int_row(batch, row0 + 4u * ty + 1u, col0 + 4u * tx, acc1, scale);
    store_int_row(batch, row0 + 4u * ty + 2u, col0 + 4u * tx, acc2, scale);
    store_int_row(batch, row0 + 4u * ty + 3u, col0 + 4u * tx, acc3, scale);
}

// Four codes of one row of A against four codes of four columns of B.
fn dot4_row(a: u32, b: vec4<u32>) -> vec4<i32> {
    return vec4<i32>(
        dot4I8Packed(a, b.x), dot4I8Packed(a, b.y), dot4I8Packed(a, b.z), dot4I8Packed(a, b.w));
}

fn store_int_row(batch: u32, i: u32, j0: u32, sums: vec4<i32>, weight_scale: f32) {
    if (i >= prm.m) {
        return;
    }
    store_row(batch, i, j0, vec4<f32>(sums) * (weight_scale * a_step(i, 0u)));
}
