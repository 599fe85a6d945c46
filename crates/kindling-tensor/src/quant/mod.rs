//! Weights in llama.cpp's block formats, and products with them that never
//! dequantize the matrix.
//!
//! Each format is a file holding what ggml-quants keeps together: the block
//! layout, the reference quantizer (byte-for-byte the output of ggml's
//! `quantize_row_*_ref` for the same f32 input), the dequantizer, and the
//! block dot products — a scalar reference, an AVX2 kernel
//! (`_mm256_maddubs_epi16` + `_mm256_madd_epi16`) and an AVX-512 kernel on
//! VNNI (`_mm512_dpbusd_epi32` / `_mm512_dpwssd_epi32`):
//!
//! | type | weights per block | bytes | file |
//! | --- | --- | --- | --- |
//! | Q8_0 | 32 | 34: f16 d, 32 × i8 | `q8_0.rs` (also the Q8_0/Q8_1 activations) |
//! | Q4_0 | 32 | 18: f16 d, 16 bytes of nibbles, w = d·(q−8) | `q4_0.rs` |
//! | Q4_1 | 32 | 20: f16 d, f16 m, nibbles, w = d·q + m | `q4_1.rs` |
//! | Q4_K | 256 | 144: f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, nibbles | `q4_k.rs` |
//! | Q6_K | 256 | 210: 128 bytes low nibbles, 64 bytes high 2 bits, 16 × i8 scales, f16 d | `q6_k.rs` (no quantizer) |
//! | Q5_0 | 32 | 22: f16 d, 4 bytes of fifth bits, nibbles, w = d·(q−16) | `q5_0.rs` (dequantizer only) |
//!
//! `QMatrix::matmul` works as llama.cpp's CPU backend does: each row of
//! activations is quantized once per call — to Q8_0 blocks of 32 (Q8_1 for
//! Q4_1, which also needs d·Σq) or to Q8_K blocks of 256 with 16-element
//! sums (`q8_k.rs`) for the K formats — and every output is a sum over
//! blocks of `d_w · d_x · (integer dot product)`. The integer part is exact
//! in every kernel. For Q8_0, Q4_0 and Q4_1 the float sum follows ggml's
//! order too (per-lane FMA chains for Q8_0 and Q4_1, one FMA per block sum
//! for Q4_0, as in llama.cpp's AVX-512 build), so every kernel family gives
//! the scalar reference's bits and llama.cpp's; the K formats add in their
//! own order and agree to f32 summation-order tolerance.
//!
//! Work is split over rayon tasks by weight rows, never inside a row, so a
//! result does not depend on the number of threads. A decoding step (few
//! activation rows) multiplies by tiles packed once at the first product
//! (`tiles::pack`: Q8_0, Q4_0, Q4_1 on AVX-512 VNNI, Q4_0 on AVX2; 16 rows
//! a tile) or else runs the format's row kernel; a prompt (m from 4–8 up,
//! `tiles::min_rows`) runs `tiles.rs` with tiles packed per call: 16 (VNNI)
//! or 8 (AVX2) weight rows rearranged so a vector lane is a row and a block
//! costs one conversion and one FMA per 16 outputs.
//!
//! Kernels are chosen at run time from what the CPU has ([`isa`]), never by
//! build flags; `KINDLING_SIMD=baseline|avx2` caps the choice as it does for
//! the f32 kernels. Measured with `cargo run --release -p kindling-tensor
//! --example qmatmul_bench` on SmolLM2-135M's shapes: against the f32 GEMM,
//! 1.5–2.4x at m = 1 for the layer weights (whose 4-bit copies stay in
//! cache) and 4.6–5.7x for the 49152-row head, 1.7–3.5x at m = 64 (AVX-512
//! VNNI, one thread).

pub(crate) mod q4_0;
pub(crate) mod q4_1;
pub(crate) mod q4_k;
pub(crate) mod q5_0;
pub(crate) mod q6_k;
pub(crate) mod q8_0;
pub(crate) mod q8_k;
pub(crate) mod tiles;

use crate::cpu::simd;
use crate::gguf::GgmlType;
use crate::{Error, Result};
use rayon::prelude::*;
use std::sync::OnceLock;

/// The kernel family `QMatrix::matmul` runs on this CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Isa {
    /// Plain Rust loops: the reference the others are tested against.
    Scalar,
    /// AVX2 + FMA + F16C: `maddubs`/`madd` integer dot products, 32 bytes at a time.
    Avx2,
    /// AVX-512 F/BW/VL + VNNI: `dpbusd`/`dpwssd`, 64 bytes at a time.
    Avx512Vnni,
}

impl Isa {
    pub fn name(self) -> &'static str {
        match self {
            Isa::Scalar => "scalar",
            Isa::Avx2 => "avx2",
            Isa::Avx512Vnni => "avx512-vnni",
        }
    }

    /// Whether this CPU can run the kernel family (every feature its
    /// `#[target_feature]` functions enable; enabling one the CPU lacks
    /// would be undefined behaviour).
    pub fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                is_x86_feature_detected!("avx2")
                    && is_x86_feature_detected!("fma")
                    && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512Vnni => {
                Isa::Avx2.supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
                    && is_x86_feature_detected!("avx512vnni")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }
}

/// The best kernel family this CPU supports, capped by `KINDLING_SIMD`
/// (read once through `simd::level()`).
pub fn isa() -> Isa {
    static ISA: OnceLock<Isa> = OnceLock::new();
    *ISA.get_or_init(|| {
        let cap = match simd::level() {
            simd::Level::Baseline => Isa::Scalar,
            simd::Level::Avx2 => Isa::Avx2,
            simd::Level::Avx512 => Isa::Avx512Vnni,
        };
        [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|i| *i <= cap && i.supported())
            .unwrap_or(Isa::Scalar)
    })
}

