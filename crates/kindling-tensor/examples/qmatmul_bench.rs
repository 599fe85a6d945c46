//! Quantized products against f32 on SmolLM2-135M's shapes.
//!
//!     cargo run --release -p kindling-tensor --example qmatmul_bench [-- --quick]
//!
//! For each weight `[out, in]` of SmolLM2-135M (q/o projections 576→576,
//! k/v 576→192, gate/up 576→1536, down 1536→576, the tied output head
//! 576→49152) and m = 1 (a decoding step: a gemv) and m = 64 (a prompt
//! chunk), it times `y = x·Wᵀ` for F32 (the public tensor API: `linear`,
//! which picks the gemv or the packed GEMM) and for `QMatrix::matmul` on
//! Q8_0, Q4_0, Q4_1 and Q4_K, and Q6_K from random blocks (Kindling reads
//! Q6_K but does not write it; the K formats need rows of whole 256-weight
//! blocks: only the 1536-column down projection has them), with 1 and 2
//! threads.
//! It prints the median time per product, GFLOP/s-equivalent (2·m·in·out
//! per product, whatever the format) and the speed-up over F32.

use kindling_tensor::gguf::GgmlType;
use kindling_tensor::{no_grad, quant, QMatrix, Rng, Tensor};
use std::time::{Duration, Instant};

const SHAPES: [(&str, usize, usize); 5] = [
    ("gate/up 576→1536", 576, 1536),
    ("down 1536→576", 1536, 576),
    ("q/o 576→576", 576, 576),
    ("k/v 576→192", 576, 192),
    ("head 576→49152", 576, 49152),
];
const TYPES: [GgmlType; 5] = [
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q4_K,
    GgmlType::Q6_K,
];

/// Q6_K blocks of random quants and scales with a small positive f16 `d`
/// (the speed does not depend on the values).
fn random_q6_k(rng: &mut Rng, rows: usize, cols: usize) -> Option<QMatrix> {
    let (per_block, block_bytes) = GgmlType::Q6_K.block();
    if !cols.is_multiple_of(per_block) {
        return None;
    }
    let mut bytes: Vec<u8> = (0..rows * cols / per_block * block_bytes)
        .map(|_| (rng.next_u64() >> 56) as u8)
        .collect();
    for b in bytes.chunks_exact_mut(block_bytes) {
        // 0x1400 is the f16 1.2e-3.
        b[block_bytes - 2..].copy_from_slice(&0x1400u16.to_le_bytes());
    }
    QMatrix::from_bytes(GgmlType::Q6_K, rows, cols, bytes).ok()
}

/// Median seconds per call of `f`, over at least `budget` of runs (and at
/// least 5), after one warm-up call.
fn time(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let mut runs = Vec::new();
    let start = Instant::now();
    while runs.len() < 5 || start.elapsed() < budget {
        let t = Instant::now();
        f();
        runs.push(t.elapsed().as_secs_f64());
    }
    runs.sort_by(|a, b| a.total_cmp(b));
    runs[runs.len() / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = Duration::from_millis(if quick { 60 } else { 300 });
    println!(
        "kernels: quant {} (f32: {}), rayon threads available: {}",
        quant::isa().name(),
        kindling_tensor::simd_level(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    let _guard = no_grad();
    let mut rng = Rng::new(1);
    for threads in [1, 2] {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("thread pool");
        println!("\n{threads} thread(s): ms per product, GFLOP/s-equivalent, speed-up over F32");
        println!(
            "{:<18} {:>3} | {:>20} | {:>27} | {:>27} | {:>27} | {:>27} | {:>27}",
            "weight", "m", "F32", "Q8_0", "Q4_0", "Q4_1", "Q4_K", "Q6_K (random)"
        );
        for &(name, k, n) in &SHAPES {
            let w: Vec<f32> = (0..n * k).map(|_| rng.normal() * 0.02).collect();
            let wt = Tensor::from_vec(w.clone(), &[n, k]).expect("weight");
            let qs: Vec<Option<QMatrix>> = TYPES
                .iter()
                .map(|&ty| match ty {
                    GgmlType::Q6_K => random_q6_k(&mut rng, n, k),
                    _ => QMatrix::quantize(ty, &w, n, k).ok(),
                })
                .collect();
            for m in [1, 64] {
                let x: Vec<f32> = (0..m * k).map(|_| rng.normal()).collect();
                let xt = Tensor::from_vec(x.clone(), &[m, k]).expect("input");
                let flop = 2.0 * (m * n * k) as f64;
                let f32_s = pool.install(|| {
                    time(budget, || {
                        std::hint::black_box(xt.linear(&wt, None).expect("f32 product"));
                    })
                });
                let mut line = format!(
                    "{name:<18} {m:>3} | {:>8.3} {:>6.1} GF/s |",
                    f32_s * 1e3,
                    flop / f32_s / 1e9
                );
                for q in &qs {
                    match q {
                        Some(q) => {
                            let s = pool.install(|| {
                                time(budget, || {
                                    std::hint::black_box(q.matmul(&x, m).expect("product"));
                                })
                            });
                            line += &format!(
                                " {:>8.3} {:>6.1} GF/s {:>5.2}x |",
                                s * 1e3,
                                flop / s / 1e9,
                                f32_s / s
                            );
                        }
                        None => line += &format!(" {:>27} |", "n/a (in % 256 ≠ 0)"),
                    }
                }
                println!("{line}");
            }
        }
    }
}
