// The engine's products on f16 tiles (shaders/include/f16_tiles.wgsl), after
// shaders/include/matmul_operands.wgsl, in the form TILE_FORM names (a pipeline constant, so
// that each pipeline loads only its own operands):
// - INT8_TILES: A int8 codes (rows of bytes), B a packed binary or ternary weight matrix, read as
//   shaders/matmul.wgsl's int8_main reads them. The exact integer sum is scaled once by the
//   weight scale and the row's step, in int8_main's order, so both kernels write the same bits.
// - FLOAT_TILES, CODE_TILES: `main`'s and `main_codes`'s operands (A floats, or int8 codes read
//   as code × step; B floats, or a packed weight matrix's codes, scaled once at the end), each
//   split into f16 high and low parts with one scale per operand panel: the workgroup's 16 rows
//   of A and 16 columns of B over the whole contraction, found before the product
//   (`prepare_tile`), as src/f16_split.rs splits them.
// `store` then adds what PRODUCT_FLAGS says.

const INT8_TILES: u32 = 0u;
const FLOAT_TILES: u32 = 1u;
const CODE_TILES: u32 = 2u;
override TILE_FORM: u32;

override SPLIT: bool = TILE_FORM != INT8_TILES;

// The split's scales of this workgroup's panels of A and B, and the scratch that finds them.
var<workgroup> panel_scales: vec2<f32>;
var<workgroup> panel_max_a: array<f32, TILE_ELEMENTS>;
var<workgroup> panel_max_b: array<f32, TILE_ELEMENTS>;

fn tile_at(wg: vec3<u32>) -> TileAt {
    return TileAt(wg.y * T, wg.x * T, enter_model_grid(wg.z));
}

fn tile_k() -> u32 {
    return prm.k;
}

// Offset of contraction step k in an operand with strides s_lo (k_lo) and s_hi (k_hi): the
// division into (k_hi, k_lo) only for a product whose contraction is split (k_div < k), since a
// division per element would cost more than the element's share of the product.
fn k_offset(k: u32, s_lo: u32, s_hi: u32) -> u32 {
    if prm.k_div >= prm.k {
        return k * s_lo;
    }
    return k_at(k_pos(k), s_lo, s_hi);
}

fn tile_a(tile: TileAt, row: u32, k: u32) -> f32 {
    if row >= prm.m || k >= prm.k {
        return 0.0;
    }
    let base = prm.a.off + tile.batch * prm.a.s_batch;
    if TILE_FORM == INT8_TILES {
        return f32(a_code(base + row * prm.a.s_row + k));
    }
    let off = row * prm.a.s_row + k_offset(k, prm.a.s_col, prm.a_k_hi);
    return a_element(base + off, row, k, TILE_FORM == CODE_TILES);
}

fn tile_b(tile: TileAt, k: u32, col: u32) -> f32 {
    if k >= prm.k || col >= prm.n {
        return 0.0;
    }
    if TILE_FORM == INT8_TILES {
        // Indexed relative to the weight matrix, as weight_code wants.
        let base = prm.b.off + tile.batch * prm.b.s_batch - prm.b_param_off;
        return f32(weight_code(base + k * prm.b.s_row + col * prm.b.s_col));
    }
    let off = k_offset(k, prm.b.s_row, prm.b_k_hi) + col * prm.b.s_col;
    return b_element(prm.b.off + tile.batch * prm.b.s_batch + off, prm.b_packed != 0u);
}

// The power of two that brings a panel's largest magnitude into [2^14, 2^15), at most 2^127; 1
// for a panel of zeros (src/f16_split.rs, split_scale).
fn split_scale(max_abs: f32) -> f32 {
    if max_abs == 0.0 {
        return 1.0;
    }
    return ldexp(1.0, min(15 - frexp(max_abs).exp, 127));
}

// Thread `t` of `threads` (a power of two up to TILE_ELEMENTS) takes its share of the panels'
// largest magnitudes; the workgroup reduces them to the split's scales. Call from uniform
// control flow.
fn prepare_tile(t: u32, threads: u32, tile: TileAt) {
    if !SPLIT {
        return;
    }
    var max_a = 0.0;
    var max_b = 0.0;
    for (var e = t; e < T * tile_k(); e += threads) {
        max_a = max(max_a, abs(tile_a(tile, tile.row + e % T, e / T)));
        max_b = max(max_b, abs(tile_b(tile, e / T, tile.col + e % T)));
    }
    panel_max_a[t] = max_a;
    panel_max_b[t] = max_b;
    for (var half = threads / 2u; half > 0u; half /= 2u) {
        workgroupBarrier();
        if t < half {
            panel_max_a[t] = max(panel_max_a[t], panel_max_a[t + half]);
            panel_max_b[t] = max(panel_max_b[t], panel_max_b[t + half]);
        }
    }
    workgroupBarrier();
    if t == 0u {
        panel_scales = vec2<f32>(split_scale(panel_max_a[0]), split_scale(panel_max_b[0]));
    }
    workgroupBarrier();
}

fn tile_scales() -> vec2<f32> {
    return panel_scales;
}

fn tile_store(tile: TileAt, row: u32, col: u32, high: f32, cross: f32) {
    if row >= prm.m || col >= prm.n {
        return;
    }
    if TILE_FORM == INT8_TILES {
        let weight_scale = scales[at(SCALES_BINDING) + prm.b_scale];
        store(tile.batch, row, col, high * (weight_scale * a_step(row, 0u)));
        return;
    }
    // Unscaled one factor at a time: the product of two large scales may overflow.
    var v = (high + cross / LO_SCALE) / panel_scales.x / panel_scales.y;
    if prm.b_packed != 0u {
        v *= scales[at(SCALES_BINDING) + prm.b_scale];
    }
    store(tile.batch, row, col, v);
}
