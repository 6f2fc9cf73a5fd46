// The f16 tile product of shaders/include/f16_tiles.wgsl in plain WGSL, one thread per output
// element of a 16x16 tile: what a cooperative-matrix multiply-add computes, on any adapter with
// f16 arithmetic (lavapipe has it), so that CI checks the tiles' arithmetic where no tensor
// cores are.

@compute @workgroup_size(16, 16, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let tile = tile_at(wg);
    let e = lid.y * T + lid.x;
    prepare_tile(e, TILE_ELEMENTS, tile);
    var high = 0.0;
    var cross = 0.0;
    for (var k0 = 0u; k0 < tile_k(); k0 += T) {
        load_tiles(e, TILE_ELEMENTS, tile, k0);
        workgroupBarrier();
        for (var kk = 0u; kk < T; kk++) {
            let ah = f32(a_hi[lid.y * T + kk]);
            let bh = f32(b_hi[kk * T + lid.x]);
            high += ah * bh;
            if SPLIT {
                cross += ah * f32(b_lo[kk * T + lid.x]) + f32(a_lo[lid.y * T + kk]) * bh;
            }
        }
        workgroupBarrier();
    }
    tile_store(tile, tile.row + lid.y, tile.col + lid.x, high, cross);
}
