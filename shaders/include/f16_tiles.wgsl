// Products on 16x16 f16 tiles with f32 accumulation (tensor cores), shared by the cooperative-
// matrix kernel (shaders/matmul_coop.wgsl) and its plain-WGSL emulation
// (shaders/matmul_f16.wgsl). What the tiles multiply comes from an operand source compiled
// with them:
// - shaders/include/engine_tile_operands.wgsl, the engine's products: integer ones (int8
//   activation codes times binary or ternary weight codes; f16 holds every factor and every
//   product exactly, and f32 every partial sum, below 2^24, so the result is the exact integer
//   sum whatever the order of summation), and float ones split with a scale per panel.
// - shaders/include/split_tile_operands.wgsl, f32 operands split as src/f16_split.rs says,
//   x * scale = hi + lo / LO_SCALE, and C = (A_hi B_hi + (A_hi B_lo + A_lo B_hi) / LO_SCALE) /
//   (scale_a scale_b) (the conformance launcher of src/engine/f16_tiles.rs).
// The source defines SPLIT, tile_at (the workgroup's output tile), tile_k (the contraction's
// length), tile_a and tile_b (elements, zero outside the operands), prepare_tile (what the
// workgroup finds before the product: the split's scales), tile_scales and tile_store.

const T: u32 = 16u;
const TILE_ELEMENTS: u32 = 256u;

// A workgroup's output tile: its first row and column, and its batch within the model.
struct TileAt {
    row: u32,
    col: u32,
    batch: u32,
}

// The current contraction step's tiles: A's rows tile.row.., columns k0..; B's rows k0..,
// columns tile.col.., both row-major 16 x 16 (the low parts only when SPLIT).
var<workgroup> a_hi: array<f16, TILE_ELEMENTS>;
var<workgroup> a_lo: array<f16, TILE_ELEMENTS>;
var<workgroup> b_hi: array<f16, TILE_ELEMENTS>;
var<workgroup> b_lo: array<f16, TILE_ELEMENTS>;

// The high and low parts of x * scale (x itself, exactly, for integer codes).
fn split(x: f32, scale: f32) -> vec2<f16> {
    if !SPLIT {
        return vec2<f16>(f16(x), 0.0h);
    }
    let scaled = x * scale;
    let hi = f16(scaled);
    return vec2<f16>(hi, f16((scaled - f32(hi)) * LO_SCALE));
}

// Thread `t` of `threads` loads its share of both tiles of contraction step k0.
fn load_tiles(t: u32, threads: u32, tile: TileAt, k0: u32) {
    let scales = tile_scales();
    for (var e = t; e < TILE_ELEMENTS; e += threads) {
        let r = e / T;
        let q = e % T;
        let sa = split(tile_a(tile, tile.row + r, k0 + q), scales.x);
        let sb = split(tile_b(tile, k0 + r, tile.col + q), scales.y);
        a_hi[e] = sa.x;
        b_hi[e] = sb.x;
        if SPLIT {
            a_lo[e] = sa.y;
            b_lo[e] = sb.y;
        }
    }
}
