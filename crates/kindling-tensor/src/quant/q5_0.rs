//! Q5_0 (`block_q5_0`): 32 weights as an f16 scale `d`, 4 bytes holding
//! each weight's fifth bit, and 16 bytes of nibbles laid out as Q4_0's;
//! `w = d·(q − 16)`, 22 bytes. Kindling reads it and does not write or
//! multiply it: llama.cpp's q4_k_m writes Q5_0 for the tensors whose rows
//! are not a whole number of Q4_K's 256-weight blocks (all of SmolLM2's
//! 576-column weights), so loading such a file needs it.

use super::f16_at;
use super::q8_0::QK;

pub(crate) const BLOCK_BYTES: usize = 2 + 4 + QK / 2;

/// ggml's `dequantize_row_q5_0`: bit j of the 32-bit `qh` is weight j's
/// fifth bit, bit j + 16 weight j + 16's.
pub(crate) fn dequantize_row(b: &[u8], out: &mut [f32]) {
    for (blk, o) in b.chunks_exact(BLOCK_BYTES).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(blk, 0);
        let qh = u32::from_le_bytes([blk[2], blk[3], blk[4], blk[5]]);
        let (lo, hi) = o.split_at_mut(QK / 2);
        for (j, ((l, h), &q)) in lo.iter_mut().zip(hi).zip(&blk[6..]).enumerate() {
            let high0 = ((qh >> j) << 4) & 0x10;
            let high1 = (qh >> (j + 12)) & 0x10;
            *l = (((q & 0x0F) as u32 | high0) as i32 - 16) as f32 * d;
            *h = (((q >> 4) as u32 | high1) as i32 - 16) as f32 * d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::*;
    use super::*;

    #[test]
    fn dequantizer_matches_gguf_py_on_ggml_blocks() {
        let bytes = fixture_bytes("q5_0.ggml");
        let mut ours = vec![0f32; bytes.len() / BLOCK_BYTES * QK];
        dequantize_row(bytes, &mut ours);
        assert_same_f32("Q5_0 dequantized", &ours, &fixture_f32("q5_0.ggml.dequant"));
    }
}
