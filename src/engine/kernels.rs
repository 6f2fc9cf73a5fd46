//! WGSL sources, compute pipelines, and recorded dispatches.

use std::collections::HashMap;
use std::sync::Mutex;

use anyhow::{bail, Result};
use wgpu::util::DeviceExt;

use super::bindings::{self, MODEL_AXIS_BINDING, UNIFORM_BINDING};
use super::device::{Parallelism, Products};
use super::f16_tiles::TilePath;
use super::planner::{MM_ACCUMULATE, MM_ADD_BIAS, MM_ADD_RESIDUAL};
use super::uniforms::ModelAxis;
use crate::f16_split::LO_SCALE;
use crate::model::config::{NORM_EPS, QUANT_EPS};

/// Every shader file, by name. Each is compiled after [`prelude`]; the matrix products share
/// their operands (shaders/include/matmul_operands.wgsl), and the products on f16 tiles read
/// them through shaders/include/engine_tile_operands.wgsl.
pub const SHADER_FILES: [(&str, &str); 10] = [
    (
        "matmul",
        concat!(
            include_str!("../../shaders/include/matmul_operands.wgsl"),
            include_str!("../../shaders/matmul.wgsl")
        ),
    ),
    (
        "matmul_lanes",
        concat!(
            include_str!("../../shaders/include/matmul_operands.wgsl"),
            include_str!("../../shaders/matmul_lanes.wgsl")
        ),
    ),
    (
        "matmul_f16",
        concat!(
            include_str!("../../shaders/include/matmul_operands.wgsl"),
            include_str!("../../shaders/include/engine_tile_operands.wgsl"),
            include_str!("../../shaders/include/f16_tiles.wgsl"),
            include_str!("../../shaders/matmul_f16.wgsl")
        ),
    ),
    (
        "matmul_coop",
        concat!(
            include_str!("../../shaders/include/matmul_operands.wgsl"),
            include_str!("../../shaders/include/engine_tile_operands.wgsl"),
            include_str!("../../shaders/include/f16_tiles.wgsl"),
            include_str!("../../shaders/matmul_coop.wgsl")
        ),
    ),
    ("quantize", include_str!("../../shaders/quantize.wgsl")),
    ("optimizer", include_str!("../../shaders/optimizer.wgsl")),
    ("norm", include_str!("../../shaders/norm.wgsl")),
    ("embed", include_str!("../../shaders/embed.wgsl")),
    ("attention", include_str!("../../shaders/attention.wgsl")),
    ("loss", include_str!("../../shaders/loss.wgsl")),
];

/// Constants shared by the host and every shader, generated from the Rust definitions so the
/// two can never disagree, and the helpers every shader may use.
pub fn prelude() -> String {
    format!(
        "const NORM_EPS: f32 = {:e};\nconst QUANT_EPS: f32 = {:e};\n\
         const LO_SCALE: f32 = {LO_SCALE:?};\n\
         const UNIFORM_BINDING: u32 = {UNIFORM_BINDING}u;\n\
         const MODEL_AXIS_BINDING: u32 = {MODEL_AXIS_BINDING}u;\n{}{}{}",
        NORM_EPS as f32,
        QUANT_EPS as f32,
        include_str!("../../shaders/include/model_axis.wgsl"),
        include_str!("../../shaders/include/workgroup_reduce.wgsl"),
        include_str!("../../shaders/include/packed_codes.wgsl")
    )
}

/// Whether a shader file uses subgroup operations (compiled only on devices that have them).
pub fn needs_subgroups(name: &str) -> bool {
    name == "matmul_lanes"
}

/// Full source of a shader file as compiled: the extensions it enables, the prelude, its
/// bindings' declarations, itself.
pub fn shader_source(name: &str) -> Option<String> {
    let enables = TilePath::of_file(name).map_or("", TilePath::enables);
    SHADER_FILES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, src)| format!("{enables}{}{}{}", prelude(), bindings::wgsl(name), src))
}

/// A compute entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    Matmul,
    MatmulCodes,
    MatmulInt8,
    ReduceSplit,
    LaneMatmul,
    Quantize,
    CentreGrads,
    BeginStep,
    AdamW,
    NormForward,
    NormBackward,
    GainGrad,
    BuildTable,
    EmbedGrad,
    AttnForward,
    ScoreGrad,
    TableGrad,
    EqRowGrad,
    QueryGrad,
    ExampleLoss,
    ReduceMetrics,
    /// A product on f16 tiles (on tensor cores, or emulated), with the operands of `form`.
    F16Tiles(TilePath, TileForm),
}

