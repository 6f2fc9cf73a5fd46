//! How a matrix product runs on the adapter: split-K chunking, tiled or lane kernel, grids and
//! pipeline flags, as plain functions of its shape and the adapter's [`Parallelism`] (the
//! recorder in products.rs binds the buffers).

use super::device::{Parallelism, Products};
use super::f16_tiles::TilePath;
use super::f16_tiles::TILE_EDGE;
use super::kernels::{Kernel, LaneForm, Specialisation, TileForm};

/// Contraction steps per tile of shaders/matmul.wgsl (TK), and its output tile (TILE x TILE).
pub(super) const MATMUL_TK: usize = 16;
pub(super) const MATMUL_TILE: usize = 64;
/// Output rows and columns of a workgroup of shaders/matmul_lanes.wgsl (WG_SIZE * ROWS, COLS).
const LANE_ROWS: usize = 128;
const LANE_COLS: usize = 16;
/// Outputs per workgroup of `reduce_split` (shaders/matmul.wgsl).
const REDUCE_SPLIT_GROUP: usize = 256;

/// What a product adds to its sums (PRODUCT_FLAGS of shaders/include/matmul_operands.wgsl).
pub(super) const MM_ADD_RESIDUAL: u32 = 1;
pub(super) const MM_ACCUMULATE: u32 = 2;
pub(super) const MM_ADD_BIAS: u32 = 4;

/// Floats the split-K scratch needs for a split target: a product is split into at most
/// `target / tiles` chunks, each a partial product of at most `tiles` full tiles.
pub fn split_partials_len(split_target: usize) -> usize {
    (split_target * MATMUL_TILE * MATMUL_TILE).max(1)
}

/// `batch` products of m x k times k x n.
#[derive(Clone, Copy, Debug)]
pub(super) struct Shape {
    pub batch: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

/// How a product reads its operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reads {
    /// A floats; B floats, or a packed weight matrix with these strides; the contraction split
    /// over two strides (`k_split`) or not.
    Floats {
        packed: Option<(usize, usize)>,
        k_split: bool,
    },
    /// A int8 codes read as code × step, B floats or packed.
    Codes,
    /// A int8 rows times a packed weight matrix: exact integer sums.
    Int8,
}

/// The dispatches of one product.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Plan {
    /// The product itself (split: the chunks' plain partial products, without flags).
    pub kernel: (Kernel, Specialisation),
    pub grid: [u32; 3],
    /// Chunks of the contraction and the length of each: (1, k) unsplit.
    pub splits: usize,
    pub k_chunk: usize,
    /// Split, the sum of the chunks into C with the product's flags, and its grid.
    pub reduce: Option<((Kernel, Specialisation), [u32; 3])>,
}

/// Chunks a product of `tiles` output tiles and contraction length k runs as, and the length
/// of each: enough to bring its workgroups up to the split target, within the limits of
/// `parallelism`, each chunk a whole number of tile steps. (1, k) when it is not split, as
/// products in lanes never are.
pub(super) fn split_k(parallelism: &Parallelism, tiles: usize, k: usize) -> (usize, usize) {
    if parallelism.products == Products::Lanes {
        return (1, k);
    }
    let wanted = (parallelism.split_target / tiles).min(k / parallelism.min_split_chunk.max(1));
    if wanted < parallelism.min_splits.max(2) {
        return (1, k);
    }
    let chunk = k.div_ceil(wanted).next_multiple_of(MATMUL_TK);
    (k.div_ceil(chunk), chunk)
}

/// PRODUCT_FLAGS of a product with a residual, accumulating into C, with a bias.
pub(super) fn product_flags(residual: bool, accumulate: bool, bias: bool) -> u32 {
    let mut flags = 0;
    if residual {
        flags |= MM_ADD_RESIDUAL;
    }
    if accumulate {
        flags |= MM_ACCUMULATE;
    }
    if bias {
        flags |= MM_ADD_BIAS;
    }
    flags
}

/// The pipeline of a product with `flags` in the adapter's implementation: the tiled entry
/// point `tiles`, or the lane kernel for operands of `form`.
fn product_kernel(
    products: Products,
    tiles: Kernel,
    form: LaneForm,
    flags: u32,
) -> (Kernel, Specialisation) {
    match products {
        Products::Tiles => (tiles, Specialisation { flags, form: None }),
        Products::Lanes => (
            Kernel::LaneMatmul,
            Specialisation {
                flags,
                form: Some(form),
            },
        ),
    }
}

