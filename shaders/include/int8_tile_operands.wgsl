// The engine's integer products on f16 tiles (shaders/include/f16_tiles.wgsl), after
// shaders/include/matmul_operands.wgsl: A int8 codes (rows of bytes), B a packed binary or
// ternary weight matrix, read as shaders/matmul.wgsl's int8_main reads them. The exact integer
// sum is scaled once by the weight scale and the row's step, in int8_main's order, so both
// kernels write the same bits; `store` then adds what PRODUCT_FLAGS says.

const SPLIT: bool = false;

fn tile_at(wg: vec3<u32>) -> TileAt {
    return TileAt(wg.y * T, wg.x * T, enter_model_grid(wg.z));
}

fn tile_k() -> u32 {
    return prm.k;
}

fn tile_a(tile: TileAt, row: u32, k: u32) -> f32 {
    if row < prm.m && k < prm.k {
        return f32(a_code(prm.a.off + tile.batch * prm.a.s_batch + row * prm.a.s_row + k));
    }
    return 0.0;
}

fn tile_b(tile: TileAt, k: u32, col: u32) -> f32 {
    if k < prm.k && col < prm.n {
        // Indexed relative to the weight matrix, as weight_code wants.
        let base = prm.b.off + tile.batch * prm.b.s_batch - prm.b_param_off;
        return f32(weight_code(base + k * prm.b.s_row + col * prm.b.s_col));
    }
    return 0.0;
}

fn tile_scales() -> vec2<f32> {
    return vec2<f32>(1.0);
}

fn tile_store(tile: TileAt, row: u32, col: u32, high: f32, cross: f32) {
    if row < prm.m && col < prm.n {
        let weight_scale = scales[at(SCALES_BINDING) + prm.b_scale];
        store(tile.batch, row, col, high * (weight_scale * a_step(row, 0u)));
    }
}
