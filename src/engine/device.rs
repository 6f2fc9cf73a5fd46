//! Adapter discovery and device creation.

use std::sync::{Arc, Mutex};

use anyhow::{anyhow, bail, Context, Result};

use super::f16_tiles::TilePath;

/// How to get an adapter on a machine that has none.
pub const NO_ADAPTER_HELP: &str = "no GPU adapter found. On a headless Linux machine, install \
Mesa's CPU Vulkan driver (lavapipe): `apt-get install -y mesa-vulkan-drivers`; on a GPU machine, \
install the vendor's Vulkan driver. `bitgrok devices` lists what wgpu can see.";

/// How the kernels spread work over an adapter: GPUs need thousands of threads in flight,
/// while a CPU adapter's few cores are best kept busy with independent work and no barriers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Parallelism {
    /// Workgroups a matrix product should occupy before its contraction is split across more
    /// (split-K, shaders/matmul.wgsl): a weight gradient's few output tiles, each summing over
    /// the whole batch, would leave most of a GPU idle. 0 never splits.
    pub split_target: usize,
    /// A product is split only into at least this many chunks of at least this length: fewer
    /// or shorter ones do not repay the extra dispatch that sums them.
    pub min_splits: usize,
    pub min_split_chunk: usize,
    /// Threads that share one row of a row-wise kernel (shaders/norm.wgsl): a power of two
    /// dividing 64.
    pub row_lanes: usize,
    /// Models a sweep trains together by default: as many as fit on a GPU, whose single model
    /// leaves it mostly idle; one on a CPU adapter, which a single model already keeps busy
    /// (on lavapipe, 2 cores, 4 or 16 models together gave 8–18% fewer model-epochs/s).
    pub models_together: usize,
    /// The implementation of the matrix products.
    pub products: Products,
    /// The f16 tile kernel that computes the integer products (int8 activations times binary or
    /// ternary weights) instead of `products`, if any: exact either way, so the same bits.
    pub integer_tiles: Option<TilePath>,
    /// The f16 tile kernel that computes the products with a float operand, split into f16
    /// parts, instead of `products`, if any (`--float-products split-f16`).
    pub float_tiles: Option<TilePath>,
}

/// How the products with a float operand run (`--float-products`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum FloatProducts {
    /// In f32 (the tiled or lane kernels)
    #[default]
    F32,
    /// Each operand split into two f16 parts, three f16 products summed in f32 on the tile path
    /// `--tensor-cores` picks (on or emulated; auto where it finds tensor cores): about 22 bits
    /// of each operand, within the f32 tolerances of `bitgrok check`
    SplitF16,
}

/// Whether the integer products run on tensor cores (`--tensor-cores`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum TensorCores {
    /// On cooperative matrices where the adapter offers what the kernel needs (16×16×16 f16 →
    /// f32, subgroups of exactly 32 lanes), else the integer kernels
    #[default]
    Auto,
    /// On cooperative matrices, or fail
    On,
    /// The integer kernels (dot4I8Packed, or lanes on a CPU adapter)
    Off,
    /// The tensor cores' f16 tile arithmetic emulated in plain WGSL: slower, for checking it on
    /// adapters with f16 arithmetic and no tensor cores
    Emulated,
}

/// Lanes of the subgroup shaders/matmul_coop.wgsl spans (SUBGROUP there).
const COOPERATIVE_LANES: u32 = 32;

/// Why the adapter cannot run shaders/matmul_coop.wgsl, if it cannot.
fn cooperative_tiles_missing(adapter: &wgpu::Adapter) -> Option<String> {
    let (info, features) = (adapter.get_info(), adapter.features());
    if !features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX) {
        return Some("it reports no cooperative matrices".into());
    }
    if !features.contains(wgpu::Features::SHADER_F16) {
        return Some("it has no f16 arithmetic".into());
    }
    let f16_tiles = adapter.cooperative_matrix_properties().iter().any(|c| {
        (c.m_size, c.n_size, c.k_size) == (16, 16, 16)
            && c.ab_type == wgpu::CooperativeScalarType::F16
            && c.cr_type == wgpu::CooperativeScalarType::F32
    });
    if !f16_tiles {
        return Some("it reports no 16×16×16 f16 → f32 cooperative matrix".into());
    }
    if (info.subgroup_min_size, info.subgroup_max_size) != (COOPERATIVE_LANES, COOPERATIVE_LANES) {
        return Some(format!(
            "its subgroups have {}–{} lanes, not exactly {COOPERATIVE_LANES}",
            info.subgroup_min_size, info.subgroup_max_size
        ));
    }
    None
}