/// A weight matrix `[rows, cols]` (out features × in features, row-major
/// like `Linear`'s weight) stored as ggml blocks: each row is
/// `cols / block` whole blocks, rows back to back, exactly as a GGUF
/// tensor's data.
#[derive(Clone)]
pub struct QMatrix {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    bytes: Vec<u8>,
    /// Q8_0, Q4_0, Q4_1 on AVX-512 VNNI: the rows rearranged into tiles at
    /// the first product (`tiles::pack`), as llama.cpp repacks Q4_0 at load.
    packed: std::sync::OnceLock<Option<Vec<u8>>>,
}

/// Equal type, shape and bytes (the packed copy is a cache).
impl PartialEq for QMatrix {
    fn eq(&self, other: &QMatrix) -> bool {
        (self.ty, self.rows, self.cols) == (other.ty, other.rows, other.cols)
            && self.bytes == other.bytes
    }
}

/// The shape and type, not megabytes of block bytes.
impl std::fmt::Debug for QMatrix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "QMatrix {{ ty: {}, rows: {}, cols: {}, bytes: {} }}",
            self.ty.name(),
            self.rows,
            self.cols,
            self.bytes.len()
        )
    }
}

/// The block-quantized types `QMatrix` holds, with its own check so every
/// constructor says the same thing.
fn check_quantized(ty: GgmlType, op: &str) -> Result<()> {
    match ty {
        GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q4_K | GgmlType::Q6_K => {
            Ok(())
        }
        GgmlType::Q5_0 => Err(Error::msg(format!(
            "{op}: Kindling reads Q5_0 tensors only as f32 (gguf::dequantize); QMatrix holds Q8_0, Q4_0, Q4_1, Q4_K and Q6_K"
        ))),
        _ => Err(Error::msg(format!(
            "{op}: {} is not a block-quantized type (Q8_0, Q4_0, Q4_1, Q4_K and Q6_K are)",
            ty.name()
        ))),
    }
}

fn check_cols(ty: GgmlType, cols: usize, op: &str) -> Result<()> {
    let (per_block, _) = ty.block();
    if !cols.is_multiple_of(per_block) {
        return Err(Error::msg(format!(
            "{op}: {} needs rows of whole {per_block}-weight blocks, but cols = {cols} is not a multiple of {per_block}",
            ty.name()
        )));
    }
    Ok(())
}

impl QMatrix {
    /// Quantizes the row-major `[rows, cols]` matrix `w` with ggml's
    /// reference quantizer for `ty` (the same bytes `llama-quantize` writes
    /// without an importance matrix).
    pub fn quantize(ty: GgmlType, w: &[f32], rows: usize, cols: usize) -> Result<QMatrix> {
        check_quantized(ty, "QMatrix::quantize")?;
        check_cols(ty, cols, "QMatrix::quantize")?;
        if w.len() != rows * cols {
            return Err(Error::msg(format!(
                "QMatrix::quantize: {} weights given for a [{rows}, {cols}] matrix",
                w.len()
            )));
        }
        let quantize_row: fn(&[f32], &mut [u8]) = match ty {
            GgmlType::Q8_0 => q8_0::quantize_row,
            GgmlType::Q4_0 => q4_0::quantize_row,
            GgmlType::Q4_1 => q4_1::quantize_row,
            GgmlType::Q4_K => q4_k::quantize_row,
            _ => {
                return Err(Error::msg(format!(
                    "QMatrix::quantize: Kindling reads {} but does not write it (Q8_0, Q4_0, Q4_1 and Q4_K can be quantized)",
                    ty.name()
                )))
            }
        };
        let row_bytes = row_bytes(ty, cols);
        let mut bytes = vec![0u8; rows * row_bytes];
        if rows > 0 && row_bytes > 0 {
            bytes
                .par_chunks_mut(row_bytes)
                .zip(w.par_chunks(cols))
                .for_each(|(out, x)| quantize_row(x, out));
        }
        Ok(QMatrix {
            ty,
            rows,
            cols,
            bytes,
            packed: std::sync::OnceLock::new(),
        })
    }

    /// Wraps block bytes (a GGUF tensor's data, say) after checking that
    /// they are exactly `rows` rows of `cols` weights of `ty`.
    pub fn from_bytes(ty: GgmlType, rows: usize, cols: usize, bytes: Vec<u8>) -> Result<QMatrix> {
        check_quantized(ty, "QMatrix::from_bytes")?;
        check_cols(ty, cols, "QMatrix::from_bytes")?;
        let want = rows.checked_mul(row_bytes(ty, cols)).ok_or_else(|| {
            Error::msg(format!("QMatrix::from_bytes: [{rows}, {cols}] overflows"))
        })?;
        if bytes.len() != want {
            return Err(Error::msg(format!(
                "QMatrix::from_bytes: a [{rows}, {cols}] {} matrix is {want} bytes, {} were given",
                ty.name(),
                bytes.len()
            )));
        }
        Ok(QMatrix {
            ty,
            rows,
            cols,
            bytes,
            packed: std::sync::OnceLock::new(),
        })
    }

    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Out features.
    pub fn rows(&self) -> usize {
        self.rows
    }
    /// In features.
    pub fn cols(&self) -> usize {
        self.cols
    }
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The weights as f32, row-major `[rows, cols]`.
    pub fn dequantize(&self) -> Vec<f32> {
        dequantize(self.ty, &self.bytes)
    }

    /// Rows `ids` as f32, `[ids.len(), cols]` (an embedding lookup on the
    /// blocks, as llama.cpp's `get_rows`: the same values as `dequantize`'s
    /// rows). An id past the last row is an `Error::Index`.
    pub fn dequantize_rows(&self, ids: &[i64]) -> Result<Vec<f32>> {
        let rb = row_bytes(self.ty, self.cols);
        let mut out = Vec::with_capacity(ids.len() * self.cols);
        for &id in ids {
            if id < 0 || id as usize >= self.rows {
                return Err(Error::Index {
                    op: "QMatrix::dequantize_rows",
                    index: id,
                    size: self.rows,
                });
            }
            let r = id as usize;
            out.extend(dequantize(self.ty, &self.bytes[r * rb..(r + 1) * rb]));
        }
        Ok(out)
    }

