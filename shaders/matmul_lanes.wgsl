// The matrix product of shaders/include/matmul_operands.wgsl for CPU adapters (lavapipe). Needs
// subgroups of at least 8 lanes (lavapipe's are the 8 lanes of one SIMD register).
//
// lavapipe executes every load from a storage or workgroup buffer as a loop over the lanes, so a
// product runs as fast as the multiply-adds each loaded value feeds: 2 in shaders/matmul.wgsl's
// 4x4 blocks. Here an invocation owns ROWS consecutive rows of C and all COLS columns of
// its workgroup. A pass covers LANES contraction steps: lane l loads row k0 + l of B's columns,
// and subgroupBroadcast (a register shuffle) hands each of those rows to every lane in turn. Per
// pass an invocation loads 4 x 8 values of A and 16 of B for 512 multiply-adds.
//
// One entry point, `main`, specialised by FORM (below). Sums are in f32 for every form; INT8's
// are still exact: its terms are integers (code times -1, 0 or +1) whose sums stay below 2^24
// (the host checks k * 127 < 2^24).

const LANES: u32 = 8u;
const ROWS: u32 = 4u;
const WG_SIZE: u32 = 32u;
const COLS: u32 = 16u;

// The operands' forms (`LaneForm` in src/engine/kernels.rs): a constant of each pipeline, so
// that lavapipe, which runs both sides of every branch, runs only the loads of its own.
override FORM: u32;
// A and B floats.
const FLOATS: u32 = 0u;
// A floats; B a packed weight matrix read code by code, or with unit column stride a row at a
// time, or with unit row stride (a transposed weight matrix) a column at a time.
const PACKED: u32 = 1u;
const PACKED_ROWS: u32 = 2u;
const PACKED_COLS: u32 = 3u;
// A transposed int8 codes read as code * step (a weight gradient a^T dy); B floats.
const CODES: u32 = 4u;
// A int8 codes, B packed rows: integer sums.
const INT8: u32 = 5u;

// Sixteen columns of one row.
struct Cols {
    q0: vec4<f32>,
    q1: vec4<f32>,
    q2: vec4<f32>,
    q3: vec4<f32>,
}

// An invocation's sums: its ROWS rows.
struct Block {
    r0: Cols,
    r1: Cols,
    r2: Cols,
    r3: Cols,
}

// One pass's eight columns of A on an invocation's rows.
struct Column8 {
    k0: vec4<f32>,
    k1: vec4<f32>,
    k2: vec4<f32>,
    k3: vec4<f32>,
    k4: vec4<f32>,
    k5: vec4<f32>,
    k6: vec4<f32>,
    k7: vec4<f32>,
}

@compute @workgroup_size(WG_SIZE)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let batch = enter_model_grid(wg.z);
    let i0 = (wg.y * WG_SIZE + lid) * ROWS;
    let j0 = wg.x * COLS;
    let a_base = prm.a.off + batch * prm.a.s_batch;
    // Without the model's offset: a packed B is indexed relative to its parameter.
    let b_base = prm.b.off + batch * prm.b.s_batch;
    var a_k = k_pos(0u);
    var b_k = k_pos(lane);
    var acc = Block();
    for (var k0 = 0u; k0 < prm.k; k0 += LANES) {
        let a = a_pass(a_base, i0, k0, &a_k);
        let b = b_cols(b_base, k0 + lane, k_at(b_k, prm.b.s_row, prm.b_k_hi), j0);
        for (var s = 0u; s < LANES; s++) {
            b_k = next_k(b_k);
        }
        // subgroupBroadcast takes a constant lane: one line per step.
        acc = step(acc, a.k0, Cols(subgroupBroadcast(b.q0, 0u), subgroupBroadcast(b.q1, 0u),
            subgroupBroadcast(b.q2, 0u), subgroupBroadcast(b.q3, 0u)));
        acc = step(acc, a.k1, Cols(subgroupBroadcast(b.q0, 1u), subgroupBroadcast(b.q1, 1u),
            subgroupBroadcast(b.q2, 1u), subgroupBroadcast(b.q3, 1u)));
        acc = step(acc, a.k2, Cols(subgroupBroadcast(b.q0, 2u), subgroupBroadcast(b.q1, 2u),
            subgroupBroadcast(b.q2, 2u), subgroupBroadcast(b.q3, 2u)));
        acc = step(acc, a.k3, Cols(subgroupBroadcast(b.q0, 3u), subgroupBroadcast(b.q1, 3u),
            subgroupBroadcast(b.q2, 3u), subgroupBroadcast(b.q3, 3u)));
        acc = step(acc, a.k4, Cols(subgroupBroadcast(b.q0, 4u), subgroupBroadcast(b.q1, 4u),
            subgroupBroadcast(b.q2, 4u), subgroupBroadcast(b.q3, 4u)));
        acc = step(acc, a.k5, Cols(subgroupBroadcast(b.q0, 5u), subgroupBroadcast(b.q1, 5u),
            subgroupBroadcast(b.q2, 5u), subgroupBroadcast(b.q3, 5u)));
        acc = step(acc, a.k6, Cols(subgroupBroadcast(b.q0, 6u), subgroupBroadcast(b.q1, 6u),
            subgroupBroadcast(b.q2, 6u), subgroupBroadcast(b.q3, 6u)));
        acc = step(acc, a.k7, Cols(subgroupBroadcast(b.q0, 7u), subgroupBroadcast(b.q1, 7u),
            subgroupBroadcast(b.q2, 7u), subgroupBroadcast(b.q3, 7u)));
    }
    var scale = 1.0;
    if (prm.b_packed != 0u) {
        scale = scales[at(SCALES_BINDING) + prm.b_scale];
    }
    store_cols(batch, i0, j0, acc.r0, scale);
    store_cols(batch, i0 + 1u, j0, acc.r1, scale);
    store_cols(batch, i0 + 2u, j0, acc.r2, scale);
    store_cols(batch, i0 + 3u, j0, acc.r3, scale);
}