impl TensorCores {
    /// The tile kernel this choice runs the integer products on, on `adapter`.
    fn integer_tiles(self, adapter: &wgpu::Adapter) -> Result<Option<TilePath>> {
        let name = adapter.get_info().name;
        match self {
            TensorCores::Off => Ok(None),
            TensorCores::Emulated => {
                let needed = TilePath::Emulated.features();
                if !adapter.features().contains(needed) {
                    bail!("--tensor-cores emulated needs f16 arithmetic, which {name} lacks");
                }
                Ok(Some(TilePath::Emulated))
            }
            TensorCores::Auto => Ok(cooperative_tiles_missing(adapter)
                .is_none()
                .then_some(TilePath::Cooperative)),
            TensorCores::On => match cooperative_tiles_missing(adapter) {
                None => Ok(Some(TilePath::Cooperative)),
                Some(why) => bail!("--tensor-cores on: {name} cannot run them: {why}"),
            },
        }
    }
}

/// The two implementations of the matrix product (shaders/include/matmul_operands.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Products {
    /// shaders/matmul.wgsl: output tiles staged through workgroup memory, split-K; for GPUs.
    Tiles,
    /// shaders/matmul_lanes.wgsl: B's rows passed between the lanes of a subgroup; for CPU
    /// adapters, which execute each memory access lane by lane. Needs subgroups of 8 or more.
    Lanes,
}

/// Lanes a subgroup needs for [`Products::Lanes`] (LANES in shaders/matmul_lanes.wgsl).
const PRODUCT_LANES: u32 = 8;

impl Parallelism {
    /// For GPUs: a few workgroups for each multiprocessor of a large one; a workgroup per row.
    /// (Requiring at least 8 chunks of 128 removed 14 of the 60 dispatches of a `nanda` step at
    /// p = 113 but made the epoch slower on an H200, 1.5 to 1.7 ms: the products left unsplit
    /// lost more than the sums cost.)
    pub const GPU: Parallelism = Parallelism {
        split_target: 512,
        min_splits: 2,
        min_split_chunk: 32,
        row_lanes: 64,
        models_together: usize::MAX,
        products: Products::Tiles,
        integer_tiles: None,
        float_tiles: None,
    };
    /// For CPU adapters: unsplit products passing rows between lanes; a thread per row.
    pub const CPU: Parallelism = Parallelism {
        split_target: 0,
        row_lanes: 1,
        models_together: 1,
        products: Products::Lanes,
        ..Parallelism::GPU
    };

    /// The layout for an adapter (tiled products on a CPU adapter without subgroups of 8).
    pub fn for_adapter(info: &wgpu::AdapterInfo, features: wgpu::Features) -> Parallelism {
        let lanes =
            features.contains(wgpu::Features::SUBGROUP) && info.subgroup_min_size >= PRODUCT_LANES;
        match info.device_type {
            wgpu::DeviceType::Cpu if lanes => Parallelism::CPU,
            wgpu::DeviceType::Cpu => Parallelism {
                products: Products::Tiles,
                ..Parallelism::CPU
            },
            _ => Parallelism::GPU,
        }
    }
}

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    /// Chosen from the adapter's type; tests may set another.
    pub parallelism: Parallelism,
    /// The first error wgpu reported outside an error scope (validation, out of memory, device
    /// lost), kept so that it surfaces as an error instead of aborting the process.
    error: Arc<Mutex<Option<String>>>,
}

/// Backends to search: `WGPU_BACKEND` if set, else Vulkan, Metal and DX12 (the GL backend
/// lacks what the kernels need and only adds noise on headless machines).
fn backends() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::PRIMARY)
}

/// Every adapter wgpu can see, in enumeration order.
pub fn adapters() -> Vec<wgpu::Adapter> {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle_from_env();
    desc.backends = backends();
    pollster::block_on(wgpu::Instance::new(desc).enumerate_adapters(backends()))
}

