// The matrix product of shaders/include/matmul_operands.wgsl for GPUs: 64x64 output tiles staged
// through workgroup memory, each thread a 4x4 register block (four vec4 rows).
//
// Split-K: a product with few output tiles and a long contraction (a weight gradient summed over
// the batch) would leave most of a GPU idle, so it may run as `k_splits` chunks of the
// contraction (workgroup z = batch * k_splits + chunk), each writing its partial product to a
// scratch matrix, followed by `reduce_split`, which sums the partials in a fixed order and
// applies residual, bias and accumulation as an unsplit product would.
//
// `int8_main` multiplies four codes per u32 on both sides and sums them in i32 with
// dot4I8Packed (a native instruction where the device has one; naga writes a portable
// bit-extract fallback elsewhere).

const TILE: u32 = 64u;
const TK: u32 = 16u;

// reduce_split only: the chunks' partial products, [batch * k_splits + chunk, m, n].
@group(0) @binding(6) var<storage, read> partials: array<f32>;

// a_tile[kk * 16 + g] holds rows 4g..4g+3 of the tile at contraction step kk; b_tile columns.
var<workgroup> a_tile: array<vec4<f32>, 256>;
var<workgroup> b_tile: array<vec4<f32>, 256>;

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

// `int8_main`'s output: integer sums times the weight scale and the row's step.
fn store_int_row(batch: u32, i: u32, j0: u32, sums: vec4<i32>, weight_scale: f32) {
    if (i >= prm.m) {
        return;
    }
    store_row(batch, i, j0, vec4<f32>(sums) * (weight_scale * a_step(i, 0u)));
}
