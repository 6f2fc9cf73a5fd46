//! The binding numbers of the kernels' buffers, one module per shader file, named after the
//! WGSL variable they bind (upper case). The host binds by these constants, and each shader is
//! compiled after their WGSL declarations (`NAME_BINDING`, [`wgsl`]), which its `@binding`
//! attributes and `at(...)` offsets name: the two sides cannot disagree. The uniform is at
//! [`UNIFORM_BINDING`] and the model axis at `MODEL_AXIS_BINDING` in every file.

/// The binding of every kernel's uniform (`prm`).
pub const UNIFORM_BINDING: u32 = 0;
/// Binding of the model axis uniform (shaders/include/model_axis.wgsl), and how many bindings
/// below it its strides cover (a multiple of 4).
pub const MODEL_AXIS_BINDING: u32 = 24;

macro_rules! bindings {
    ($($(#[$doc:meta])* $module:ident: $($file:literal)|+ { $($name:ident = $n:literal,)+ })+) => {
        $(
            $(#[$doc])*
            pub mod $module {
                $(pub const $name: u32 = $n;)+
            }
        )+

        /// The bindings of shader file `file` by name (none for a file not listed).
        pub fn of_file(file: &str) -> &'static [(&'static str, u32)] {
            match file {
                $($($file)|+ => &[$((stringify!($name), $n)),+],)+
                _ => &[],
            }
        }
    };
}

bindings! {
    /// shaders/include/matmul_operands.wgsl (every product) and shaders/matmul.wgsl.
    matmul: "matmul" | "matmul_lanes" | "matmul_f16" | "matmul_coop" {
        A_BUF = 1,
        B_BUF = 2,
        C_BUF = 3,
        R_BUF = 4,
        BIAS_BUF = 5,
        PARTIALS = 6,
        PACKED = 7,
        SCALES = 8,
        A_CODES = 9,
        A_STEPS = 10,
    }
    /// shaders/quantize.wgsl.
    quantize: "quantize" {
        DESCS = 0,
        PARAMS = 1,
        QPARAMS = 2,
        PACKED = 3,
        SCALES = 4,
        GRADS = 5,
    }
    /// shaders/optimizer.wgsl.
    optimizer: "optimizer" {
        HYPERS = 0,
        STATE = 1,
        PARAMS = 2,
        GRADS = 3,
        M = 4,
        V = 5,
    }
    /// shaders/norm.wgsl.
    norm: "norm" {
        X = 1,
        Y = 2,
        INV_RMS = 3,
        GAIN = 4,
        DY = 5,
        BASE = 6,
        DX = 7,
        INV_RMS_IN = 8,
        CODES = 9,
        STEPS = 10,
    }
    /// shaders/embed.wgsl.
    embed: "embed" {
        QPARAMS = 1,
        TABLE = 2,
        DTABLE = 3,
        GRADS = 4,
        PACKED = 5,
        SCALES = 6,
    }
    /// shaders/attention.wgsl.
    attention: "attention" {
        EXAMPLES = 1,
        K_TAB = 2,
        V_TAB = 3,
        Q = 4,
        PATTERN = 5,
        Z = 6,
        PATTERN_IN = 7,
        DZ = 8,
        DS = 9,
        DS_IN = 10,
        CSR_START = 11,
        CSR_ITEMS = 12,
        DK_TAB = 13,
        DV_TAB = 14,
        DQ = 15,
        ROW_DS = 16,
        ROW_DS_IN = 17,
    }
    /// shaders/loss.wgsl.
    loss: "loss" {
        LOGITS = 1,
        LABELS = 2,
        PER_EXAMPLE = 3,
        DLOGITS = 4,
        PER_EXAMPLE_IN = 5,
        STATE = 6,
        METRICS = 7,
        GROUPS = 8,
    }
}

/// The WGSL declarations of the bindings of shader file `file`.
pub fn wgsl(file: &str) -> String {
    of_file(file)
        .iter()
        .map(|(name, n)| format!("const {name}_BINDING: u32 = {n}u;\n"))
        .collect()
}
