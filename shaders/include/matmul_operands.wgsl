// The operands of shaders/matmul.wgsl and shaders/matmul_lanes.wgsl, two implementations of one
// batched, strided matrix product with an optional residual, bias and accumulation:
//   C[b,i,j] (+)= sum_k A[b,i,k] B[b,k,j] (+ R[b,i,j]) (+ bias[b,j])
// Every operand is addressed through strides, so transposes, broadcast rows (stride 0) and
// per-head weight layouts need no copies. The contraction index k may be split in two,
// k = k_hi * k_div + k_lo, with a stride for each part: this sums over (head, d_head) pairs of
// [H, ., Dh] tensors in one product.
//
// The operands may be:
// - A and B floats, or B a packed binary or ternary weight matrix (its codes, the sums scaled
//   once by the matrix's scale);
// - A int8 codes (shaders/norm.wgsl, PACK) read as code * step (a weight gradient a^T dy);
// - A int8 codes times a packed weight matrix, summed exactly as integers and scaled once:
//   C = sum * (weight scale * row step). Such an A counts bytes (codes), with column stride 1,
//   and the product never splits K.
// shaders/matmul.wgsl has an entry point for each (`main`, `main_codes`, `int8_main`);
// shaders/matmul_lanes.wgsl one, specialised per pipeline.

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
    bias_off: u32,
    bias_s_batch: u32,
    k_splits: u32,
    // Contraction length of one chunk (k itself when k_splits is 1).
    k_chunk: u32,
    // B is a quantised weight matrix read from its packed codes (its packing, PACKED_* of
    // shaders/include/packed_codes.wgsl, or 0: from b_buf):
    // the matrix starts at element b_param_off of the parameters, its codes at word
    // b_packed_off of `packed`, its scale is scales[b_scale].
    b_packed: u32,
    b_param_off: u32,
    b_packed_off: u32,
    b_scale: u32,
    // A's int8 codes: element (i, k) has the step
    // a_steps[a_steps_off + i * a_steps_row + k * a_steps_col].
    a_steps_off: u32,
    a_steps_row: u32,
    a_steps_col: u32,
}

// What a product adds to its sums (ADD_* bits): a constant of each pipeline, so that it loads
// only the operands it has (lavapipe would run the loads of every branch).
override PRODUCT_FLAGS: u32;

const ADD_RESIDUAL: u32 = 1u;
const ACCUMULATE: u32 = 2u;
const ADD_BIAS: u32 = 4u;

@group(0) @binding(UNIFORM_BINDING) var<uniform> prm: Params;
@group(0) @binding(A_BUF_BINDING) var<storage, read> a_buf: array<f32>;
@group(0) @binding(B_BUF_BINDING) var<storage, read> b_buf: array<f32>;
@group(0) @binding(C_BUF_BINDING) var<storage, read_write> c_buf: array<f32>;
@group(0) @binding(R_BUF_BINDING) var<storage, read> r_buf: array<f32>;
@group(0) @binding(BIAS_BUF_BINDING) var<storage, read> bias_buf: array<f32>;
// Packed quantised weights and their scales (shaders/quantize.wgsl).
@group(0) @binding(PACKED_BINDING) var<storage, read> packed: array<u32>;
@group(0) @binding(SCALES_BINDING) var<storage, read> scales: array<f32>;
// A's packed int8 codes and its rows' steps.
@group(0) @binding(A_CODES_BINDING) var<storage, read> a_codes: array<u32>;
@group(0) @binding(A_STEPS_BINDING) var<storage, read> a_steps: array<f32>;

// Position k = hi * k_div + lo along the contraction, advanced without dividing (a division
// per load would cost lavapipe more than the product, and a GPU more than its multiply-adds).
struct KPos {
    lo: u32,
    hi: u32,
}

fn k_pos(k: u32) -> KPos {
    return KPos(k % prm.k_div, k / prm.k_div);
}

