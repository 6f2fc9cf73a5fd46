//! GPU buffers: parameters and optimiser state, the per-(token, position) tables, and the
//! activations of one batch of examples; each holds one equal slice per model of the engine
//! (shaders/include/model_axis.wgsl).

use wgpu::util::DeviceExt;

use crate::model::{ModelConfig, QuantGroup};
use crate::task::Examples;

/// Usage of every storage buffer: kernels read and write it, the host uploads and reads back.
const STORAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// A zeroed f32 storage buffer of `len` elements (at least one: empty bindings are invalid).
pub fn zeros(device: &wgpu::Device, label: &str, len: usize) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: (len.max(1) * 4) as u64,
        usage: STORAGE,
        mapped_at_creation: false,
    })
}

pub fn with_data<T: bytemuck::Pod>(device: &wgpu::Device, label: &str, data: &[T]) -> wgpu::Buffer {
    let bytes: &[u8] = bytemuck::cast_slice(data);
    let padded;
    let contents = if bytes.is_empty() {
        padded = [0u8; 4];
        &padded[..]
    } else {
        bytes
    };
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents,
        usage: STORAGE,
    })
}

/// Allocates buffers of one slice per model.
#[derive(Clone, Copy)]
pub struct Stack<'d> {
    pub device: &'d wgpu::Device,
    pub models: usize,
}

impl Stack<'_> {
    /// `len` zeroed floats per model.
    pub fn zeros(&self, label: &str, len: usize) -> wgpu::Buffer {
        zeros(self.device, label, len * self.models)
    }

    /// Each model's slice from its own data (one slice per model, all of one length).
    pub fn per_model<T: bytemuck::Pod>(&self, label: &str, slices: &[Vec<T>]) -> wgpu::Buffer {
        assert_eq!(slices.len(), self.models, "one slice per model");
        assert!(
            slices.iter().all(|s| s.len() == slices[0].len()),
            "model slices of one length"
        );
        with_data(self.device, label, &slices.concat())
    }

    /// The same data in every model's slice.
    pub fn repeated<T: bytemuck::Pod>(&self, label: &str, data: &[T]) -> wgpu::Buffer {
        with_data(self.device, label, &data.repeat(self.models))
    }
}

/// A `Linear` input as int8 codes, four per u32 (each row padded to whole words by zero codes),
/// and each row's step (the value of code 1); written by shaders/norm.wgsl for the products of
/// shaders/matmul.wgsl.
pub struct Int8Rows {
    pub codes: wgpu::Buffer,
    pub steps: wgpu::Buffer,
    /// Words per row.
    pub row_words: usize,
}

impl Int8Rows {
    fn new(stack: Stack, label: &str, rows: usize, width: usize) -> Self {
        let row_words = width.div_ceil(4);
        Int8Rows {
            codes: stack.zeros(&format!("{label}_codes"), rows * row_words),
            steps: stack.zeros(&format!("{label}_steps"), rows),
            row_words,
        }
    }
}

/// The input of a `Linear` after `Qa(N(.))`, in the form its products read: floats, or int8
/// codes when its weights are quantised and take them ([`ModelConfig::integer_inputs`]; the
/// other form is then an empty placeholder), with each row's inverse RMS for the backward pass.
pub struct LinearInput {
    pub float: wgpu::Buffer,
    pub int8: Int8Rows,
    /// The products read `int8`, not `float`.
    pub integer: bool,
    pub inv: wgpu::Buffer,
    /// The transform is the identity (no norm, quantisation or ReLU): `float` is the input
    /// buffer itself, and nothing computes it or its gradient.
    pub identity: bool,
}

