// Included before every shader file (src/engine/kernels.rs, `prelude`).

// The model axis: an engine may train several models of one shape at once. Each dispatch runs
// its per-model grid once per model, stacked along z, and every storage buffer holds one
// equal-sized slice per model; `model_axis.strides` gives the slice length of the buffer at each
// binding. Kernels call `enter_model` first and index every buffer from `at(binding)`.
struct ModelAxis {
    // Elements per model of the buffer at binding b: strides[b / 4][b % 4].
    strides: array<vec4<u32>, 6>,
    // Workgroups along z of one model's grid.
    z_per_model: u32,
}

@group(0) @binding(24) var<uniform> model_axis: ModelAxis;

// False in the pipelines of a one-model engine, whose slices all start at 0: the index
// arithmetic then folds away (it costs lavapipe about a fifth of an epoch).
override STACKED: bool = true;

// The current model, and where its slice of the buffer at each binding starts: computed once
// per invocation by `enter_model*`, so that indexing a buffer costs no uniform load (lavapipe
// would repeat one for every access inside a loop that stores to memory).
var<private> model: u32;
var<private> slice_start: array<u32, 24>;

fn select_model(m: u32) {
    model = m;
    if (!STACKED) {
        return;
    }
    for (var b = 0u; b < 24u; b++) {
        slice_start[b] = m * model_axis.strides[b / 4u][b % 4u];
    }
}

// Selects the model of workgroup `wg_z`, for kernels whose per-model grid is flat along z.
fn enter_model(wg_z: u32) {
    select_model(wg_z);
}

// Selects the model of workgroup `wg_z` and returns the workgroup's z within that model's grid.
// (An integer division: lavapipe pays dearly for one in every invocation of a light kernel.)
fn enter_model_grid(wg_z: u32) -> u32 {
    select_model(wg_z / model_axis.z_per_model);
    return wg_z % model_axis.z_per_model;
}

// First element of the current model's slice of the buffer at `binding`.
fn at(binding: u32) -> u32 {
    if (!STACKED) {
        return 0u;
    }
    return slice_start[binding];
}