    /// `y[m, rows] = x[m, cols] · Wᵀ`, without dequantizing W: each row of
    /// `x` is quantized to 8 bits per block as llama.cpp does, then every
    /// output is a sum of integer block dot products.
    pub fn matmul(&self, x: &[f32], m: usize) -> Result<Vec<f32>> {
        self.matmul_with(isa(), x, m)
    }

    /// `matmul` on a chosen kernel family (tests compare them all).
    pub(crate) fn matmul_with(&self, isa: Isa, x: &[f32], m: usize) -> Result<Vec<f32>> {
        if x.len() != m * self.cols {
            return Err(Error::shape(
                "QMatrix::matmul",
                format!(
                    "x has {} values, [{m}, {}] expected for a [{}, {}] {} weight",
                    x.len(),
                    self.cols,
                    self.rows,
                    self.cols,
                    self.ty.name()
                ),
            ));
        }
        if !isa.supported() {
            return Err(Error::msg(format!(
                "QMatrix::matmul: this CPU cannot run the {} kernels",
                isa.name()
            )));
        }
        let (n, k) = (self.rows, self.cols);
        if m == 0 || n == 0 {
            return Ok(vec![0.0; m * n]);
        }
        let acts = Acts::quantize(self.ty, isa, x, m, k);
        let row_bytes = row_bytes(self.ty, k);
        #[cfg(target_arch = "x86_64")]
        // Few activation rows (decoding): the tiles packed once. Many (a
        // prompt): packing per call is paid back, and measured faster.
        let packed = if tiles::packed_applies(isa, self.ty) && !tiles::applies(isa, self.ty, m) {
            self.packed
                .get_or_init(|| tiles::pack(self.ty, &self.bytes, n, k))
                .as_deref()
        } else {
            None
        };
        let mut y = vec![0f32; m * n];
        // out[r * ld + j] = weight row first + j · activation row r.
        let work = |first: usize, rows: usize, out: &mut [f32], ld: usize| {
            let w = &self.bytes[first * row_bytes..][..rows * row_bytes];
            // Whole tiles first where they apply, the rest by rows.
            #[allow(unused_mut)]
            let mut done = 0;
            #[cfg(target_arch = "x86_64")]
            match (packed, &acts) {
                (Some(p), Acts::Q8(a)) if first % tiles::PACK_ROWS == 0 => {
                    let whole = rows / tiles::PACK_ROWS;
                    let first = first / tiles::PACK_ROWS;
                    tiles::packed_product(isa, self.ty, p, first, whole, a, out, ld);
                    done = whole * tiles::PACK_ROWS;
                }
                _ if tiles::applies(isa, self.ty, m) => {
                    done = tiles::whole_tiles(isa, self.ty, w, row_bytes, &acts, out, ld);
                }
                _ => {}
            }
            let (w, out) = (&w[done * row_bytes..], &mut out[done..]);
            if w.is_empty() {
                return;
            }
            match (self.ty, &acts) {
                (GgmlType::Q8_0, Acts::Q8(a)) => q8_0::rows(isa, w, row_bytes, a, m, out, ld),
                (GgmlType::Q4_0, Acts::Q8(a)) => q4_0::rows(isa, w, row_bytes, a, m, out, ld),
                (GgmlType::Q4_1, Acts::Q8(a)) => q4_1::rows(isa, w, row_bytes, a, m, out, ld),
                (GgmlType::Q4_K, Acts::Q8K(a, _)) => q4_k::rows(isa, w, row_bytes, a, m, out, ld),
                (GgmlType::Q6_K, Acts::Q8K(a, _)) => q6_k::rows(isa, w, row_bytes, a, m, out, ld),
                _ => unreachable!("Acts::quantize picks the activation blocks for the type"),
            }
        };
        if n * k * m <= SERIAL_MAX_MACS {
            work(0, n, &mut y, n);
            return Ok(y);
        }
        let mut per_task = rows_per_task(n, k, m);
        if tiles::applies(isa, self.ty, m) {
            per_task = per_task.next_multiple_of(tiles::rows_per_tile(isa));
        }
        #[cfg(target_arch = "x86_64")]
        if packed.is_some() {
            per_task = per_task.next_multiple_of(tiles::PACK_ROWS);
        }
        if m == 1 {
            // A task's outputs are a contiguous run of y.
            y.par_chunks_mut(per_task)
                .enumerate()
                .for_each(|(t, out)| work(t * per_task, out.len(), out, out.len()));
            return Ok(y);
        }
        // A task computes all m rows of its columns of y, [m, rows], then
        // copies each row's run into place.
        let columns = Columns(y.as_mut_ptr());
        (0..n.div_ceil(per_task)).into_par_iter().for_each(|t| {
            let (first, rows) = (t * per_task, per_task.min(n - t * per_task));
            let mut out = vec![0f32; m * rows];
            work(first, rows, &mut out, rows);
            for (r, run) in out.chunks_exact(rows).enumerate() {
                // SAFETY: task t alone writes y[r * n + first..][..rows]
                // (the tasks' column ranges are disjoint), within y's m·n
                // values, and y outlives the parallel loop.
                unsafe {
                    std::ptr::copy_nonoverlapping(run.as_ptr(), columns.at(r * n + first), rows)
                };
            }
        });
        Ok(y)
    }
}

/// `matmul`'s output, shared by tasks that write disjoint columns of it.
struct Columns(*mut f32);
// SAFETY: used only to write disjoint ranges from different threads.
unsafe impl Sync for Columns {}
impl Columns {
    fn at(&self, i: usize) -> *mut f32 {
        self.0.wrapping_add(i)
    }
}

