// The f16 tile product of shaders/include/f16_tiles.wgsl on cooperative matrices (tensor cores
// through VK_KHR_cooperative_matrix or Metal's simdgroup matrices): one subgroup per 16x16
// output tile, the tiles staged in workgroup memory by the shared loader, the products
// accumulated in f32 matrices and combined through workgroup memory, so that ragged edges are
// written element by element.

// The subgroup the cooperative matrices span: the engine uses this kernel only on adapters
// whose subgroups are exactly this wide (src/engine/device.rs).
const SUBGROUP: u32 = 32u;

var<workgroup> high_out: array<f32, TILE_ELEMENTS>;
var<workgroup> cross_out: array<f32, TILE_ELEMENTS>;

@compute @workgroup_size(SUBGROUP, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
    let tile = tile_at(wg);
    prepare_tile(t, SUBGROUP, tile);
    var high = coop_mat16x16<f32, C>();
    var cross = coop_mat16x16<f32, C>();
    for (var k0 = 0u; k0 < tile_k(); k0 += T) {
        load_tiles(t, SUBGROUP, tile, k0);
        workgroupBarrier();
        let ah = coopLoadT<coop_mat16x16<f16, A>>(&a_hi[0], T);
        let bh = coopLoadT<coop_mat16x16<f16, B>>(&b_hi[0], T);
        high = coopMultiplyAdd(ah, bh, high);
        if SPLIT {
            cross = coopMultiplyAdd(ah, coopLoadT<coop_mat16x16<f16, B>>(&b_lo[0], T), cross);
            cross = coopMultiplyAdd(coopLoadT<coop_mat16x16<f16, A>>(&a_lo[0], T), bh, cross);
        }
        workgroupBarrier();
    }
    coopStoreT(high, &high_out[0], T);
    coopStoreT(cross, &cross_out[0], T);
    workgroupBarrier();
    for (var e = t; e < TILE_ELEMENTS; e += SUBGROUP) {
        tile_store(tile, tile.row + e / T, tile.col + e % T, high_out[e], cross_out[e]);
    }
}