/// One line describing an adapter.
pub fn describe(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// What an adapter offers the product kernels, in one line: its subgroup sizes, f16 arithmetic,
/// the cooperative-matrix (tensor core) configurations its driver reports to wgpu, as
/// `M×N×K A/B type → C type`, and whether `--tensor-cores auto` uses them.
pub fn capabilities(adapter: &wgpu::Adapter) -> String {
    let (info, features) = (adapter.get_info(), adapter.features());
    let subgroups = if features.contains(wgpu::Features::SUBGROUP) {
        format!(
            "subgroups of {}–{} lanes",
            info.subgroup_min_size, info.subgroup_max_size
        )
    } else {
        "no subgroups".into()
    };
    let f16 = if features.contains(wgpu::Features::SHADER_F16) {
        "f16"
    } else {
        "no f16"
    };
    let configs: Vec<String> = if features.contains(wgpu::Features::EXPERIMENTAL_COOPERATIVE_MATRIX)
    {
        adapter
            .cooperative_matrix_properties()
            .iter()
            .map(|c| {
                format!(
                    "{}×{}×{} {:?} → {:?}{}",
                    c.m_size,
                    c.n_size,
                    c.k_size,
                    c.ab_type,
                    c.cr_type,
                    if c.saturating_accumulation {
                        " (saturating)"
                    } else {
                        ""
                    }
                )
            })
            .collect()
    } else {
        Vec::new()
    };
    let coop = if configs.is_empty() {
        "no cooperative matrices".into()
    } else {
        format!("cooperative matrices {}", configs.join(", "))
    };
    let tensor_cores = match cooperative_tiles_missing(adapter) {
        None => "integer products on tensor cores".into(),
        Some(why) => format!("integer products not on tensor cores: {why}"),
    };
    format!("{subgroups}, {f16}, {coop}; {tensor_cores}")
}

/// Preference among adapters: discrete GPUs first, CPU adapters last.
fn rank(info: &wgpu::AdapterInfo) -> u8 {
    match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

/// Index into `adapters` of the one bitgrok uses: the first whose name contains `filter`
/// (case-insensitive; `WGPU_ADAPTER_NAME` when no filter is given), else the best ranked.
pub fn choose(adapters: &[wgpu::Adapter], filter: Option<&str>) -> Result<usize> {
    if adapters.is_empty() {
        return Err(anyhow!(NO_ADAPTER_HELP));
    }
    let env = std::env::var("WGPU_ADAPTER_NAME").ok();
    match filter.or(env.as_deref()) {
        Some(name) => {
            let needle = name.to_lowercase();
            adapters
                .iter()
                .position(|a| a.get_info().name.to_lowercase().contains(&needle))
                .ok_or_else(|| {
                    let names: Vec<String> =
                        adapters.iter().map(|a| describe(&a.get_info())).collect();
                    anyhow!(
                        "no adapter name contains {name:?}; available: {}",
                        names.join("; ")
                    )
                })
        }
        None => Ok((0..adapters.len())
            .min_by_key(|&i| rank(&adapters[i].get_info()))
            .expect("non-empty")),
    }
}

impl Gpu {
    /// [`Gpu::open`] with tensor cores for the integer products where the adapter has them, and
    /// the float products in f32.
    pub fn new(filter: Option<&str>) -> Result<Gpu> {
        Gpu::open(filter, TensorCores::Auto, FloatProducts::F32)
    }

    /// Opens the chosen adapter with its own limits (large storage buffers are needed at p = 113),
    /// its integer products on the tile kernel `tensor_cores` asks for, and its float products on
    /// the same kernel when `float_products` splits them.
    pub fn open(
        filter: Option<&str>,
        tensor_cores: TensorCores,
        float_products: FloatProducts,
    ) -> Result<Gpu> {
        let adapters = adapters();
        let adapter = &adapters[choose(&adapters, filter)?];
        let info = adapter.get_info();
        let limits = adapter.limits();
        let integer_tiles = tensor_cores.integer_tiles(adapter)?;
        let float_tiles = match (float_products, integer_tiles) {
            (FloatProducts::F32, _) => None,
            (FloatProducts::SplitF16, Some(path)) => Some(path),
            (FloatProducts::SplitF16, None) => bail!(
                "--float-products split-f16 runs on f16 tiles, which --tensor-cores {} does not \
                 give on {}: use --tensor-cores on or emulated",
                format!("{tensor_cores:?}").to_lowercase(),
                info.name
            ),
        };
        let (device, queue) = open_device(adapter, integer_tiles.map(TilePath::features))?;
        let features = device.features();
        let error = Arc::new(Mutex::new(None));
        let sink = error.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| match e {
                wgpu::Error::OutOfMemory { .. } => {
                    "the GPU ran out of memory; use a smaller --p or --d-mlp, or a larger adapter"
                        .to_string()
                }
                other => other.to_string(),
            });
        }));
        let sink = error.clone();
        device.set_device_lost_callback(move |reason, message| {
            let mut slot = sink.lock().unwrap_or_else(|p| p.into_inner());
            slot.get_or_insert_with(|| {
                format!(
                    "the GPU device was lost ({reason:?}: {message}); the driver may have reset \
                     it. Check `bitgrok devices`, then continue with `bitgrok train --resume RUN`"
                )
            });
        });
        let parallelism = Parallelism {
            integer_tiles,
            float_tiles,
            ..Parallelism::for_adapter(&info, features)
        };
        Ok(Gpu {
            device,
            queue,
            info,
            limits,
            parallelism,
            error,
        })
    }

    /// Fails with the first GPU error reported since the device was opened.
    pub fn check(&self) -> Result<()> {
        match self
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(e) => Err(anyhow!("GPU error on {}: {e}", self.describe())),
            None => Ok(()),
        }
    }

    pub fn describe(&self) -> String {
        describe(&self.info)
    }

    /// How the products run, in a few words: `tiled products, integer products on tensor cores`.
    pub fn describe_products(&self) -> String {
        let products = match self.parallelism.products {
            Products::Tiles => "tiled products",
            Products::Lanes => "products in lanes",
        };
        let on = |path| match path {
            TilePath::Cooperative => "tensor cores",
            TilePath::Emulated => "emulated f16 tiles",
        };
        let mut text = products.to_string();
        if let Some(path) = self.parallelism.integer_tiles {
            text += &format!(", integer products on {}", on(path));
        }
        if let Some(path) = self.parallelism.float_tiles {
            text += &format!(", float products split on {}", on(path));
        }
        text
    }
}

