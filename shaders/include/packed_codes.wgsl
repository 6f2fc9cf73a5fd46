// Included before every shader file (src/engine/kernels.rs, `prelude`).

// The packed form of a quantised weight matrix (written by shaders/quantize.wgsl): binary
// weights as sign bits, 32 per u32 (bit set: -1), ternary ones as 2-bit codes, 16 per u32
// (0: 0, 1: +1, 2: -1); element e is code e % per_word of word e / per_word. Its value is
// code * the matrix's scale.
const PACKED_BINARY: u32 = 1u;
const PACKED_TERNARY: u32 = 2u;

// Codes per packed word of a matrix packed as `mode`.
fn packed_codes_per_word(mode: u32) -> u32 {
    return select(16u, 32u, mode == PACKED_BINARY);
}

// Code p of a packed word.
fn packed_code_in_word(mode: u32, word: u32, p: u32) -> i32 {
    if (mode == PACKED_BINARY) {
        return select(1, -1, ((word >> p) & 1u) == 1u);
    }
    let code = (word >> (2u * p)) & 3u;
    return select(select(0, 1, code == 1u), -1, code == 2u);
}

// The bits of `code` (-1, 0 or +1) at position p of a word.
fn packed_code_bits(mode: u32, code: i32, p: u32) -> u32 {
    if (mode == PACKED_BINARY) {
        return select(0u, 1u, code < 0) << p;
    }
    return select(select(0u, 1u, code > 0), 2u, code < 0) << (2u * p);
}