// Row k of B's columns j0..j0 + 15 (its elements from `off`); zero past the matrix. A packed
// row with unit column stride (always so in integer products) is one or two words.
fn b_cols(base: u32, k: u32, off: u32, j0: u32) -> Cols {
    if (FORM == PACKED_ROWS || FORM == INT8) {
        return packed_cols(base + off + j0 - prm.b_param_off, k, j0);
    }
    if (FORM == PACKED_COLS) {
        // Unit row stride and no split contraction: the pass starts at element k0 of column 0.
        return packed_transposed_cols(base - prm.b_param_off + k - k % LANES, k, j0);
    }
    return Cols(
        vec4<f32>(b_value(base, k, off, j0), b_value(base, k, off, j0 + 1u),
            b_value(base, k, off, j0 + 2u), b_value(base, k, off, j0 + 3u)),
        vec4<f32>(b_value(base, k, off, j0 + 4u), b_value(base, k, off, j0 + 5u),
            b_value(base, k, off, j0 + 6u), b_value(base, k, off, j0 + 7u)),
        vec4<f32>(b_value(base, k, off, j0 + 8u), b_value(base, k, off, j0 + 9u),
            b_value(base, k, off, j0 + 10u), b_value(base, k, off, j0 + 11u)),
        vec4<f32>(b_value(base, k, off, j0 + 12u), b_value(base, k, off, j0 + 13u),
            b_value(base, k, off, j0 + 14u), b_value(base, k, off, j0 + 15u)));
}

fn b_value(base: u32, k: u32, off: u32, j: u32) -> f32 {
    if (k < prm.k && j < prm.n) {
        return b_element(base + off + j * prm.b.s_col, FORM == PACKED);
    }
    return 0.0;
}

// The codes of weights e..e + 15 (relative to the matrix: row k, columns j0..j0 + 15).
fn packed_cols(e: u32, k: u32, j0: u32) -> Cols {
    let per_word = codes_per_word();
    let first = at(PACKED_BINDING) + prm.b_packed_off + e / per_word;
    let words = vec2<u32>(packed[first], packed[first + 1u]);
    let shift = e % per_word;
    return Cols(
        vec4<f32>(packed_code(words, shift, k, j0), packed_code(words, shift + 1u, k, j0 + 1u),
            packed_code(words, shift + 2u, k, j0 + 2u), packed_code(words, shift + 3u, k, j0 + 3u)),
        vec4<f32>(packed_code(words, shift + 4u, k, j0 + 4u),
            packed_code(words, shift + 5u, k, j0 + 5u), packed_code(words, shift + 6u, k, j0 + 6u),
            packed_code(words, shift + 7u, k, j0 + 7u)),
        vec4<f32>(packed_code(words, shift + 8u, k, j0 + 8u),
            packed_code(words, shift + 9u, k, j0 + 9u), packed_code(words, shift + 10u, k, j0 + 10u),
            packed_code(words, shift + 11u, k, j0 + 11u)),
        vec4<f32>(packed_code(words, shift + 12u, k, j0 + 12u),
            packed_code(words, shift + 13u, k, j0 + 13u),
            packed_code(words, shift + 14u, k, j0 + 14u),
            packed_code(words, shift + 15u, k, j0 + 15u)));
}