/// Workgroups of an m x n product with `z` output batches (chunks included).
fn product_grid(products: Products, m: usize, n: usize, z: usize) -> [u32; 3] {
    let (rows, cols) = match products {
        Products::Tiles => (MATMUL_TILE, MATMUL_TILE),
        Products::Lanes => (LANE_ROWS, LANE_COLS),
    };
    [n.div_ceil(cols) as u32, m.div_ceil(rows) as u32, z as u32]
}

/// The entry point and lane form of a product reading its operands as `reads`.
fn kernel_form(reads: Reads) -> (Kernel, LaneForm) {
    match reads {
        Reads::Floats { packed: None, .. } => (Kernel::Matmul, LaneForm::Floats),
        Reads::Floats {
            packed: Some((_, 1)),
            ..
        } => (Kernel::Matmul, LaneForm::PackedRows),
        Reads::Floats {
            packed: Some((1, _)),
            k_split: false,
        } => (Kernel::Matmul, LaneForm::PackedCols),
        Reads::Floats { .. } => (Kernel::Matmul, LaneForm::Packed),
        Reads::Codes => (Kernel::MatmulCodes, LaneForm::Codes),
        Reads::Int8 => (Kernel::MatmulInt8, LaneForm::Int8),
    }
}

/// The f16 tile kernel and operand form a product reading `reads` runs on, if `parallelism`
/// puts it on tiles.
fn tiles(parallelism: &Parallelism, reads: Reads) -> Option<(TilePath, TileForm)> {
    match reads {
        Reads::Int8 => parallelism.integer_tiles.map(|path| (path, TileForm::Int8)),
        Reads::Floats { .. } => parallelism.float_tiles.map(|path| (path, TileForm::Floats)),
        Reads::Codes => parallelism.float_tiles.map(|path| (path, TileForm::Codes)),
    }
}