impl LinearInput {
    /// The input of a `Linear` of `group` that reads `x` (`rows x width`), through a ReLU first
    /// when `relu`.
    fn new(
        stack: Stack,
        (c, group): (&ModelConfig, QuantGroup),
        label: &str,
        (x, relu): (&wgpu::Buffer, bool),
        rows: usize,
        width: usize,
    ) -> Self {
        let identity = c.plain_linear_inputs() && !relu;
        let integer = c.integer_inputs(group);
        let (float_rows, int8_rows) = if integer { (0, rows) } else { (rows, 0) };
        LinearInput {
            float: if identity {
                x.clone()
            } else {
                stack.zeros(label, float_rows * width)
            },
            int8: Int8Rows::new(stack, label, int8_rows, width),
            integer,
            inv: stack.zeros(&format!("{label}_inv_rms"), rows),
            identity,
        }
    }

    /// The floats, and the int8 codes when the products read those instead.
    pub fn forms(&self) -> (&wgpu::Buffer, Option<&Int8Rows>) {
        (&self.float, self.integer.then_some(&self.int8))
    }
}

/// Tables of the residual stream at the embedding and of K, V, indexed by (token, position):
/// 2p + 1 rows (see shaders/embed.wgsl), plus the single query row of `=`.
pub struct Tables {
    pub rows: usize,
    pub x0: wgpu::Buffer,
    pub a0: LinearInput,
    pub k: wgpu::Buffer,
    pub v: wgpu::Buffer,
    pub q: wgpu::Buffer,
    pub dk: wgpu::Buffer,
    pub dv: wgpu::Buffer,
    pub dq: wgpu::Buffer,
    /// [H, rows]: the attention score gradient summed over the examples that use each row.
    pub row_ds: wgpu::Buffer,
    pub da0: wgpu::Buffer,
    pub dx0: wgpu::Buffer,
}

impl Tables {
    pub fn new(stack: Stack, c: &ModelConfig) -> Self {
        let rows = 2 * c.p + 1;
        let (d, a) = (c.d_model, c.d_attn());
        let x0 = stack.zeros("x0_table", rows * d);
        Tables {
            rows,
            a0: LinearInput::new(
                stack,
                (c, QuantGroup::Attn),
                "a0_table",
                (&x0, false),
                rows,
                d,
            ),
            x0,
            k: stack.zeros("k_table", rows * a),
            v: stack.zeros("v_table", rows * a),
            q: stack.zeros("q", a),
            dk: stack.zeros("dk_table", rows * a),
            dv: stack.zeros("dv_table", rows * a),
            dq: stack.zeros("dq", a),
            row_ds: stack.zeros("row_ds", c.n_heads * rows),
            // Plain inputs: the products write dx0 directly.
            da0: stack.zeros(
                "da0_table",
                if c.plain_linear_inputs() { 0 } else { rows * d },
            ),
            dx0: stack.zeros("dx0_table", rows * d),
        }
    }
}

/// Activations of the last position for a batch of examples (`a*`: the `Linear` inputs).
pub struct Batch {
    pub n: usize,
    pub examples: wgpu::Buffer,
    pub labels: wgpu::Buffer,
    /// 1 for examples whose transpose (b, a) is in the train set (see shaders/loss.wgsl).
    pub groups: wgpu::Buffer,
    pub pattern: wgpu::Buffer,
    pub z: wgpu::Buffer,
    pub az: LinearInput,
    pub x1: wgpu::Buffer,
    pub a1: LinearInput,
    pub pre: wgpu::Buffer,
    pub a2: LinearInput,
    pub x2: wgpu::Buffer,
    pub x2n: wgpu::Buffer,
    pub inv_f: wgpu::Buffer,
    pub logits: wgpu::Buffer,
    pub per_example: wgpu::Buffer,
    pub dlogits: wgpu::Buffer,
    pub grads: Option<BatchGrads>,
}

/// Backward-pass buffers, only for the batch that is trained on.
pub struct BatchGrads {
    /// CSR index from table row (a or b at its position) to the (example, slot) items using it.
    pub csr_start: wgpu::Buffer,
    pub csr_items: wgpu::Buffer,
    pub dx2n: wgpu::Buffer,
    pub dx2: wgpu::Buffer,
    pub da2: wgpu::Buffer,
    pub dpre: wgpu::Buffer,
    pub da1: wgpu::Buffer,
    pub dx1: wgpu::Buffer,
    pub daz: wgpu::Buffer,
    pub dz: wgpu::Buffer,
    pub ds: wgpu::Buffer,
}

