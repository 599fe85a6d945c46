//! Strided copies and dtype conversion.

use crate::layout::{for_each_row, Layout};
use crate::{CpuStorage, DType};
use half::{bf16, f16};

/// The elements of `layout` over `data`, in row-major order.
pub fn gather_strided<T: Copy>(data: &[T], layout: &Layout) -> Vec<T> {
    if let Some(r) = layout.contiguous_range() {
        return data[r].to_vec();
    }
    let mut out = Vec::with_capacity(layout.numel());
    for_each_row(layout, |start, stride, len| {
        if stride == 1 {
            out.extend_from_slice(&data[start..start + len]);
        } else {
            out.extend((0..len).map(|i| data[start + i * stride]));
        }
    });
    out
}

pub fn gather_any(s: &CpuStorage, layout: &Layout) -> CpuStorage {
    match s {
        CpuStorage::F32(v) => CpuStorage::F32(gather_strided(v, layout)),
        CpuStorage::F16(v) => CpuStorage::F16(gather_strided(v, layout)),
        CpuStorage::BF16(v) => CpuStorage::BF16(gather_strided(v, layout)),
        CpuStorage::I64(v) => CpuStorage::I64(gather_strided(v, layout)),
        CpuStorage::U8(v) => CpuStorage::U8(gather_strided(v, layout)),
    }
}

pub fn convert(s: &CpuStorage, layout: &Layout, to: DType) -> CpuStorage {
    let n = layout.numel();
    let mut vals = Vec::with_capacity(n);
    for_each_row(layout, |start, stride, len| {
        vals.extend((0..len).map(|i| s.get_f64(start + i * stride)))
    });
    match to {
        DType::F32 => CpuStorage::F32(vals.iter().map(|&x| x as f32).collect()),
        DType::F16 => CpuStorage::F16(vals.iter().map(|&x| f16::from_f64(x)).collect()),
        DType::BF16 => CpuStorage::BF16(vals.iter().map(|&x| bf16::from_f64(x)).collect()),
        DType::I64 => CpuStorage::I64(vals.iter().map(|&x| x as i64).collect()),
        DType::U8 => CpuStorage::U8(vals.iter().map(|&x| x as u8).collect()),
    }
}

/// Writes contiguous `src` (shape `[outer, n, inner]` seen flat) into the
/// slot `start..start+n` along the middle dim of `dst` (`[outer, total, inner]`).
/// Serves `cat` and the backward of `narrow`.
pub fn copy_into_slot(
    dst: &mut [f32],
    total: usize,
    src: &[f32],
    n: usize,
    start: usize,
    inner: usize,
) {
    let block = n * inner;
    if block == 0 {
        return;
    }
    for (o, chunk) in src.chunks_exact(block).enumerate() {
        let at = (o * total + start) * inner;
        dst[at..at + block].copy_from_slice(chunk);
    }
}

/// The `[cols, rows]` transpose, contiguous, of a `[rows, cols]` matrix whose
/// rows are `row_stride` apart, in 16x16 tiles so both sides are read and
/// written a cache line at a time.
pub fn transpose(src: &[f32], rows: usize, cols: usize, row_stride: usize) -> Vec<f32> {
    const TILE: usize = 16;
    let mut out = vec![0f32; rows * cols];
    for r0 in (0..rows).step_by(TILE) {
        for c0 in (0..cols).step_by(TILE) {
            for r in r0..(r0 + TILE).min(rows) {
                for c in c0..(c0 + TILE).min(cols) {
                    out[c * rows + r] = src[r * row_stride + c];
                }
            }
        }
    }
    out
}
