//! The f16 tile product kernels (shaders/include/f16_tiles.wgsl): on cooperative matrices
//! (tensor cores) where the adapter reports them, or emulated in plain WGSL where it has f16
//! arithmetic. The engine runs its integer products on them, and its float products split into
//! f16 parts when asked (the planner's `integer_tiles` and `float_tiles` of
//! [`Parallelism`](super::device::Parallelism)); the conformance launcher here runs them on
//! plain matrices, for integer codes (exact) or split f32 operands.

use anyhow::{bail, Result};
use wgpu::util::DeviceExt;

use super::kernels::prelude;
use super::uniforms::TileParams;
use crate::f16_split::{max_abs, split_scale};

/// The tiles, after the operands of the launcher's plain matrices.
const SPLIT_TILES: &str = concat!(
    include_str!("../../shaders/include/split_tile_operands.wgsl"),
    include_str!("../../shaders/include/f16_tiles.wgsl")
);

/// Which kernel computes the tiles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TilePath {
    /// `coopMultiplyAdd` on 16x16 cooperative matrices (shaders/matmul_coop.wgsl).
    Cooperative,
    /// The same arithmetic, one thread per output element (shaders/matmul_f16.wgsl).
    Emulated,
}

impl TilePath {
    pub const ALL: [TilePath; 2] = [TilePath::Cooperative, TilePath::Emulated];

    /// The kernel's file in shaders/, without its extension.
    pub fn file(self) -> &'static str {
        match self {
            TilePath::Cooperative => "matmul_coop",
            TilePath::Emulated => "matmul_f16",
        }
    }

    /// The path of a shader file, if it is one of the tile kernels.
    pub fn of_file(file: &str) -> Option<TilePath> {
        TilePath::ALL.into_iter().find(|p| p.file() == file)
    }

    /// The kernel's own source (shaders/FILE.wgsl).
    pub fn kernel(self) -> &'static str {
        match self {
            TilePath::Cooperative => include_str!("../../shaders/matmul_coop.wgsl"),
            TilePath::Emulated => include_str!("../../shaders/matmul_f16.wgsl"),
        }
    }

    /// The WGSL extensions the kernel needs, which a module must enable before anything else.
    pub fn enables(self) -> &'static str {
        match self {
            TilePath::Cooperative => "enable f16;\nenable wgpu_cooperative_matrix;\n",
            TilePath::Emulated => "enable f16;\n",
        }
    }

    /// The launcher's WGSL source: the kernel on plain matrices (the engine compiles it on its
    /// own operands: `kernels::shader_source`).
    pub fn source(self) -> String {
        format!(
            "{}{}{SPLIT_TILES}{}",
            self.enables(),
            prelude(),
            self.kernel()
        )
    }

    /// The device features the path needs.
    pub fn features(self) -> wgpu::Features {
        match self {
            TilePath::Cooperative => {
                wgpu::Features::SHADER_F16 | wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX
            }
            TilePath::Emulated => wgpu::Features::SHADER_F16,
        }
    }
}

/// Output tile edge (T of shaders/include/f16_tiles.wgsl).
pub(super) const TILE_EDGE: usize = 16;

/// The kernels of one path, for integer codes and for split operands.
pub struct TileProducts {
    path: TilePath,
    integer: wgpu::ComputePipeline,
    split: wgpu::ComputePipeline,
}

impl TileProducts {
    /// Compiles both kernels of `path` on `device`, refused where the device lacks its features.
    pub fn new(device: &wgpu::Device, path: TilePath) -> Result<TileProducts> {
        if !device.features().contains(path.features()) {
            bail!(
                "the {path:?} f16 tile products need {:?}, which this device lacks",
                path.features() - device.features()
            );
        }
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("f16 tiles"),
            source: wgpu::ShaderSource::Wgsl(path.source().into()),
        });
        let pipeline = |split: bool| {
            let constants = [("SPLIT", if split { 1.0 } else { 0.0 })];
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some("f16 tiles"),
                layout: None,
                module: &module,
                entry_point: Some("main"),
                compilation_options: wgpu::PipelineCompilationOptions {
                    constants: &constants,
                    ..Default::default()
                },
                cache: None,
            })
        };
        Ok(TileProducts {
            path,
            integer: pipeline(false),
            split: pipeline(true),
        })
    }

    /// `a` (m×k) times `b` (k×n), row-major: exactly, for integer codes (|x| ≤ 127, k ≤ 2^17),
    /// or with both operands split (`split`).
    #[allow(clippy::too_many_arguments)]
    pub fn product(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        a: &[f32],
        b: &[f32],
        (m, k, n): (usize, usize, usize),
        split: bool,
    ) -> Result<Vec<f32>> {
        if a.len() != m * k || b.len() != k * n || m * n == 0 {
            bail!(
                "operands of {} and {} values for a {m}×{k} by {k}×{n} product",
                a.len(),
                b.len()
            );
        }
        let (scale_a, scale_b) = if split {
            (split_scale(max_abs(a)), split_scale(max_abs(b)))
        } else {
            (1.0, 1.0)
        };
        let params = TileParams {
            m: m as u32,
            n: n as u32,
            k: k as u32,
            _pad: 0,
            scale_a,
            scale_b,
            _pad2: [0; 2],
        };
        let storage = |data: &[f32], usage| {
            device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: None,
                contents: bytemuck::cast_slice(data),
                usage,
            })
        };
        let read = wgpu::BufferUsages::STORAGE;
        let (a_buf, b_buf) = (storage(a, read), storage(b, read));
        let c_buf = storage(
            &vec![0.0; m * n],
            wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
        );
        let params = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: None,
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: None,
            size: (m * n * 4) as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let pipeline = if split { &self.split } else { &self.integer };
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[&a_buf, &b_buf, &c_buf, &params]
                .iter()
                .enumerate()
                .map(|(i, buf)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: buf.as_entire_binding(),
                })
                .collect::<Vec<_>>(),
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(
                n.div_ceil(TILE_EDGE) as u32,
                m.div_ceil(TILE_EDGE) as u32,
                1,
            );
        }
        encoder.copy_buffer_to_buffer(&c_buf, 0, &readback, 0, (m * n * 4) as u64);
        queue.submit([encoder.finish()]);
        let slice = readback.slice(..);
        let (tx, rx) = std::sync::mpsc::channel();
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        device.poll(wgpu::PollType::wait_indefinitely())?;
        rx.recv()??;
        let out = bytemuck::cast_slice(&slice.get_mapped_range()?).to_vec();
        Ok(out)
    }

    pub fn path(&self) -> TilePath {
        self.path
    }
}
