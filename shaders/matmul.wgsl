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
@group(0) @binding(PARTIALS_BINDING) var<storage, read> partials: array<f32>;

// The tiles of A and B, one after the other: tiles[kk * 16 + g] holds rows 4g..4g+3 of A's tile
// at contraction step kk, tiles[B_TILE + kk * 16 + g] columns 4g..4g+3 of B's.
const B_TILE: u32 = 256u;
var<workgroup> tiles: array<vec4<f32>, 512>;

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
    let t = ty * 16u + tx;
    let a_base = prm.a.off + batch * prm.a.s_batch;
    // Without the model's offset: a packed B is indexed relative to its parameter.
    let b_base = prm.b.off + batch * prm.b.s_batch;

    // Each thread loads four elements of A's and of B's tile per step, along the operand's
    // contiguous dimension, and the next step's while the tile in workgroup memory is used.
    let a_slot = tile_slot(t, prm.a.s_col == 1u);
    let b_slot = tile_slot(t, prm.b.s_row == 1u && prm.b.s_col != 1u);
    var a_pos = k_pos(k_begin + a_slot.kk);
    var b_pos = k_pos(k_begin + b_slot.kk);
    let a_line = row0 + a_slot.line;
    let b_line = col0 + b_slot.line;
    var a_next = load_a4(a_base, a_slot, a_line, k_begin + a_slot.kk, k_end, a_pos, codes);
    var b_next = load_b4(b_base, b_slot, b_line, k_begin + b_slot.kk, k_end, b_pos);

    // Thread (tx, ty) owns rows 4ty..4ty+3 and columns 4tx..4tx+3 of the tile.
    var acc0 = vec4<f32>(0.0);
    var acc1 = vec4<f32>(0.0);
    var acc2 = vec4<f32>(0.0);
    var acc3 = vec4<f32>(0.0);
    for (var k0 = k_begin; k0 < k_end; k0 += TK) {
        put_tile4(0u, a_slot, a_next);
        put_tile4(B_TILE, b_slot, b_next);
        workgroupBarrier();
        let k1 = k0 + TK;
        if (k1 < k_end) {
            a_pos = skip_k(a_pos, TK);
            b_pos = skip_k(b_pos, TK);
            a_next = load_a4(a_base, a_slot, a_line, k1 + a_slot.kk, k_end, a_pos, codes);
            b_next = load_b4(b_base, b_slot, b_line, k1 + b_slot.kk, k_end, b_pos);
        }
        for (var kk = 0u; kk < TK; kk++) {
            let a = tiles[kk * 16u + ty];
            let b = tiles[B_TILE + kk * 16u + tx];
            acc0 = fma(vec4<f32>(a.x), b, acc0);
            acc1 = fma(vec4<f32>(a.y), b, acc1);
            acc2 = fma(vec4<f32>(a.z), b, acc2);
            acc3 = fma(vec4<f32>(a.w), b, acc3);
        }
        workgroupBarrier();
    }
    if (prm.b_packed != 0u) {
        let scale = scales[at(SCALES_BINDING) + prm.b_scale];
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

// A thread's four elements of an operand's tile step: lines line..line + 3 (rows of A's tile,
// columns of B's) at step kk, or with `k_fast` steps kk..kk + 3 of one line, so that
// neighbouring threads read neighbouring addresses whichever of the operand's dimensions is
// contiguous.
struct TileSlot {
    line: u32,
    kk: u32,
    k_fast: bool,
}

fn tile_slot(t: u32, k_fast: bool) -> TileSlot {
    if (k_fast) {
        return TileSlot(t / 4u, 4u * (t % 4u), true);
    }
    return TileSlot(4u * (t % 16u), t / 16u, false);
}

// Element c of a slot whose first element is (line, k) at position p: its line and step, and
// its position (p itself when the slot runs along lines).
struct SlotElement {
    line: u32,
    k: u32,
    pos: KPos,
}

fn slot_next(s: TileSlot, e: SlotElement) -> SlotElement {
    if (s.k_fast) {
        return SlotElement(e.line, e.k + 1u, next_k(e.pos));
    }
    return SlotElement(e.line + 1u, e.k, e.pos);
}

fn load_a4(base: u32, s: TileSlot, i: u32, k: u32, k_end: u32, p: KPos, codes: bool) -> vec4<f32> {
    let e0 = SlotElement(i, k, p);
    let e1 = slot_next(s, e0);
    let e2 = slot_next(s, e1);
    let e3 = slot_next(s, e2);
    return vec4<f32>(a_at(base, e0, k_end, codes), a_at(base, e1, k_end, codes),
        a_at(base, e2, k_end, codes), a_at(base, e3, k_end, codes));
}

fn a_at(base: u32, e: SlotElement, k_end: u32, codes: bool) -> f32 {
    if (e.line < prm.m && e.k < k_end) {
        let off = e.line * prm.a.s_row + k_at(e.pos, prm.a.s_col, prm.a_k_hi);
        return a_element(base + off, e.line, e.k, codes);
    }
    return 0.0;
}

fn load_b4(base: u32, s: TileSlot, j: u32, k: u32, k_end: u32, p: KPos) -> vec4<f32> {
    let e0 = SlotElement(j, k, p);
    let e1 = slot_next(s, e0);
    let e2 = slot_next(s, e1);
    let e3 = slot_next(s, e2);
    return vec4<f32>(b_at(base, e0, k_end), b_at(base, e1, k_end), b_at(base, e2, k_end),
        b_at(base, e3, k_end));
}

fn b_at(base: u32, e: SlotElement, k_end: u32) -> f32 {
    if (e.line < prm.n && e.k < k_end) {
        let off = k_at(e.pos, prm.b.s_row, prm.b_k_hi) + e.line * prm.b.s_col;
        return b_element(base + off, prm.b_packed != 0u);
    }
    return 0.0;
}

// Stores a slot's four elements into the tile that starts at `tile`.
fn put_tile4(tile: u32, s: TileSlot, v: vec4<f32>) {
    let at_line = tile + s.kk * 16u + s.line / 4u;
    if (s.k_fast) {
        let c = s.line % 4u;
        tiles[at_line][c] = v.x;
        tiles[at_line + 16u][c] = v.y;
        tiles[at_line + 32u][c] = v.z;
        tiles[at_line + 48u][c] = v.w;
    } else {
        tiles[at_line] = v;
    }
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
        v += partials[at(PARTIALS_BINDING) + (batch * prm.k_splits + s) * prm.m * prm.n + idx];
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
            a = a_codes[at(A_CODES_BINDING) + (a_row + k) / 4u];
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
    let scale = scales[at(SCALES_BINDING) + prm.b_scale];
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
