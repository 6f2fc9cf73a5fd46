// Included before every shader file (src/engine/kernels.rs, `prelude`).

// The model axis: an engine may train several models of one shape at once. Each dispatch runs
// its per-model grid once per model, stacked along z, and every storage buffer holds one
// equal-sized slice per model; `model_axis.strides` gives the slice length of the buffer at each
// binding. Kernels call `enter_model` first and index every buffer from `at(binding)`.
struct ModelAxis {
    // Elements per model of the buffer at binding b: strides[b / 4][b % 4].
    strides: array<vec4<u32>, 6>,
    models: u32,
}

@group(0) @binding(24) var<uniform> model_axis: ModelAxis;

var<private> model: u32;

// Selects the model of workgroup `wg_z` (of `nwg_z` along z) and returns the workgroup's z
// within that model's grid.
fn enter_model(wg_z: u32, nwg_z: u32) -> u32 {
    let per_model = nwg_z / model_axis.models;
    model = wg_z / per_model;
    return wg_z % per_model;
}

// First element of the current model's slice of the buffer at `binding`.
fn at(binding: u32) -> u32 {
    return model * model_axis.strides[binding / 4u][binding % 4u];
}