/// The operands of a product on f16 tiles (TILE_FORM of
/// shaders/include/engine_tile_operands.wgsl): those of an entry point of shaders/matmul.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TileForm {
    /// `int8_main`'s: int8 codes times packed weight codes, exact.
    Int8 = 0,
    /// `main`'s: floats (B possibly a packed weight matrix), split into f16 parts.
    Floats = 1,
    /// `main_codes`'s: int8 codes read as code × step, times floats, split.
    Codes = 2,
}

impl Kernel {
    pub const ALL: [Kernel; 27] = [
        Kernel::Matmul,
        Kernel::MatmulCodes,
        Kernel::MatmulInt8,
        Kernel::ReduceSplit,
        Kernel::LaneMatmul,
        Kernel::Quantize,
        Kernel::CentreGrads,
        Kernel::BeginStep,
        Kernel::AdamW,
        Kernel::NormForward,
        Kernel::NormBackward,
        Kernel::GainGrad,
        Kernel::BuildTable,
        Kernel::EmbedGrad,
        Kernel::AttnForward,
        Kernel::ScoreGrad,
        Kernel::TableGrad,
        Kernel::EqRowGrad,
        Kernel::QueryGrad,
        Kernel::ExampleLoss,
        Kernel::ReduceMetrics,
        Kernel::F16Tiles(TilePath::Cooperative, TileForm::Int8),
        Kernel::F16Tiles(TilePath::Cooperative, TileForm::Floats),
        Kernel::F16Tiles(TilePath::Cooperative, TileForm::Codes),
        Kernel::F16Tiles(TilePath::Emulated, TileForm::Int8),
        Kernel::F16Tiles(TilePath::Emulated, TileForm::Floats),
        Kernel::F16Tiles(TilePath::Emulated, TileForm::Codes),
    ];

    /// Shader file and entry point.
    pub fn entry(self) -> (&'static str, &'static str) {
        match self {
            Kernel::Matmul => ("matmul", "main"),
            Kernel::MatmulCodes => ("matmul", "main_codes"),
            Kernel::MatmulInt8 => ("matmul", "int8_main"),
            Kernel::ReduceSplit => ("matmul", "reduce_split"),
            Kernel::LaneMatmul => ("matmul_lanes", "main"),
            Kernel::Quantize => ("quantize", "main"),
            Kernel::CentreGrads => ("quantize", "centre_grads"),
            Kernel::BeginStep => ("optimizer", "begin_step"),
            Kernel::AdamW => ("optimizer", "adamw"),
            Kernel::NormForward => ("norm", "forward"),
            Kernel::NormBackward => ("norm", "backward"),
            Kernel::GainGrad => ("norm", "gain_grad"),
            Kernel::BuildTable => ("embed", "build_table"),
            Kernel::EmbedGrad => ("embed", "embed_grad"),
            Kernel::AttnForward => ("attention", "forward"),
            Kernel::ScoreGrad => ("attention", "score_grad"),
            Kernel::TableGrad => ("attention", "table_grad"),
            Kernel::EqRowGrad => ("attention", "eq_row_grad"),
            Kernel::QueryGrad => ("attention", "query_grad"),
            Kernel::ExampleLoss => ("loss", "per_example_loss"),
            Kernel::ReduceMetrics => ("loss", "reduce"),
            Kernel::F16Tiles(path, _) => (path.file(), "main"),
        }
    }

    /// Whether the kernel is a matrix product (specialised by its flags; its grid may have z).
    fn is_product(self) -> bool {
        matches!(
            self,
            Kernel::Matmul
                | Kernel::MatmulCodes
                | Kernel::MatmulInt8
                | Kernel::ReduceSplit
                | Kernel::LaneMatmul
                | Kernel::F16Tiles(..)
        )
    }

    /// Whether an engine laid out as `parallelism` may dispatch the kernel.
    fn used_in(self, parallelism: &Parallelism) -> bool {
        match self {
            Kernel::Matmul | Kernel::MatmulCodes | Kernel::MatmulInt8 | Kernel::ReduceSplit => {
                parallelism.products == Products::Tiles
            }
            Kernel::LaneMatmul => parallelism.products == Products::Lanes,
            Kernel::F16Tiles(path, TileForm::Int8) => parallelism.integer_tiles == Some(path),
            Kernel::F16Tiles(path, _) => parallelism.float_tiles == Some(path),
            _ => true,
        }
    }

    /// Every specialisation the engine may create of the kernel: a product's with each
    /// combination of flags (and, in lanes, each operand form); the one plain pipeline of the
    /// others.
    pub fn specialisations(self) -> Vec<Specialisation> {
        if !self.is_product() {
            return vec![Specialisation::default()];
        }
        let forms = match self {
            Kernel::LaneMatmul => LaneForm::ALL.map(Some).to_vec(),
            _ => vec![None],
        };
        let flags = 0..=MM_ADD_RESIDUAL | MM_ACCUMULATE | MM_ADD_BIAS;
        flags
            .flat_map(|flags| {
                forms
                    .iter()
                    .map(move |&form| Specialisation { flags, form })
            })
            .collect()
    }