/// A device on `adapter` with its own limits, subgroups where it has them, and `tiles`' features
/// (the experimental ones allowed).
pub fn open_device(
    adapter: &wgpu::Adapter,
    tiles: Option<wgpu::Features>,
) -> Result<(wgpu::Device, wgpu::Queue)> {
    let features = (adapter.features() & wgpu::Features::SUBGROUP) | tiles.unwrap_or_default();
    let experimental = features.intersects(wgpu::Features::all_experimental_mask());
    pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("bitgrok"),
        required_features: features,
        required_limits: adapter.limits(),
        // SAFETY: the one experimental feature requested is cooperative matrices, used only by
        // shaders/matmul_coop.wgsl, which naga validates in the tests and whose results the
        // engine tests compare bit for bit with the integer kernels where an adapter runs it.
        experimental_features: if experimental {
            unsafe { wgpu::ExperimentalFeatures::enabled() }
        } else {
            wgpu::ExperimentalFeatures::disabled()
        },
        ..Default::default()
    }))
    .with_context(|| format!("opening {}", describe(&adapter.get_info())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn adapter(device_type: wgpu::DeviceType, subgroup_min_size: u32) -> wgpu::AdapterInfo {
        wgpu::AdapterInfo {
            subgroup_min_size,
            ..wgpu::AdapterInfo::new(device_type, wgpu::Backend::Vulkan)
        }
    }

    #[test]
    fn products_in_lanes_only_on_cpu_adapters_with_subgroups_of_eight() {
        let subgroups = wgpu::Features::SUBGROUP;
        let cpu = wgpu::DeviceType::Cpu;
        let products = |info, features| Parallelism::for_adapter(&info, features).products;
        assert_eq!(products(adapter(cpu, 8), subgroups), Products::Lanes);
        assert_eq!(products(adapter(cpu, 4), subgroups), Products::Tiles);
        assert_eq!(
            products(adapter(cpu, 8), wgpu::Features::empty()),
            Products::Tiles
        );
        let gpu = wgpu::DeviceType::DiscreteGpu;
        assert_eq!(products(adapter(gpu, 32), subgroups), Products::Tiles);
        // Either way a CPU adapter keeps the CPU layout's other choices.
        let fallback = Parallelism::for_adapter(&adapter(cpu, 4), subgroups);
        assert_eq!((fallback.split_target, fallback.row_lanes), (0, 1));
    }
}