/// The dispatches of product `shape` reading `reads`, adding what `flags` says.
pub(super) fn plan(parallelism: &Parallelism, shape: Shape, reads: Reads, flags: u32) -> Plan {
    let Shape { batch, m, n, k } = shape;
    if let Some((path, form)) = tiles(parallelism, reads) {
        // A 16 x 16 output tile per workgroup, the contraction unsplit: integer sums are exact
        // only unsplit, and a split panel's scale covers the whole contraction.
        return Plan {
            kernel: (
                Kernel::F16Tiles(path, form),
                Specialisation { flags, form: None },
            ),
            grid: [
                n.div_ceil(TILE_EDGE) as u32,
                m.div_ceil(TILE_EDGE) as u32,
                batch as u32,
            ],
            splits: 1,
            k_chunk: k,
            reduce: None,
        };
    }
    let products = parallelism.products;
    let (tiles_kernel, form) = kernel_form(reads);
    // Integer sums are never split: the chunks would add scaled partial sums in floating point.
    let (splits, k_chunk) = match reads {
        Reads::Int8 => (1, k),
        _ => split_k(
            parallelism,
            batch * m.div_ceil(MATMUL_TILE) * n.div_ceil(MATMUL_TILE),
            k,
        ),
    };
    let grid = product_grid(products, m, n, batch * splits);
    if splits == 1 {
        return Plan {
            kernel: product_kernel(products, tiles_kernel, form, flags),
            grid,
            splits,
            k_chunk,
            reduce: None,
        };
    }
    let reduce = (
        (Kernel::ReduceSplit, Specialisation { flags, form: None }),
        [(m * n).div_ceil(REDUCE_SPLIT_GROUP) as u32, 1, batch as u32],
    );
    Plan {
        kernel: product_kernel(products, tiles_kernel, form, 0),
        grid,
        splits,
        k_chunk,
        reduce: Some(reduce),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FLOATS: Reads = Reads::Floats {
        packed: None,
        k_split: false,
    };

    fn shape(batch: usize, m: usize, n: usize, k: usize) -> Shape {
        Shape { batch, m, n, k }
    }

    /// Shapes of the products of small and large models: weight gradients (few tiles, long
    /// contractions), activations (many rows), ragged edges and degenerate sizes.
    fn shapes() -> Vec<Shape> {
        let mut all = Vec::new();
        for batch in [1, 4] {
            for (m, n) in [
                (1, 1),
                (1, 16),
                (64, 64),
                (65, 1),
                (128, 512),
                (227, 113),
                (4, 32),
            ] {
                for k in [1, 15, 16, 17, 100, 3831, 12769] {
                    all.push(shape(batch, m, n, k));
                }
            }
        }
        all
    }

    #[test]
    fn splits_are_whole_tile_steps_that_cover_the_contraction() {
        for s in shapes() {
            let Plan {
                splits,
                k_chunk: chunk,
                ..
            } = plan(&Parallelism::GPU, s, FLOATS, 0);
            if splits == 1 {
                assert_eq!(chunk, s.k, "{s:?}");
                continue;
            }
            assert_eq!(chunk % MATMUL_TK, 0, "{s:?}: chunk {chunk}");
            assert!(splits * chunk >= s.k, "{s:?}: {splits} x {chunk}");
            assert!((splits - 1) * chunk < s.k, "{s:?}: an empty chunk");
            assert!(
                chunk >= Parallelism::GPU.min_split_chunk,
                "{s:?}: chunk {chunk}"
            );
        }
    }

    #[test]
    fn a_weight_gradient_is_split_on_a_gpu() {
        // One output tile summing over 12769 examples: 512 / 1 workgroups wanted.
        let p = plan(
            &Parallelism::GPU,
            shape(1, 64, 64, 12769),
            FLOATS,
            MM_ACCUMULATE,
        );
        assert!(p.splits >= Parallelism::GPU.min_splits, "{p:?}");
        assert_eq!(p.grid, [1, 1, p.splits as u32]);
        assert_eq!(p.kernel.1.flags, 0, "the chunks are plain partial products");
        let ((kernel, spec), grid) = p.reduce.expect("a split product sums its chunks");
        assert_eq!((kernel, spec.flags), (Kernel::ReduceSplit, MM_ACCUMULATE));
        assert_eq!(grid, [16, 1, 1]);
    }

    #[test]
    fn never_split_in_lanes_nor_integer_sums() {
        let lanes_gpu = Parallelism {
            products: Products::Lanes,
            ..Parallelism::GPU
        };
        for s in shapes() {
            for par in [Parallelism::CPU, lanes_gpu] {
                let p = plan(&par, s, FLOATS, 0);
                assert_eq!((p.splits, p.k_chunk, p.reduce), (1, s.k, None), "{s:?}");
                assert_eq!(p.kernel.0, Kernel::LaneMatmul);
            }
            let p = plan(&Parallelism::GPU, s, Reads::Int8, MM_ADD_BIAS);
            assert_eq!((p.splits, p.reduce), (1, None), "{s:?}");
            assert_eq!(
                p.kernel,
                (
                    Kernel::MatmulInt8,
                    Specialisation {
                        flags: 4,
                        form: None
                    }
                )
            );
        }
    }

    /// `reads` on tiles of `path` in the form `form`: a 16 x 16 tile per workgroup, unsplit.
    fn assert_on_tiles(par: &Parallelism, s: Shape, reads: Reads, path: TilePath, form: TileForm) {
        let p = plan(par, s, reads, MM_ADD_RESIDUAL);
        let spec = Specialisation {
            flags: MM_ADD_RESIDUAL,
            form: None,
        };
        assert_eq!(p.kernel, (Kernel::F16Tiles(path, form), spec), "{s:?}");
        assert_eq!((p.splits, p.k_chunk, p.reduce), (1, s.k, None), "{s:?}");
        let [x, y, z] = p.grid.map(|g| g as usize);
        assert!(x * 16 >= s.n && (x - 1) * 16 < s.n, "{s:?}: {x} columns");
        assert!(y * 16 >= s.m && (y - 1) * 16 < s.m, "{s:?}: {y} rows");
        assert_eq!(z, s.batch);
    }

    #[test]
    fn products_on_f16_tiles_when_the_layout_says() {
        let packed = Reads::Floats {
            packed: Some((1, 64)),
            k_split: true,
        };
        for path in TilePath::ALL {
            for base in [Parallelism::GPU, Parallelism::CPU] {
                let integer = Parallelism {
                    integer_tiles: Some(path),
                    ..base
                };
                let float = Parallelism {
                    float_tiles: Some(path),
                    ..base
                };
                for s in shapes() {
                    assert_on_tiles(&integer, s, Reads::Int8, path, TileForm::Int8);
                    // Products with a float operand keep the layout's kernels unless floats go
                    // on tiles too, and then the integer ones keep theirs.
                    for reads in [FLOATS, packed, Reads::Codes] {
                        assert_eq!(plan(&integer, s, reads, 0), plan(&base, s, reads, 0));
                    }
                    assert_eq!(
                        plan(&float, s, Reads::Int8, 0),
                        plan(&base, s, Reads::Int8, 0)
                    );
                    assert_on_tiles(&float, s, FLOATS, path, TileForm::Floats);
                    assert_on_tiles(&float, s, packed, path, TileForm::Floats);
                    assert_on_tiles(&float, s, Reads::Codes, path, TileForm::Codes);
                }
            }
        }
    }

    #[test]
    fn no_split_below_min_splits_or_without_a_target() {
        // 512 / 200 tiles = 2 chunks wanted: below 3.
        let par = Parallelism {
            min_splits: 3,
            ..Parallelism::GPU
        };
        assert_eq!(split_k(&par, 200, 4096), (1, 4096));
        assert_eq!(split_k(&Parallelism::GPU, 200, 4096).0, 2);
        // Chunks would be shorter than min_split_chunk.
        assert_eq!(split_k(&Parallelism::GPU, 1, 63), (1, 63));
        let off = Parallelism {
            split_target: 0,
            ..Parallelism::GPU
        };
        assert_eq!(split_k(&off, 1, 1 << 20), (1, 1 << 20));
    }

    #[test]
    fn grids_cover_the_output_with_no_idle_workgroup_row_or_column() {
        for par in [Parallelism::GPU, Parallelism::CPU] {
            let (rows, cols) = match par.products {
                Products::Tiles => (MATMUL_TILE, MATMUL_TILE),
                Products::Lanes => (LANE_ROWS, LANE_COLS),
            };
            for s in shapes() {
                let p = plan(&par, s, FLOATS, 0);
                let [x, y, z] = p.grid.map(|g| g as usize);
                assert!(
                    x * cols >= s.n && (x - 1) * cols < s.n,
                    "{s:?}: {x} columns"
                );
                assert!(y * rows >= s.m && (y - 1) * rows < s.m, "{s:?}: {y} rows");
                assert_eq!(z, s.batch * p.splits, "{s:?}");
                if let Some((_, [rx, 1, rz])) = p.reduce {
                    assert!(rx as usize * REDUCE_SPLIT_GROUP >= s.m * s.n, "{s:?}");
                    assert_eq!(rz as usize, s.batch);
                }
            }
        }
        // Ragged edges: one row or column past a tile takes a workgroup of its own.
        assert_eq!(
            plan(&Parallelism::GPU, shape(1, 65, 1, 1), FLOATS, 0).grid,
            [1, 2, 1]
        );
        assert_eq!(
            plan(&Parallelism::CPU, shape(1, 129, 17, 1), FLOATS, 0).grid,
            [2, 2, 1]
        );
    }

    #[test]
    fn lane_forms_follow_the_weight_strides() {
        let form = |packed, k_split| {
            let reads = Reads::Floats { packed, k_split };
            plan(&Parallelism::CPU, shape(1, 8, 8, 8), reads, 0)
                .kernel
                .1
                .form
        };
        assert_eq!(form(None, false), Some(LaneForm::Floats));
        assert_eq!(form(Some((8, 1)), false), Some(LaneForm::PackedRows));
        assert_eq!(form(Some((1, 8)), false), Some(LaneForm::PackedCols));
        // A split contraction walks a transposed matrix in two strides: code by code.
        assert_eq!(form(Some((1, 8)), true), Some(LaneForm::Packed));
        let codes = plan(&Parallelism::GPU, shape(1, 8, 8, 8), Reads::Codes, 0);
        assert_eq!(codes.kernel.0, Kernel::MatmulCodes);
    }
}