    /// The pipeline constants (WGSL overrides) of the kernel with `spec`, in an engine of
    /// several models (`stacked`) or one.
    pub fn pipeline_constants(
        self,
        stacked: bool,
        spec: Specialisation,
    ) -> Vec<(&'static str, f64)> {
        let mut constants = vec![("STACKED", stacked as u32 as f64)];
        if self.is_product() {
            constants.push(("PRODUCT_FLAGS", spec.flags as f64));
        }
        if let Some(form) = spec.form {
            constants.push(("FORM", form as u32 as f64));
        }
        if let Kernel::F16Tiles(_, form) = self {
            constants.push(("TILE_FORM", form as u32 as f64));
        }
        constants
    }

    /// Whether the kernel takes its model from workgroup z by `enter_model_grid` (its grid may
    /// have z; every other kernel's grid must be flat).
    fn has_z_grid(self) -> bool {
        self.is_product()
    }
}

/// The operands' forms of a product in lanes (FORM of shaders/matmul_lanes.wgsl). Each is a
/// pipeline of its own: lavapipe runs both sides of every branch, loads included.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LaneForm {
    /// A and B floats.
    Floats = 0,
    /// A floats, B a packed weight matrix read code by code.
    Packed = 1,
    /// The same with unit column stride, read a row (one or two words) at a time.
    PackedRows = 2,
    /// The same with unit row stride (a transposed weight matrix), read a column at a time.
    PackedCols = 3,
    /// A transposed int8 codes, read as code × step; B floats.
    Codes = 4,
    /// A int8 codes, B packed rows: integer sums.
    Int8 = 5,
}

impl LaneForm {
    const ALL: [LaneForm; 6] = [
        LaneForm::Floats,
        LaneForm::Packed,
        LaneForm::PackedRows,
        LaneForm::PackedCols,
        LaneForm::Codes,
        LaneForm::Int8,
    ];
}

/// The pipeline constants of a matrix product: what it adds to its sums (PRODUCT_FLAGS of
/// shaders/include/matmul_operands.wgsl) and, in lanes, its operands' form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Specialisation {
    pub flags: u32,
    pub form: Option<LaneForm>,
}

/// One recorded dispatch: replayed unchanged every epoch.
pub struct Dispatch {
    pub kernel: Kernel,
    specialisation: Specialisation,
    pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
    /// Floating-point operations of its matrix product (2 per multiply-add; 0 for the
    /// element-wise kernels, whose work is linear in the activations).
    pub flops: u64,
}

impl Dispatch {
    /// `file::entry`, with a product in lanes' operand form: `matmul_lanes::main[PackedCols]`.
    pub fn name(&self) -> String {
        let (file, entry) = self.kernel.entry();
        match self.specialisation.form {
            Some(form) => format!("{file}::{entry}[{form:?}]"),
            None => format!("{file}::{entry}"),
        }
    }
}

pub struct Kernels {
    modules: HashMap<&'static str, wgpu::ShaderModule>,
    /// Created on first use, per kernel and specialisation.
    pipelines: Mutex<HashMap<(Kernel, Specialisation), wgpu::ComputePipeline>>,
    /// Models of the engine: every dispatch runs its grid once per model.
    models: usize,
}

/// Most workgroups in one dimension (WebGPU's default limit).
pub const MAX_GROUPS: u32 = 65535;

/// Workgroups for `threads` invocations in groups of `size`, in one dimension.
pub fn groups_1d(threads: usize, size: u32) -> Result<[u32; 3]> {
    let groups = threads.div_ceil(size as usize);
    if groups > MAX_GROUPS as usize {
        bail!(
            "{threads} invocations exceed one dispatch dimension ({MAX_GROUPS} groups of {size})"
        );
    }
    Ok([groups.max(1) as u32, 1, 1])
}

/// Workgroups for `threads` invocations folded into two dimensions (kernels that index with
/// `gid.x + gid.y * num_workgroups.x * size`).
pub fn groups_2d(threads: usize, size: u32) -> [u32; 3] {
    let groups = threads.div_ceil(size as usize).max(1) as u32;
    let x = groups.min(MAX_GROUPS);
    [x, groups.div_ceil(x), 1]
}

