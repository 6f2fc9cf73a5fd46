// Products on 16x16 f16 tiles with f32 accumulation (tensor cores), shared by the cooperative-
// matrix kernel (shaders/matmul_coop.wgsl) and its plain-WGSL emulation
// (shaders/matmul_f16.wgsl): C (m x n) = A (m x k) B (k x n), all row-major f32 in storage.
// With SPLIT, each operand is split as src/reference/f16_split.rs says: x * scale = hi + lo /
// LO_SCALE, and C = (A_hi B_hi + (A_hi B_lo + A_lo B_hi) / LO_SCALE) / (scale_a scale_b).
// Without it, the operands are integer codes (|x| <= 127), which f16 holds exactly, and so are
// the products: the result is the exact integer sum. (LO_SCALE comes from src/f16_split.rs;
// the kernel's file, with its `enable`s, comes first.)

struct TileParams {
    m: u32,
    n: u32,
    k: u32,
    _pad: u32,
    scale_a: f32,
    scale_b: f32,
    _pad2: vec2<u32>,
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> c: array<f32>;
@group(0) @binding(3) var<uniform> tp: TileParams;

override SPLIT: bool = true;

const T: u32 = 16u;
const TILE_ELEMENTS: u32 = 256u;

// The current contraction step's tiles: A's rows tile_row.., columns k0..; B's rows k0..,
// columns tile_col.., both row-major 16 x 16.
var<workgroup> a_hi: array<f16, TILE_ELEMENTS>;
var<workgroup> a_lo: array<f16, TILE_ELEMENTS>;
var<workgroup> b_hi: array<f16, TILE_ELEMENTS>;
var<workgroup> b_lo: array<f16, TILE_ELEMENTS>;

// The high and low parts of x * scale (the low part zero for integer codes).
fn split(x: f32, scale: f32) -> vec2<f16> {
    if !SPLIT {
        return vec2<f16>(f16(x), 0.0h);
    }
    let scaled = x * scale;
    let hi = f16(scaled);
    return vec2<f16>(hi, f16((scaled - f32(hi)) * LO_SCALE));
}

// A's and B's elements, zero beyond the matrices' edges.
fn a_at(row: u32, col: u32) -> f32 {
    if row < tp.m && col < tp.k { return a[row * tp.k + col]; }
    return 0.0;
}
fn b_at(row: u32, col: u32) -> f32 {
    if row < tp.k && col < tp.n { return b[row * tp.n + col]; }
    return 0.0;
}

// Thread `t` of `threads` loads its share of both tiles of contraction step k0.
fn load_tiles(t: u32, threads: u32, tile_row: u32, tile_col: u32, k0: u32) {
    for (var e = t; e < TILE_ELEMENTS; e += threads) {
        let r = e / T;
        let q = e % T;
        let sa = split(a_at(tile_row + r, k0 + q), tp.scale_a);
        let sb = split(b_at(k0 + r, tile_col + q), tp.scale_b);
        a_hi[e] = sa.x;
        a_lo[e] = sa.y;
        b_hi[e] = sb.x;
        b_lo[e] = sb.y;
    }
}

// Element e of the output tile from its two accumulators, if it lies inside C.
fn store(tile_row: u32, tile_col: u32, e: u32, high: f32, cross: f32) {
    let row = tile_row + e / T;
    let col = tile_col + e % T;
    if row < tp.m && col < tp.n {
        c[row * tp.n + col] = (high + cross / LO_SCALE) / (tp.scale_a * tp.scale_b);
    }
}