/// Products smaller than this (multiply-adds) run on the calling thread:
/// handing them to the pool costs more than it saves.
const SERIAL_MAX_MACS: usize = 1 << 17;

/// Weight rows per task: small enough that both threads get work on the
/// smallest SmolLM2 matrices, large enough to amortize scheduling (a task
/// does at least ~64K multiply-adds).
fn rows_per_task(n: usize, k: usize, m: usize) -> usize {
    let min_rows = (1 << 16) / (k * m).max(1);
    let even = n.div_ceil(4 * rayon::current_num_threads().max(1));
    min_rows.max(even).clamp(1, 64)
}

/// Bytes of one row of `cols` weights of `ty` (`cols` a whole number of blocks).
pub(crate) fn row_bytes(ty: GgmlType, cols: usize) -> usize {
    let (per_block, bytes) = ty.block();
    cols / per_block * bytes
}

/// Weights of `ty` blocks as f32 (`bytes` holds whole blocks).
pub(crate) fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    let (per_block, block_bytes) = ty.block();
    let mut out = vec![0f32; bytes.len() / block_bytes * per_block];
    let bytes = &bytes[..bytes.len() / block_bytes * block_bytes];
    let row: fn(&[u8], &mut [f32]) = match ty {
        GgmlType::Q8_0 => q8_0::dequantize_row,
        GgmlType::Q4_0 => q4_0::dequantize_row,
        GgmlType::Q4_1 => q4_1::dequantize_row,
        GgmlType::Q4_K => q4_k::dequantize_row,
        GgmlType::Q6_K => q6_k::dequantize_row,
        GgmlType::Q5_0 => q5_0::dequantize_row,
        GgmlType::F32 | GgmlType::F16 | GgmlType::BF16 => {
            unreachable!("gguf::dequantize converts the float types itself")
        }
    };
    // Large tensors (the 49152 x 576 embedding) are split over threads in
    // runs of whole blocks.
    const RUN_BLOCKS: usize = 1024;
    out.par_chunks_mut(RUN_BLOCKS * per_block)
        .zip(bytes.par_chunks(RUN_BLOCKS * block_bytes))
        .for_each(|(o, b)| row(b, o));
    out
}

/// The activations of one `matmul` call, quantized for the weight type.
pub(crate) enum Acts {
    Q8(q8_0::Q8Acts),
    /// Q8_K, and for the tiled kernels the same as 32-blocks.
    Q8K(q8_k::Q8KActs, Option<q8_0::Q8Acts>),
}

impl Acts {
    fn quantize(ty: GgmlType, isa: Isa, x: &[f32], m: usize, k: usize) -> Acts {
        use q8_0::Q8Acts;
        match ty {
            GgmlType::Q4_K | GgmlType::Q6_K => {
                let a = q8_k::Q8KActs::quantize(x, m, k);
                // Q4_K's tiles read the quants as 32-blocks; Q6_K's read Q8_K.
                let tiled =
                    (ty == GgmlType::Q4_K && tiles::applies(isa, ty, m)).then(|| a.as_blocks());
                Acts::Q8K(a, tiled)
            }
            GgmlType::Q4_0 => Acts::Q8(Q8Acts::quantize(isa, x, m, k, q4_0::OFFSET)),
            GgmlType::Q8_0 => Acts::Q8(Q8Acts::quantize(isa, x, m, k, q8_0::OFFSET)),
            _ => Acts::Q8(Q8Acts::quantize(isa, x, m, k, 0)),
        }
    }
}

/// Runs `$dot::<R>(weight_row, acts, first_act_row) -> [f32; R]` over every
/// weight row of `$w` and the activation rows four at a time (one at a time
/// for the rest), writing `$out[r * $ld + j]`. A macro, not a function taking
/// a closure, so that the loop is compiled inside each `#[target_feature]`
/// kernel and the dot products inline into it.
macro_rules! tile_rows {
    ($w:expr, $row_bytes:expr, $acts:expr, $m:expr, $out:expr, $ld:expr, $dot:ident) => {{
        let (m, acts, ld) = ($m, $acts, $ld);
        for (j, wr) in $w.chunks_exact($row_bytes).enumerate() {
            let mut r = 0;
            while r + 4 <= m {
                for (i, v) in $dot::<4>(wr, acts, r).into_iter().enumerate() {
                    $out[(r + i) * ld + j] = v;
                }
                r += 4;
            }
            while r < m {
                $out[r * ld + j] = $dot::<1>(wr, acts, r)[0];
                r += 1;
            }
        }
    }};
}
pub(crate) use tile_rows;

/// The 8 lanes of a block-dot accumulator summed as llama.cpp's
/// `hsum_float_8` pairs them: ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)), the
/// same as `x86::hsum256` on a vector.
pub(crate) fn hsum8(l: &[f32; 8]) -> f32 {
    ((l[0] + l[4]) + (l[2] + l[6])) + ((l[1] + l[5]) + (l[3] + l[7]))
}

/// The largest |x| of a block. The same value as a left-to-right
/// `max(amax, |x|)` (max is exact, so the order does not matter), but over
/// 16 lanes so the loop vectorizes: a single running max is a chain of
/// dependent `maxss`, and was most of the time of quantizing activations.
#[inline(always)]
pub(crate) fn amax(x: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let (body, tail) = x.split_at(x.len() / 16 * 16);
    for c in body.chunks_exact(16) {
        for (m, v) in lanes.iter_mut().zip(c) {
            let a = v.abs();
            *m = if a > *m { a } else { *m };
        }
    }
    for v in tail {
        let a = v.abs();
        lanes[0] = if a > lanes[0] { a } else { lanes[0] };
    }
    // Halving, not a left fold: 4 dependent steps instead of 16.
    let mut width = 8;
    while width > 0 {
        for i in 0..width {
            let b = lanes[i + width];
            lanes[i] = if b > lanes[i] { b } else { lanes[i] };
        }
        width /= 2;
    }
    lanes[0]
}