impl Kernels {
    /// The shader modules of an engine of `models` models laid out as `parallelism`.
    pub fn new(device: &wgpu::Device, models: usize, parallelism: &Parallelism) -> Self {
        let mut modules = HashMap::new();
        for (name, _) in SHADER_FILES {
            if !Kernel::ALL
                .iter()
                .any(|k| k.used_in(parallelism) && k.entry().0 == name)
            {
                continue;
            }
            let source = shader_source(name).expect("listed");
            let descriptor = wgpu::ShaderModuleDescriptor {
                label: Some(name),
                source: wgpu::ShaderSource::Wgsl(source.into()),
            };
            // SAFETY: our own shaders, without the checks wgpu would add for untrusted ones.
            // Every loop is bounded by its uniforms; every divisor is a count or stride the host
            // sets to at least 1; every index of a fixed-size array is in range by construction,
            // and every buffer access is guarded by the operand's extent (the engine tests
            // compare every kernel with the CPU reference at widths that are not multiples of
            // the tiles). Vulkan's robust buffer access, where wgpu enables it, still applies.
            let module = unsafe {
                device.create_shader_module_trusted(
                    descriptor,
                    wgpu::ShaderRuntimeChecks::unchecked(),
                )
            };
            modules.insert(name, module);
        }
        Kernels {
            modules,
            pipelines: Mutex::new(HashMap::new()),
            models: models.max(1),
        }
    }

    /// The pipeline of `kernel` with the constants of `spec` (products only).
    fn pipeline(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        spec: Specialisation,
    ) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        pipelines
            .entry((kernel, spec))
            .or_insert_with(|| {
                let (file, entry) = kernel.entry();
                let constants = kernel.pipeline_constants(self.models > 1, spec);
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry),
                    layout: None,
                    module: &self.modules[file],
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &constants,
                        // Every kernel writes its workgroup memory before reading it.
                        zero_initialize_workgroup_memory: false,
                    },
                    cache: None,
                })
            })
            .clone()
    }

    pub fn models(&self) -> usize {
        self.models
    }

    /// Records a dispatch of `kernel` for every model; `uniform` (if any) goes to
    /// [`UNIFORM_BINDING`], `buffers` to the bindings they name (exactly the bindings the entry
    /// point uses), and `groups` is one model's grid. Each buffer holds one equal slice per model; the slice
    /// lengths reach the shader through the model axis uniform.
    pub fn dispatch(
        &self,
        device: &wgpu::Device,
        kernel: Kernel,
        uniform: Option<&[u8]>,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Dispatch {
        assert!(!kernel.is_product(), "{kernel:?} needs its specialisation");
        self.dispatch_product(
            device,
            (kernel, Specialisation::default()),
            uniform,
            buffers,
            groups,
        )
    }

    /// [`Self::dispatch`] of a matrix product with its pipeline constants.
    pub fn dispatch_product(
        &self,
        device: &wgpu::Device,
        (kernel, spec): (Kernel, Specialisation),
        uniform: Option<&[u8]>,
        buffers: &[(u32, &wgpu::Buffer)],
        groups: [u32; 3],
    ) -> Dispatch {
        assert!(
            groups[2] == 1 || kernel.has_z_grid(),
            "{kernel:?} takes its model from workgroup z (enter_model): its grid must be flat"
        );
        assert_eq!(
            spec.form.is_some(),
            kernel == Kernel::LaneMatmul,
            "a product in lanes, and only it, has a form"
        );
        let pipeline = self.pipeline(device, kernel, spec);
        let make_uniform = |label, contents| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some(label),
                contents,
                usage: wgpu::BufferUsages::UNIFORM,
            })
        };
        let uniform_buf = uniform.map(|bytes| make_uniform("params", bytes));
        let mut axis = ModelAxis {
            strides: [0; MODEL_AXIS_BINDING as usize],
            z_per_model: groups[2],
            _pad: [0; 3],
        };
        for &(binding, buf) in buffers {
            axis.strides[binding as usize] = (buf.size() / 4 / self.models as u64) as u32;
        }
        let axis_buf = make_uniform("model_axis", bytemuck::bytes_of(&axis));
        let mut entries: Vec<wgpu::BindGroupEntry> = buffers
            .iter()
            .map(|(binding, buf)| wgpu::BindGroupEntry {
                binding: *binding,
                resource: buf.as_entire_binding(),
            })
            .collect();
        if let Some(u) = &uniform_buf {
            entries.push(wgpu::BindGroupEntry {
                binding: UNIFORM_BINDING,
                resource: u.as_entire_binding(),
            });
        }
        entries.push(wgpu::BindGroupEntry {
            binding: MODEL_AXIS_BINDING,
            resource: axis_buf.as_entire_binding(),
        });
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(kernel.entry().1),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        Dispatch {
            kernel,
            specialisation: spec,
            pipeline,
            bind_group,
            groups: [groups[0], groups[1], groups[2] * self.models as u32],
            flops: 0,
        }
    }

    /// Appends `dispatches` to a compute pass.
    pub fn encode(&self, pass: &mut wgpu::ComputePass, dispatches: &[Dispatch]) {
        for d in dispatches {
            pass.set_pipeline(&d.pipeline);
            pass.set_bind_group(0, &d.bind_group, &[]);
            pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
        }
    }
}