fn next_k(p: KPos) -> KPos {
    let wrap = p.lo + 1u == prm.k_div;
    return KPos(select(p.lo + 1u, 0u, wrap), select(p.hi, p.hi + 1u, wrap));
}

// The position `steps` further on.
fn skip_k(p: KPos, steps: u32) -> KPos {
    var q = KPos(p.lo + steps, p.hi);
    while (q.lo >= prm.k_div) {
        q = KPos(q.lo - prm.k_div, q.hi + 1u);
    }
    return q;
}

fn k_at(p: KPos, s_lo: u32, s_hi: u32) -> u32 {
    return p.hi * s_hi + p.lo * s_lo;
}

// Element (i, k) of A, stored at index e of a_buf or, when `codes`, of the bytes of a_codes.
fn a_element(e: u32, i: u32, k: u32, codes: bool) -> f32 {
    if (codes) {
        return f32(a_code(e)) * a_step(i, k);
    }
    return a_buf[at(A_BUF_BINDING) + e];
}

// The int8 code at byte e of a_codes.
fn a_code(e: u32) -> i32 {
    return extractBits(bitcast<i32>(a_codes[at(A_CODES_BINDING) + e / 4u]), 8u * (e % 4u), 8u);
}

fn a_step(i: u32, k: u32) -> f32 {
    return a_steps[at(A_STEPS_BINDING) + prm.a_steps_off + i * prm.a_steps_row
        + k * prm.a_steps_col];
}

// The element of B at index e of b_buf, or its code when B is a packed weight matrix (whose
// elements are indexed from the parameters' start).
fn b_element(e: u32, packed: bool) -> f32 {
    if (packed) {
        return f32(weight_code(e - prm.b_param_off));
    }
    return b_buf[at(B_BUF_BINDING) + e];
}

// The code (-1, 0 or +1) of element e of the packed weight matrix; the products multiply their
// sums by the matrix's scale once, at the end.
fn weight_code(e: u32) -> i32 {
    let per_word = codes_per_word();
    return code_in_word(packed[at(PACKED_BINDING) + prm.b_packed_off + e / per_word], e % per_word);
}

// Codes per packed word of B (shaders/include/packed_codes.wgsl).
fn codes_per_word() -> u32 {
    return packed_codes_per_word(prm.b_packed);
}

// Code p of a packed word of B.
fn code_in_word(word: u32, p: u32) -> i32 {
    return packed_code_in_word(prm.b_packed, word, p);
}

// Columns j0..j0 + 3 of row i (those inside C).
fn store_row(batch: u32, i: u32, j0: u32, acc: vec4<f32>) {
    if (i >= prm.m) {
        return;
    }
    // Unrolled: lavapipe indexes a vector by a loop counter through memory.
    if (j0 < prm.n) {
        store(batch, i, j0, acc.x);
    }
    if (j0 + 1u < prm.n) {
        store(batch, i, j0 + 1u, acc.y);
    }
    if (j0 + 2u < prm.n) {
        store(batch, i, j0 + 2u, acc.z);
    }
    if (j0 + 3u < prm.n) {
        store(batch, i, j0 + 3u, acc.w);
    }
}

fn store(batch: u32, i: u32, j: u32, product: f32) {
    var v = product;
    if ((PRODUCT_FLAGS & ADD_RESIDUAL) != 0u) {
        v += r_buf[at(R_BUF_BINDING) + prm.r.off + batch * prm.r.s_batch + i * prm.r.s_row
            + j * prm.r.s_col];
    }
    if ((PRODUCT_FLAGS & ADD_BIAS) != 0u) {
        v += bias_buf[at(BIAS_BUF_BINDING) + prm.bias_off + batch * prm.bias_s_batch + j];
    }
    let ci = at(C_BUF_BINDING) + prm.c.off + batch * prm.c.s_batch + i * prm.c.s_row
        + j * prm.c.s_col;
    if ((PRODUCT_FLAGS & ACCUMULATE) != 0u) {
        v += c_buf[ci];
    }
    c_buf[ci] = v;
}