// The same from a packed B of unit row stride, whose column j (element first + j * s_col
// onwards) holds this pass's eight codes in one or two words: each lane loads the words of two
// columns and passes them to the others, each of which takes its own row k = k0 + lane from them.
fn packed_transposed_cols(first: u32, k: u32, j0: u32) -> Cols {
    let lane = k % LANES;
    let j = j0 + 2u * lane;
    let mine = vec4<u32>(column_words(first, j), column_words(first, j + 1u));
    let w0 = subgroupBroadcast(mine, 0u);
    let w1 = subgroupBroadcast(mine, 1u);
    let w2 = subgroupBroadcast(mine, 2u);
    let w3 = subgroupBroadcast(mine, 3u);
    let w4 = subgroupBroadcast(mine, 4u);
    let w5 = subgroupBroadcast(mine, 5u);
    let w6 = subgroupBroadcast(mine, 6u);
    let w7 = subgroupBroadcast(mine, 7u);
    return Cols(
        vec4<f32>(column_code(w0.xy, first, lane, k, j0), column_code(w0.zw, first, lane, k, j0 + 1u),
            column_code(w1.xy, first, lane, k, j0 + 2u), column_code(w1.zw, first, lane, k, j0 + 3u)),
        vec4<f32>(column_code(w2.xy, first, lane, k, j0 + 4u),
            column_code(w2.zw, first, lane, k, j0 + 5u), column_code(w3.xy, first, lane, k, j0 + 6u),
            column_code(w3.zw, first, lane, k, j0 + 7u)),
        vec4<f32>(column_code(w4.xy, first, lane, k, j0 + 8u),
            column_code(w4.zw, first, lane, k, j0 + 9u), column_code(w5.xy, first, lane, k, j0 + 10u),
            column_code(w5.zw, first, lane, k, j0 + 11u)),
        vec4<f32>(column_code(w6.xy, first, lane, k, j0 + 12u),
            column_code(w6.zw, first, lane, k, j0 + 13u), column_code(w7.xy, first, lane, k, j0 + 14u),
            column_code(w7.zw, first, lane, k, j0 + 15u)));
}

// The words holding codes first + j * s_col onwards (column j's of this pass); zero past B.
fn column_words(first: u32, j: u32) -> vec2<u32> {
    if (j >= prm.n) {
        return vec2<u32>(0u);
    }
    let per_word = codes_per_word();
    let w = at(PACKED_BINDING) + prm.b_packed_off + (first + j * prm.b.s_col) / per_word;
    return vec2<u32>(packed[w], packed[w + 1u]);
}

fn column_code(words: vec2<u32>, first: u32, lane: u32, k: u32, j: u32) -> f32 {
    return packed_code(words, (first + j * prm.b.s_col) % codes_per_word() + lane, k, j);
}

// The code at position `pos` of two consecutive words (the shaders/quantize.wgsl packing) of
// weight (k, j); zero past the matrix.
fn packed_code(words: vec2<u32>, pos: u32, k: u32, j: u32) -> f32 {
    let per_word = codes_per_word();
    let second = pos >= per_word;
    let code = code_in_word(select(words.x, words.y, second), select(pos, pos - per_word, second));
    return select(0.0, f32(code), k < prm.k && j < prm.n);
}

// Columns k0..k0 + 7 of A on the invocation's rows (advancing the position *p past them).
fn a_pass(base: u32, i0: u32, k0: u32, p: ptr<function, KPos>) -> Column8 {
    if (FORM == INT8) {
        return int8_pass(base, i0, k0);
    }
    return Column8(
        a_rows(base, i0, k0, p), a_rows(base, i0, k0 + 1u, p),
        a_rows(base, i0, k0 + 2u, p), a_rows(base, i0, k0 + 3u, p),
        a_rows(base, i0, k0 + 4u, p), a_rows(base, i0, k0 + 5u, p),
        a_rows(base, i0, k0 + 6u, p), a_rows(base, i0, k0 + 7u, p));
}

