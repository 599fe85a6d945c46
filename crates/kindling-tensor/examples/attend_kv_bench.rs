//! Attention over a KV cache (`Tensor::attend_kv`) on SmolLM2-135M's heads
//! (9 query heads, 3 KV heads, 64 dimensions).
//!
//!     cargo run --release -p kindling-tensor --example attend_kv_bench [-- --threads N]
//!
//! Cases: a prompt of T tokens on an empty cache (T = 64, 256, 512) and a
//! decoding step (T = 1) after 256 and 1024 cached positions. For each it
//! prints the median time per call and a hash of the output's bits, so two
//! builds can be checked to give the same numbers as well as timed.

use kindling_tensor::{no_grad, Rng, Tensor};
use std::time::{Duration, Instant};

const HEADS: usize = 9;
const KV_HEADS: usize = 3;
const D: usize = 64;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// FNV-1a over the f32 bit patterns.
fn hash(xs: &[f32]) -> u64 {
    xs.iter().fold(0xcbf2_9ce4_8422_2325, |h, x| {
        (h ^ x.to_bits() as u64).wrapping_mul(0x0100_0000_01b3)
    })
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let threads = args
        .iter()
        .position(|a| a == "--threads")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.parse().expect("--threads: a number"))
        .unwrap_or(1);
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .expect("thread pool");
    println!("threads {threads}");
    // As generation runs a model call: on a kernel thread, so that parallel
    // loops start without a hand-off from outside the pool.
    kindling_tensor::on_kernel_threads(|| {
        let _g = no_grad();
        cases()
    });
}

fn cases() {
    let mut rng = Rng::new(7);
    for (t, past) in [(64, 0), (256, 0), (512, 0), (1, 256), (1, 1024)] {
        let tk = past + t;
        // Scores of a trained model's size: q·k/√d of a few units.
        let q = Tensor::randn(&[1, t, HEADS, D], 0.0, 0.6, &mut rng);
        let k = Tensor::randn(&[1, tk, KV_HEADS, D], 0.0, 0.6, &mut rng);
        let v = Tensor::randn(&[1, tk, KV_HEADS, D], 0.0, 1.0, &mut rng);
        let y = q.attend_kv(&k, &v, past).expect("attend_kv");
        let h = hash(&y.to_vec_f32().expect("f32"));
        let reps = (200_000_000 / (t * tk * HEADS * D * 4)).clamp(5, 2000);
        let times: Vec<Duration> = (0..reps)
            .map(|_| {
                let s = Instant::now();
                let y = q.attend_kv(&k, &v, past).expect("attend_kv");
                std::hint::black_box(&y);
                s.elapsed()
            })
            .collect();
        let m = median(times);
        println!(
            "T {t:4} past {past:4}: {:9.1} µs  ({:.2} GFLOP/s)  bits {h:016x}",
            m.as_secs_f64() * 1e6,
            // q·k and p·v: 2 flops each per (query, key, head, dim); causal half for prompts.
            4.0 * (if t > 1 { t * (t + 1) / 2 } else { tk }) as f64 * (HEADS * D) as f64
                / m.as_secs_f64()
                / 1e9
        );
    }
    // A decoding step through 30 layers' caches (SmolLM2's depth): together
    // they outgrow the CPU caches, as in generation; time per layer.
    let past = 1024;
    let layers: Vec<(Tensor, Tensor, Tensor)> = (0..30)
        .map(|_| {
            (
                Tensor::randn(&[1, 1, HEADS, D], 0.0, 0.6, &mut rng),
                Tensor::randn(&[1, past + 1, KV_HEADS, D], 0.0, 0.6, &mut rng),
                Tensor::randn(&[1, past + 1, KV_HEADS, D], 0.0, 1.0, &mut rng),
            )
        })
        .collect();
    let times: Vec<Duration> = (0..40)
        .map(|_| {
            let s = Instant::now();
            for (q, k, v) in &layers {
                std::hint::black_box(q.attend_kv(k, v, past).expect("attend_kv"));
            }
            s.elapsed() / 30
        })
        .collect();
    let h = layers.iter().fold(0u64, |h, (q, k, v)| {
        h ^ hash(&q.attend_kv(k, v, past).unwrap().to_vec_f32().unwrap())
    });
    println!(
        "T    1 past {past:4}, 30 layers: {:9.1} µs per layer  bits {h:016x}",
        median(times).as_secs_f64() * 1e6
    );
    // The same with the values transposed, as the KV cache keeps them
    // ([B, H_kv, D, capacity], read through a permuted view).
    let cap = 2048;
    let vts: Vec<Tensor> = layers
        .iter()
        .map(|(_, _, v)| {
            let buf = Tensor::zeros(&[1, KV_HEADS, D, cap]);
            let view = buf
                .narrow(3, 0, past + 1)
                .unwrap()
                .permute(&[0, 3, 1, 2])
                .unwrap();
            view.assign_(v).unwrap();
            view
        })
        .collect();
    let times: Vec<Duration> = (0..40)
        .map(|_| {
            let s = Instant::now();
            for ((q, k, _), vt) in layers.iter().zip(&vts) {
                std::hint::black_box(q.attend_kv(k, vt, past).expect("attend_kv"));
            }
            s.elapsed() / 30
        })
        .collect();
    let h = layers.iter().zip(&vts).fold(0u64, |h, ((q, k, _), vt)| {
        h ^ hash(&q.attend_kv(k, vt, past).unwrap().to_vec_f32().unwrap())
    });
    println!(
        "T    1 past {past:4}, 30 layers, values transposed: {:9.1} µs per layer  bits {h:016x}",
        median(times).as_secs_f64() * 1e6
    );
}
