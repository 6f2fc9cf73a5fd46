// The operands of the f16 tile products' conformance launcher (src/engine/f16_tiles.rs), for
// shaders/include/f16_tiles.wgsl: plain row-major f32 matrices, C (m x n) = A (m x k) B (k x n),
// either integer codes (|x| <= 127) multiplied exactly or, with SPLIT, f32 values split with
// one scale per operand.

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

fn tile_at(wg: vec3<u32>) -> TileAt {
    return TileAt(wg.y * T, wg.x * T, 0u);
}

fn tile_k() -> u32 {
    return tp.k;
}

fn tile_a(tile: TileAt, row: u32, k: u32) -> f32 {
    if row < tp.m && k < tp.k {
        return a[row * tp.k + k];
    }
    return 0.0;
}

fn tile_b(tile: TileAt, k: u32, col: u32) -> f32 {
    if k < tp.k && col < tp.n {
        return b[k * tp.n + col];
    }
    return 0.0;
}

// The scales are the launcher's, one per operand.
fn prepare_tile(t: u32, threads: u32, tile: TileAt) {}

fn tile_scales() -> vec2<f32> {
    return vec2<f32>(tp.scale_a, tp.scale_b);
}

// Element (row, col) of C from its two accumulators, if it lies inside C.
fn tile_store(tile: TileAt, row: u32, col: u32, high: f32, cross: f32) {
    if row < tp.m && col < tp.n {
        c[row * tp.n + col] = (high + cross / LO_SCALE) / (tp.scale_a * tp.scale_b);
    }
}