// The same from int8 codes: two words per row (rows start on a word and end in zero codes; k0
// is a multiple of 8).
fn int8_pass(base: u32, i0: u32, k0: u32) -> Column8 {
    let r0 = code_words(base, i0, k0);
    let r1 = code_words(base, i0 + 1u, k0);
    let r2 = code_words(base, i0 + 2u, k0);
    let r3 = code_words(base, i0 + 3u, k0);
    return Column8(
        codes_at(r0.x, r1.x, r2.x, r3.x, 0u), codes_at(r0.x, r1.x, r2.x, r3.x, 8u),
        codes_at(r0.x, r1.x, r2.x, r3.x, 16u), codes_at(r0.x, r1.x, r2.x, r3.x, 24u),
        codes_at(r0.y, r1.y, r2.y, r3.y, 0u), codes_at(r0.y, r1.y, r2.y, r3.y, 8u),
        codes_at(r0.y, r1.y, r2.y, r3.y, 16u), codes_at(r0.y, r1.y, r2.y, r3.y, 24u));
}

fn code_words(base: u32, i: u32, k0: u32) -> vec2<u32> {
    if (i >= prm.m) {
        return vec2<u32>(0u);
    }
    let w = at(A_CODES_BINDING) + (base + i * prm.a.s_row + k0) / 4u;
    return vec2<u32>(a_codes[w], select(0u, a_codes[w + 1u], k0 + 4u < prm.k));
}

fn codes_at(r0: u32, r1: u32, r2: u32, r3: u32, bit: u32) -> vec4<f32> {
    return vec4<f32>(vec4<i32>(extractBits(bitcast<i32>(r0), bit, 8u),
        extractBits(bitcast<i32>(r1), bit, 8u), extractBits(bitcast<i32>(r2), bit, 8u),
        extractBits(bitcast<i32>(r3), bit, 8u)));
}

// Column k of A on the invocation's rows (at position *p, which it advances); zero past the matrix.
fn a_rows(base: u32, i0: u32, k: u32, p: ptr<function, KPos>) -> vec4<f32> {
    let off = k_at(*p, prm.a.s_col, prm.a_k_hi);
    *p = next_k(*p);
    if (FORM == CODES) {
        return transposed_codes(base + off, i0, k);
    }
    return vec4<f32>(a_value(base, i0, k, off), a_value(base, i0 + 1u, k, off),
        a_value(base, i0 + 2u, k, off), a_value(base, i0 + 3u, k, off));
}

// The same from the int8 codes of a transposed A (a weight gradient a^T dy, the only use of
// codes read as code * step): rows i0..i0 + 3 are the four bytes of one word, and share column
// k's step.
fn transposed_codes(e: u32, i0: u32, k: u32) -> vec4<f32> {
    if (k >= prm.k) {
        return vec4<f32>(0.0);
    }
    let word = bitcast<i32>(a_codes[at(A_CODES_BINDING) + (e + i0) / 4u]);
    let codes = vec4<i32>(extractBits(word, 0u, 8u), extractBits(word, 8u, 8u),
        extractBits(word, 16u, 8u), extractBits(word, 24u, 8u));
    let live = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u) < vec4<u32>(prm.m);
    return select(vec4<f32>(0.0), vec4<f32>(codes) * a_step(i0, k), live);
}

fn a_value(base: u32, i: u32, k: u32, off: u32) -> f32 {
    if (i < prm.m && k < prm.k) {
        return a_element(base + i * prm.a.s_row + off, i, k, false);
    }
    return 0.0;
}

// One contraction step: row a.x of A times B's row s into acc.r0, and so on.
fn step(acc: Block, a: vec4<f32>, s: Cols) -> Block {
    return Block(fma_cols(a.x, s, acc.r0), fma_cols(a.y, s, acc.r1), fma_cols(a.z, s, acc.r2),
        fma_cols(a.w, s, acc.r3));
}

fn fma_cols(x: f32, s: Cols, acc: Cols) -> Cols {
    let v = vec4<f32>(x);
    return Cols(fma(v, s.q0, acc.q0), fma(v, s.q1, acc.q1), fma(v, s.q2, acc.q2),
        fma(v, s.q3, acc.q3));
}

// Row i of the invocation's sums, times the weight scale (and for integer sums, the row's step).
fn store_cols(batch: u32, i: u32, j0: u32, sums: Cols, weight_scale: f32) {
    var scale = weight_scale;
    if (FORM == INT8 && i < prm.m) {
        scale = weight_scale * a_step(i, 0u);
    }
    store_row(batch, i, j0, sums.q0 * scale);
    store_row(batch, i, j0 + 4u, sums.q1 * scale);
    store_row(batch, i, j0 + 8u, sums.q2 * scale);
    store_row(batch, i, j0 + 12u, sums.q3 * scale);
}