/// An f16 stored little-endian at `b[i..i + 2]`, as f32.
#[inline]
pub(crate) fn f16_at(b: &[u8], i: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[i], b[i + 1]])).to_f32()
}

/// f32 to f16 bits, rounding to nearest even as ggml's
/// `GGML_FP32_TO_FP16` does (it differs only in the payload of a NaN).
#[inline]
pub(crate) fn f16_bits(x: f32) -> u16 {
    half::f16::from_f32(x).to_bits()
}

/// `x` rounded through f16 and back: the value a stored f16 scale has.
#[inline]
pub(crate) fn f16_round(x: f32) -> f32 {
    half::f16::from_f32(x).to_f32()
}

/// ggml's `nearest_int`: adding 1.5·2²³ leaves `x` rounded half to even in
/// the low mantissa bits. Exact for |x| ≤ 2²²; outside that range ggml
/// returns those bits anyway (its assert is compiled out), and so does this.
#[inline(always)]
pub(crate) fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0;
    (v.to_bits() & 0x007f_ffff) as i32 - 0x0040_0000
}

/// C's float-to-integer conversion as x86-64 compiles it (`cvttss2si`):
/// truncation toward zero, and `i32::MIN` for NaN or a value out of range.
/// C leaves those undefined; ggml's reference quantizers reach them only
/// when a block's scale is so small (all subnormal) that `1/d` overflows,
/// and this reproduces the bytes ggml writes then. Casting the result to
/// `i8` keeps the low byte, as the C conversion to `int8_t` does.
#[inline(always)]
pub(crate) fn c_trunc(x: f32) -> i32 {
    if (-2_147_483_648.0..2_147_483_648.0).contains(&x) {
        x as i32
    } else {
        i32::MIN
    }
}