impl Batch {
    /// A batch of each model's examples (`sets`, all of one size) with their `groups`.
    pub fn new(
        stack: Stack,
        c: &ModelConfig,
        sets: &[&Examples],
        groups: &[Vec<u32>],
        with_grad: bool,
    ) -> Self {
        let n = sets[0].len();
        let (d, a, m, p, h) = (c.d_model, c.d_attn(), c.d_mlp, c.p, c.n_heads);
        let pairs: Vec<Vec<u32>> = sets
            .iter()
            .map(|ex| ex.a.iter().zip(&ex.b).flat_map(|(&a, &b)| [a, b]).collect())
            .collect();
        let labels: Vec<Vec<u32>> = sets.iter().map(|ex| ex.labels.clone()).collect();
        let plain = c.plain_linear_inputs();
        let grads = with_grad.then(|| {
            let (csr_start, csr_items): (Vec<_>, Vec<_>) =
                sets.iter().map(|ex| csr_index(ex, p)).unzip();
            BatchGrads {
                csr_start: stack.per_model("csr_start", &csr_start),
                csr_items: stack.per_model("csr_items", &csr_items),
                dx2n: stack.zeros("dx2n", n * d),
                dx2: stack.zeros("dx2", n * d),
                da2: stack.zeros("da2", n * m),
                dpre: stack.zeros("dpre", n * m),
                // Gradients of the Linear inputs; plain inputs have none of their own (the
                // products write dx1 and dz directly).
                da1: stack.zeros("da1", if plain { 0 } else { n * d }),
                dx1: stack.zeros("dx1", n * d),
                daz: stack.zeros("daz", if plain { 0 } else { n * a }),
                dz: stack.zeros("dz", n * a),
                ds: stack.zeros("ds", n * h * 3),
            }
        });
        let (z, x1, pre) = (
            stack.zeros("z", n * a),
            stack.zeros("x1", n * d),
            stack.zeros("pre", n * m),
        );
        Batch {
            n,
            examples: stack.per_model("examples", &pairs),
            labels: stack.per_model("labels", &labels),
            groups: stack.per_model("groups", groups),
            pattern: stack.zeros("pattern", n * h * 3),
            az: LinearInput::new(stack, (c, QuantGroup::Attn), "az", (&z, false), n, a),
            a1: LinearInput::new(stack, (c, QuantGroup::Mlp), "a1", (&x1, false), n, d),
            a2: LinearInput::new(stack, (c, QuantGroup::Mlp), "a2", (&pre, true), n, m),
            z,
            x1,
            pre,
            x2: stack.zeros("x2", n * d),
            x2n: stack.zeros("x2n", n * d),
            inv_f: stack.zeros("inv_f", n),
            logits: stack.zeros("logits", n * c.d_vocab_out()),
            per_example: stack.zeros("per_example", n * 2),
            dlogits: stack.zeros("dlogits", n * c.d_vocab_out()),
            grads,
        }
    }
}

/// For each table row r < 2p, the items `n * 3 + slot` of the examples whose token at `slot`
/// reads row r: `items[start[r]..start[r + 1]]`.
fn csr_index(ex: &Examples, p: usize) -> (Vec<u32>, Vec<u32>) {
    let mut lists: Vec<Vec<u32>> = vec![Vec::new(); 2 * p];
    for n in 0..ex.len() {
        lists[ex.a[n] as usize].push(n as u32 * 3);
        lists[p + ex.b[n] as usize].push(n as u32 * 3 + 1);
    }
    let mut start = vec![0u32];
    let mut items = Vec::new();
    for list in lists {
        items.extend(list);
        start.push(items.len() as u32);
    }
    (start, items)
}
