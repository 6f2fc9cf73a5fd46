// Batched, strided matrix product with an optional residual, accumulation and ReLU:
//   C[b,i,j] (+)= sum_k A[b,i,k] B[b,k,j] (+ R[b,i,j])
// Every operand is addressed through strides, so transposes, broadcast rows (stride 0) and
// per-head weight layouts need no copies. The contraction index k may be split in two,
// k = k_hi * k_div + k_lo, with a stride for each part: this sums over (head, d_head) pairs of
// [H, ., Dh] tensors in one product. Each thread computes a 4x4 register block of a 64x64 tile.

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
    _pad: u32,
}

const ADD_RESIDUAL: u32 = 1u;
const ACCUMULATE: u32 = 2u;

const TILE: u32 = 64u;
const TK: u32 = 16u;

@group(0) @binding(0) var<uniform> prm: Params;
@group(0) @binding(1) var<storage, read> a_buf: array<f32>;
@group(0) @binding(2) var<storage, read> b_buf: array<f32>;
@group(0) @binding(3) var<storage, read_write> c_buf: array<f32>;
@group(0) @binding(4) var<storage, read> r_buf: array<f32>;

var<workgroup> a_tile: array<f32, 1024>; // [TK][TILE], k-major
var<workgroup> b_tile: array<f32, 1024>; // [TK][TILE]

fn k_offset(k: u32, s_lo: u32, s_hi: u32) -> u32 {
    return (k / prm.k_div) * s_hi + (k % prm.k_div) * s_lo;
}

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let batch = wg.z;
    let row0 = wg.y * TILE;
    let col0 = wg.x * TILE;
    let tx = lid % 16u;
    let ty = lid / 16u;
    let a_base = prm.a.off + batch * prm.a.s_batch;
    let b_base = prm.b.off + batch * prm.b.s_batch;

    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < prm.k; k0 += TK) {
        // 256 threads load a 64x16 slice of A and a 16x64 slice of B, 4 elements each.
        for (var t = 0u; t < 4u; t++) {
            let e = lid + t * 256u;
            let i = e / TK;
            let kk = e % TK;
            var av = 0.0;
            if (row0 + i < prm.m && k0 + kk < prm.k) {
                av = a_buf[a_base + (row0 + i) * prm.a.s_row + k_offset(k0 + kk, prm.a.s_col, prm.a_k_hi)];
            }
            a_tile[kk * TILE + i] = av;
            let kb = e / TILE;
            let j = e % TILE;
            var bv = 0.0;
            if (k0 + kb < prm.k && col0 + j < prm.n) {
                bv = b_buf[b_base + k_offset(k0 + kb, prm.b.s_row, prm.b_k_hi) + (col0 + j) * prm.b.s_col];
            }
            b_tile[kb * TILE + j] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var av: array<f32, 4>;
            var bv: array<f32, 4>;
            for (var r = 0u; r < 4u; r++) {
                av[r] = a_tile[kk * TILE + ty + r * 16u];
                bv[r] = b_tile[kk * TILE + tx + r * 16u];
            }
            for (var r = 0u; r < 4u; r++) {
                for (var c = 0u; c < 4u; c++) {
                    acc[r][c] = fma(av[r], bv[c], acc[r][c]);
                }
            }
        }
        workgroupBarrier();
    }

    for (var r = 0u; r < 4u; r++) {
        let i = row0 + ty + r * 16u;
        if (i >= prm.m) {
            continue;
        }
        for (var c = 0u; c < 4u; c++) {
            let j = col0 + tx + c * 16u;
            if (j >= prm.n) {
                continue;
            }
            var v = acc[r][c];
            if ((prm.flags & ADD_RESIDUAL) != 0u) {
                v += r_buf[prm.r.off + batch * prm.r.s_batch + i * prm.r.s_row + j * prm.r.s_col];
            }
            let ci = prm.c.off + batch * prm.c.s_batch + i * prm.c.s_row + j * prm.c.s_col;
            if ((prm.flags & ACCUMULATE) != 0u) {
                v += c_buf[ci];
            }
            c_buf[ci] = v;
        }
    }
}