/// x86 helpers shared by the kernels.
#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// The 4 bytes at `p` in the low lane of a register whose other lanes
    /// are zero: a `vmovd`, which writes the whole register. Written as
    /// assembly because LLVM, seeing that only 16 bits of an f16 load
    /// matter, turns `_mm_loadu_si32` or `_mm_cvtsi32_si128` into a
    /// `vpinsrw` into whatever register it likes — often an FMA accumulator
    /// — and every block then waits for the previous block's FMA (Q4_1's
    /// AVX2 kernel ran at half speed).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    unsafe fn load_u32(p: *const u8) -> __m128i {
        let v: __m128i;
        std::arch::asm!(
            "vmovd {v}, dword ptr [{p}]",
            v = out(xmm_reg) v,
            p = in(reg) p,
            options(pure, readonly, nostack, preserves_flags),
        );
        v
    }

    /// The f16 at `p` (unaligned, little-endian) as f32, with F16C. Reads
    /// `p..p + 4`.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_load(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(load_u32(p)))
    }

    /// The f16 at `p`, read as the upper half of `p - 2..p + 2` (for a
    /// field at the end of a block, like Q6_K's `d`).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn f16_load_last(p: *const u8) -> f32 {
        _mm_cvtss_f32(_mm_movehdup_ps(_mm_cvtph_ps(load_u32(p.sub(2)))))
    }

    /// Sum of the 8 integer lanes (exact in any order).
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn hsum_i32(v: __m256i) -> i32 {
        let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
        let s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
        let s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0b10_11_00_01));
        _mm_cvtsi128_si32(s)
    }

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2,fma,f16c")]
    pub fn hsum256(v: __m256) -> f32 {
        let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        let s = _mm_add_ss(s, _mm_movehdup_ps(s));
        _mm_cvtss_f32(s)
    }

    /// Sum of the 16 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
    pub fn hsum512(v: __m512) -> f32 {
        let lo = _mm512_castps512_ps256(v);
        let hi = _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1));
        hsum256(_mm256_add_ps(lo, hi))
    }

    /// Each value rounded to the nearest f16 (ties to even) and back, as
    /// `f16_round`, 8 at a time with F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn round_f16(v: &mut [f32]) {
        let mut chunks = v.chunks_exact_mut(8);
        for c in &mut chunks {
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm256_loadu_ps(c.as_ptr()));
            _mm256_storeu_ps(c.as_mut_ptr(), _mm256_cvtph_ps(h));
        }
        for x in chunks.into_remainder() {
            *x = super::f16_round(*x);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::Rng;
    use std::collections::HashMap;

    /// `tests/fixtures/quant.safetensors` (written by
    /// `tools/gen_quant_fixtures.py`): tensor name → raw little-endian bytes.
    pub fn fixtures() -> &'static HashMap<String, Vec<u8>> {
        static F: OnceLock<HashMap<String, Vec<u8>>> = OnceLock::new();
        F.get_or_init(|| {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/quant.safetensors");
            let data = std::fs::read(&path).expect("quant fixtures present");
            let st = safetensors::SafeTensors::deserialize(&data).expect("valid safetensors");
            st.tensors()
                .into_iter()
                .map(|(name, v)| (name, v.data().to_vec()))
                .collect()
        })
    }

    pub fn fixture_bytes(name: &str) -> &'static [u8] {
        fixtures()
            .get(name)
            .unwrap_or_else(|| panic!("fixture {name} missing"))
    }

    pub fn fixture_f32(name: &str) -> Vec<f32> {
        fixture_bytes(name)
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    }

    /// The bytes `ours` must equal, with the first differing block named.
    pub fn assert_same_blocks(what: &str, ours: &[u8], want: &[u8], block_bytes: usize) {
        assert_eq!(ours.len(), want.len(), "{what}: byte count");
        if let Some(i) = ours
            .chunks(block_bytes)
            .zip(want.chunks(block_bytes))
            .position(|(a, b)| a != b)
        {
            let n = ours.len() / block_bytes;
            let bad = ours
                .chunks(block_bytes)
                .zip(want.chunks(block_bytes))
                .filter(|(a, b)| a != b)
                .count();
            panic!(
                "{what}: {bad} of {n} blocks differ; first is block {i}:\n ours {:02x?}\n want {:02x?}",
                &ours[i * block_bytes..][..block_bytes],
                &want[i * block_bytes..][..block_bytes]
            );
        }
    }

    /// Floats that must be equal bit for bit (so NaN == NaN, 0 != -0).
    pub fn assert_same_f32(what: &str, ours: &[f32], want: &[f32]) {
        assert_eq!(ours.len(), want.len(), "{what}: length");
        for (i, (a, b)) in ours.iter().zip(want).enumerate() {
            assert!(
                a.to_bits() == b.to_bits(),
                "{what}[{i}]: ours {a:e} vs reference {b:e}"
            );
        }
    }

    pub fn randn(rng: &mut Rng, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| rng.normal() * scale).collect()
    }

    pub fn supported_isas() -> Vec<Isa> {
        [Isa::Scalar, Isa::Avx2, Isa::Avx512Vnni]
            .into_iter()
            .filter(|i| i.supported())
            .collect()
    }

    #[test]
    fn the_best_kernel_family_of_this_cpu_is_chosen() {
        // Hosts differ (AVX2-only Zen 1, AVX-512 VNNI Zen 4/5): the choice
        // is the best family the CPU has, capped by KINDLING_SIMD. Families
        // this CPU lacks are not compared with the scalar reference here:
        // say so, rather than pass those comparisons silently.
        let best = [Isa::Avx512Vnni, Isa::Avx2]
            .into_iter()
            .find(|i| i.supported())
            .unwrap_or(Isa::Scalar);
        let cap = match simd::level() {
            simd::Level::Baseline => Isa::Scalar,
            simd::Level::Avx2 => Isa::Avx2,
            simd::Level::Avx512 => Isa::Avx512Vnni,
        };
        assert_eq!(isa(), best.min(cap));
        for family in [Isa::Avx2, Isa::Avx512Vnni] {
            if !family.supported() {
                eprintln!("note: this CPU has no {family:?}: its kernels go untested on this host");
            }
        }
    }

    #[test]
    fn nearest_int_rounds_half_to_even_like_ggml() {
        for (x, want) in [
            (0.5f32, 0),
            (1.5, 2),
            (2.5, 2),
            (-0.5, 0),
            (-1.5, -2),
            (-2.5, -2),
            (126.49, 126),
            (-127.0, -127),
            (0.0, 0),
            (-0.0, 0),
            (4_194_303.0, 4_194_303),
        ] {
            assert_eq!(nearest_int(x), want, "nearest_int({x})");
        }
    }

    #[test]
    fn c_trunc_truncates_and_gives_int_min_where_c_is_undefined() {
        assert_eq!(c_trunc(8.99), 8);
        assert_eq!(c_trunc(-0.7), 0);
        assert_eq!(c_trunc(-2_147_483_648.0), i32::MIN);
        assert_eq!(c_trunc(f32::INFINITY), i32::MIN);
        assert_eq!(c_trunc(f32::NEG_INFINITY), i32::MIN);
        assert_eq!(c_trunc(f32::NAN), i32::MIN);
        assert_eq!(c_trunc(3e9), i32::MIN);
    }

    #[test]
    fn f16_conversion_matches_ggml_on_the_fixture_table() {
        // ggml_fp32_to_fp16_row (ggml's software conversion) on values
        // chosen at the edges: ties, subnormals, the overflow threshold.
        let x = fixture_f32("f16.input");
        let want = fixture_bytes("f16.ggml");
        for (i, v) in x.iter().enumerate() {
            let w = u16::from_le_bytes([want[2 * i], want[2 * i + 1]]);
            assert_eq!(f16_bits(*v), w, "f16({v:e}) [{i}]");
        }
    }

    #[test]
    fn quantize_rejects_partial_blocks_and_wrong_lengths() {
        let w = vec![0.5f32; 2 * 48];
        let e = QMatrix::quantize(GgmlType::Q4_0, &w, 2, 48)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cols = 48") && e.contains("multiple of 32") && e.contains("Q4_0"),
            "{e}"
        );
        let w = vec![0.5f32; 2 * 288];
        let e = QMatrix::quantize(GgmlType::Q4_K, &w, 2, 288)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cols = 288") && e.contains("multiple of 256") && e.contains("Q4_K"),
            "{e}"
        );
        let e = QMatrix::quantize(GgmlType::Q8_0, &w, 3, 32)
            .unwrap_err()
            .to_string();
        assert!(e.contains("576 weights") && e.contains("[3, 32]"), "{e}");
        let e = QMatrix::quantize(GgmlType::F16, &w, 2, 288)
            .unwrap_err()
            .to_string();
        assert!(e.contains("F16 is not a block-quantized type"), "{e}");
        let e = QMatrix::quantize(GgmlType::Q6_K, &w[..256], 1, 256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("does not write") && e.contains("Q6_K"), "{e}");
    }

    #[test]
    fn from_bytes_checks_the_byte_count_and_the_block_size() {
        let e = QMatrix::from_bytes(GgmlType::Q4_1, 2, 64, vec![0; 79])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("80 bytes") && e.contains("79 were given") && e.contains("Q4_1"),
            "{e}"
        );
        let e = QMatrix::from_bytes(GgmlType::Q6_K, 1, 128, vec![0; 105])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("cols = 128") && e.contains("multiple of 256"),
            "{e}"
        );
        let e = QMatrix::from_bytes(GgmlType::Q5_0, 1, 32, vec![0; 22])
            .unwrap_err()
            .to_string();
        assert!(e.contains("Q5_0") && e.contains("only as f32"), "{e}");
        let q = QMatrix::from_bytes(GgmlType::Q6_K, 2, 256, vec![0; 420]).unwrap();
        assert_eq!(
            (q.ty(), q.rows(), q.cols(), q.bytes().len()),
            (GgmlType::Q6_K, 2, 256, 420)
        );
    }

    #[test]
    fn gguf_tensors_of_every_read_type_come_back_as_gguf_py_dequantizes_them() {
        // The fixtures' bytes written into a GGUF file and read through
        // GgufFile::tensor, as a model loader does.
        let cases = [
            ("q8_0.ggml", GgmlType::Q8_0, "q8_0.dequant"),
            ("q4_0.ggml", GgmlType::Q4_0, "q4_0.dequant"),
            ("q4_1.ggml", GgmlType::Q4_1, "q4_1.dequant"),
            ("q5_0.ggml", GgmlType::Q5_0, "q5_0.ggml.dequant"),
            ("q4_k.ggml", GgmlType::Q4_K, "q4_k.ggml.dequant"),
            ("q6_k.random", GgmlType::Q6_K, "q6_k.random.dequant"),
        ];
        let dir = std::env::temp_dir().join(format!("kindling-quant-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("types.gguf");
        let tensors: Vec<_> = cases
            .iter()
            .map(|(name, ty, _)| {
                let bytes = fixture_bytes(name);
                let (per_block, block_bytes) = ty.block();
                let rows = bytes.len() / block_bytes * per_block / 256;
                (*name, *ty, vec![rows, 256], bytes)
            })
            .collect();
        crate::gguf::write(&path, &[], &tensors).unwrap();
        let g = crate::gguf::GgufFile::open(&path).unwrap();
        for (name, ty, want) in cases {
            let t = g.tensor(name).unwrap();
            assert_eq!(g.info(name).unwrap().ggml_type(), Some(ty));
            assert_same_f32(name, &t.to_vec_f32().unwrap(), &fixture_f32(want));
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn matmul_rejects_activations_of_the_wrong_length() {
        let q = QMatrix::quantize(GgmlType::Q8_0, &[0.25; 64], 2, 32).unwrap();
        let e = q.matmul(&[1.0; 33], 1).unwrap_err().to_string();
        assert!(e.contains("33 values") && e.contains("[1, 32]"), "{e}");
        assert_eq!(q.matmul(&[], 0).unwrap(), Vec::<f32>::new());
    }

    /// For each output, a bound on |quantized product − f32 product of the
    /// dequantized weights with x|: activation quantization moves each x by
    /// at most half a step, d/2 (plus the rounding of d to f16 for Q8_0
    /// blocks: |q|·|d − f16(d)| ≤ 127·d·2⁻¹¹ = 0.062·d), so the product moves
    /// by at most Σ|w|·(0.5 + 0.062)·d over the row; f32 rounding of both
    /// sums adds a little on top (k·ε of Σ|w·x|).
    fn activation_error_bound(ty: GgmlType, w: &[f32], x: &[f32], k: usize) -> f32 {
        let block = if matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K) {
            256
        } else {
            32
        };
        let half_step = if block == 256 {
            0.5
        } else {
            0.5 + 127.0 / 2048.0
        };
        let mut bound = 0f64;
        let mut mag = 0f64;
        for (wb, xb) in w.chunks(block).zip(x.chunks(block)) {
            let amax = xb.iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
            let d = amax / 127.0;
            let sw: f64 = wb.iter().map(|v| v.abs() as f64).sum();
            bound += sw * d * half_step;
            mag += wb
                .iter()
                .zip(xb)
                .map(|(a, b)| (a * b).abs() as f64)
                .sum::<f64>();
        }
        (bound * 1.0001 + 2.0 * k as f64 * f32::EPSILON as f64 * (mag + bound)) as f32
    }

    fn reference_product(w: &[f32], x: &[f32], n: usize, k: usize, m: usize) -> Vec<f32> {
        let mut y = vec![0f32; m * n];
        for r in 0..m {
            for j in 0..n {
                y[r * n + j] = (0..k)
                    .map(|i| w[j * k + i] as f64 * x[r * k + i] as f64)
                    .sum::<f64>() as f32;
            }
        }
        y
    }

    #[test]
    fn matmul_is_the_dequantized_product_within_activation_rounding() {
        let mut rng = Rng::new(7);
        for ty in [
            GgmlType::Q8_0,
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q4_K,
        ] {
            for &(n, k, m) in &[(37, 512, 1), (70, 256, 5), (130, 768, 9)] {
                let w = randn(&mut rng, n * k, 0.05);
                let x = randn(&mut rng, m * k, 1.0);
                let q = QMatrix::quantize(ty, &w, n, k).unwrap();
                let wd = q.dequantize();
                let want = reference_product(&wd, &x, n, k, m);
                for isa in supported_isas() {
                    let y = q.matmul_with(isa, &x, m).unwrap();
                    for r in 0..m {
                        let bound = |j: usize| {
                            activation_error_bound(ty, &wd[j * k..][..k], &x[r * k..][..k], k)
                        };
                        for j in 0..n {
                            let (a, b) = (y[r * n + j], want[r * n + j]);
                            assert!(
                                (a - b).abs() <= bound(j),
                                "{} {} [{n},{k}] m={m} y[{r},{j}] = {a} vs {b} (bound {})",
                                ty.name(),
                                isa.name(),
                                bound(j)
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn matmul_of_q6_k_bytes_is_the_dequantized_product_within_activation_rounding() {
        let mut rng = Rng::new(8);
        let (n, k, m) = (21, 512, 6);
        let bytes = q6_k::tests::random_blocks(&mut rng, n * k / 256);
        let q = QMatrix::from_bytes(GgmlType::Q6_K, n, k, bytes).unwrap();
        let wd = q.dequantize();
        let x = randn(&mut rng, m * k, 1.0);
        let want = reference_product(&wd, &x, n, k, m);
        for isa in supported_isas() {
            let y = q.matmul_with(isa, &x, m).unwrap();
            for r in 0..m {
                for j in 0..n {
                    let bound = activation_error_bound(
                        GgmlType::Q6_K,
                        &wd[j * k..][..k],
                        &x[r * k..][..k],
                        k,
                    );
                    let (a, b) = (y[r * n + j], want[r * n + j]);
                    assert!(
                        (a - b).abs() <= bound,
                        "{} y[{r},{j}] = {a} vs {b}",
                        isa.name()
                    );
                }
            }
        }
    }

    /// Every kernel family against the scalar reference on the same
    /// quantized activations. Q8_0, Q4_0 and Q4_1 follow llama.cpp's order
    /// in all of them: equal bit for bit. For the K formats the integer
    /// block sums are exact in all of them, only the order of the f32 sum
    /// over blocks differs (lanes, FMA).
    /// Each of the `nb` block terms t_b = s_b·I_b is rounded at most once
    /// and the sums of nb terms at most nb times, so the two results differ
    /// by at most 2·(nb + 2)·ε·Σ|t_b| ≤ 2·(nb + 2)·ε·Σ|ŵ_i·x̂_i| (ŵ, x̂ the
    /// dequantized weights and activations).
    #[test]
    fn every_kernel_family_equals_the_scalar_reference() {
        let mut rng = Rng::new(9);
        let cases: Vec<(GgmlType, usize)> = vec![
            (GgmlType::Q8_0, 32),
            (GgmlType::Q4_0, 32),
            (GgmlType::Q4_1, 32),
            (GgmlType::Q4_K, 256),
            (GgmlType::Q6_K, 256),
        ];
        for (ty, block) in cases {
            // Odd block counts exercise the one-block tails of the
            // two-blocks-at-a-time AVX-512 loops; m = 7 the 4-row groups and
            // the single-row remainder; m ≥ tiles::min_rows the row tiles
            // (37 rows: 2 tiles of 16 or 4 of 8, and 5 rows left to the row
            // kernels).
            let tiled = tiles::min_rows(Isa::Avx512Vnni, GgmlType::Q8_0)
                .max(tiles::min_rows(Isa::Avx2, ty))
                + 1;
            for &(n, nb, m) in &[
                (9, 1, 1),
                (10, 3, 3),
                (33, 3, 7),
                (64, 18, 1),
                (17, 48, 5),
                (37, 5, tiled),
                (48, 18, tiled + 3),
            ] {
                let k = nb * block;
                let q = if ty == GgmlType::Q6_K {
                    let bytes = q6_k::tests::random_blocks(&mut rng, n * nb);
                    QMatrix::from_bytes(ty, n, k, bytes).unwrap()
                } else {
                    let mut w = randn(&mut rng, n * k, 0.1);
                    // Some extreme blocks: a constant one, a huge value.
                    w[..block].fill(0.3);
                    w[block / 2] = 40.0;
                    QMatrix::quantize(ty, &w, n, k).unwrap()
                };
                let wd = q.dequantize();
                let mut x = randn(&mut rng, m * k, 1.0);
                x[..block.min(k)].fill(0.0);
                let acts = Acts::quantize(ty, Isa::Scalar, &x, m, k);
                let xd = acts.dequantize(m, k);
                let scalar = q.matmul_with(Isa::Scalar, &x, m).unwrap();
                for isa in supported_isas() {
                    let y = q.matmul_with(isa, &x, m).unwrap();
                    for r in 0..m {
                        for j in 0..n {
                            let mag: f32 =
                                (0..k).map(|i| (wd[j * k + i] * xd[r * k + i]).abs()).sum();
                            let tol = 2.0 * (k / 32 + 2) as f32 * f32::EPSILON * mag;
                            let (a, b) = (y[r * n + j], scalar[r * n + j]);
                            // The formats decoded in llama.cpp's order give
                            // its bits on every kernel family, tiles too.
                            let exact =
                                matches!(ty, GgmlType::Q8_0 | GgmlType::Q4_0 | GgmlType::Q4_1);
                            assert!(
                                if exact {
                                    a.to_bits() == b.to_bits()
                                } else {
                                    (a - b).abs() <= tol
                                },
                                "{} {} n={n} k={k} m={m} y[{r},{j}]: {a} vs scalar {b} (tol {tol})",
                                ty.name(),
                                isa.name()
                            );
                        }
                    }
                }
            }
        }
    }

    impl Acts {
        /// The activations the integer kernels actually multiply, as f32.
        fn dequantize(&self, m: usize, k: usize) -> Vec<f32> {
            match self {
                Acts::Q8(a) => (0..m * k).map(|i| a.qs[i] as f32 * a.d[i / 32]).collect(),
                Acts::Q8K(a, _) => (0..m * k).map(|i| a.qs[i] as f32 * a.d[i / 256]).collect(),
            }
        }
    }

    #[test]
    fn matmul_gives_the_same_result_on_one_thread_and_many() {
        // Rows are split over tasks, never the sum inside a row, so the
        // result does not depend on the number of threads.
        // Tiles start at multiples of 16 rows in every split (m = 9 takes
        // them), so the rows they leave to the row kernels are the same too.
        let mut rng = Rng::new(10);
        let (n, k) = (300, 1024);
        let w = randn(&mut rng, n * k, 0.05);
        let q = QMatrix::quantize(GgmlType::Q4_0, &w, n, k).unwrap();
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        let (one_thread, three) = (pool(1), pool(3));
        for m in [1, 3, 9] {
            let x = randn(&mut rng, m * k, 1.0);
            let one = one_thread.install(|| q.matmul(&x, m).unwrap());
            let many = three.install(|| q.matmul(&x, m).unwrap());
            assert_same_f32(&format!("threads, m = {m}"), &one, &many);
        }
    }
}
