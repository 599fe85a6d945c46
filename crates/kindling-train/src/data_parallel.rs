//! Data parallelism across CPU cores: the batch is cut into one shard per
//! thread, each shard's forward and backward runs start to finish on its
//! own core (in a one-thread pool, so its kernels never wait on another
//! thread), and the shards' gradients are summed in shard order.
//!
//! Why not split every op across the threads instead? A small model's ops
//! last microseconds; handing each one to two threads costs a wake-up and a
//! join per op, hundreds of times a step. A shard needs one of each per
//! step. The result equals the whole-batch gradient up to float rounding,
//! and is the same from run to run for a given number of shards.

use kindling_tensor::{Result, Tensor};
use rayon::prelude::*;

pub struct DataParallel {
    pools: Vec<rayon::ThreadPool>,
}

impl DataParallel {
    /// `shards` single-thread pools (at least one).
    pub fn new(shards: usize) -> Result<DataParallel> {
        let pools = (0..shards.max(1))
            .map(|i| {
                rayon::ThreadPoolBuilder::new()
                    .num_threads(1)
                    .thread_name(move |_| format!("kindling-shard-{i}"))
                    .build()
                    .map_err(|e| kindling_tensor::Error::msg(format!("shard thread: {e}")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(DataParallel { pools })
    }

    pub fn shards(&self) -> usize {
        self.pools.len()
    }

    /// The `[start, len)` rows of a batch of `rows` that shard `i` of
    /// `shards` takes: as even as possible, the first shards one larger.
    pub fn split(rows: usize, shards: usize) -> Vec<(usize, usize)> {
        let shards = shards.clamp(1, rows.max(1));
        let (base, extra) = (rows / shards, rows % shards);
        let mut start = 0;
        (0..shards)
            .map(|i| {
                let len = base + usize::from(i < extra);
                let r = (start, len);
                start += len;
                r
            })
            .collect()
    }

    /// Runs `loss_of(shard, start, len)` for each shard of a batch of
    /// `rows` on its own thread, backpropagates each loss weighted by its
    /// shard's share of the rows, and adds the summed gradients into the
    /// `.grad()` of `params` (distinct tensors; leaves not listed get no
    /// gradient). Returns the whole batch's loss, the same weighted sum.
    ///
    /// The weighting makes the result the whole batch's gradient when each
    /// shard's loss is a mean over its rows with every row counting the
    /// same (cross-entropy over full sequences, as here); a loss that skips
    /// some targets would need its own weights.
    pub fn backward(
        &self,
        rows: usize,
        params: &[Tensor],
        loss_of: impl Fn(usize, usize, usize) -> Result<Tensor> + Sync,
    ) -> Result<f32> {
        self.accumulate(rows, rows, params, loss_of)
    }

    /// [`backward`](Self::backward) for one micro-batch of `rows` out of a
    /// step of `step_rows` (gradient accumulation): each shard's loss is
    /// weighted by its rows over `step_rows`, so the micro-batches' summed
    /// gradients and returned losses are those of one batch of `step_rows`.
    /// With `step_rows == rows` this is exactly `backward`.
    pub fn accumulate(
        &self,
        rows: usize,
        step_rows: usize,
        params: &[Tensor],
        loss_of: impl Fn(usize, usize, usize) -> Result<Tensor> + Sync,
    ) -> Result<f32> {
        self.accumulate_part((0, rows), step_rows.max(rows), params, loss_of)
    }

    /// [`accumulate`](Self::accumulate) for the rows `part = (start, len)`
    /// of a micro-batch only (this process's part in a distributed job):
    /// they are cut among the shards, `loss_of` gets absolute row offsets,
    /// and each shard's loss is weighted by its rows over `step_rows`, the
    /// whole step's rows on all ranks.
    pub fn accumulate_part(
        &self,
        part: (usize, usize),
        step_rows: usize,
        params: &[Tensor],
        loss_of: impl Fn(usize, usize, usize) -> Result<Tensor> + Sync,
    ) -> Result<f32> {
        let (offset, rows) = part;
        if rows == 0 {
            return Err(kindling_tensor::Error::msg(
                "data-parallel step on an empty batch",
            ));
        }
        let parts = Self::split(rows, self.shards());
        let parts: Vec<(usize, (usize, usize))> = parts
            .into_iter()
            .map(|(start, len)| (offset + start, len))
            .enumerate()
            .collect();
        let shard = |&(i, (start, len)): &(usize, (usize, usize))| -> Result<(f32, kindling_tensor::Gradients)> {
            let w = len as f32 / step_rows as f32;
            let loss = loss_of(i, start, len)?;
            let grads = loss.gradients_with(Tensor::full(loss.shape(), w))?;
            Ok((w * loss.item()?, grads))
        };
        let mut results: Vec<Option<Result<(f32, kindling_tensor::Gradients)>>> =
            parts.iter().map(|_| None).collect();
        run_on_pools(&self.pools, &parts, &shard, &mut results);
        let mut loss = 0f32;
        let mut all = Vec::with_capacity(results.len());
        for r in results {
            let (l, g) = r.expect("every shard ran")?;
            loss += l;
            all.push(g);
        }
        // Each parameter's shard gradients, summed in shard order (in
        // parallel across parameters).
        params.par_iter().try_for_each(|p| -> Result<()> {
            let mut parts = p
                .grad()
                .into_iter()
                .chain(all.iter().filter_map(|g| g.get(p).cloned()));
            let Some(first) = parts.next() else {
                return Ok(());
            };
            let mut sum = None;
            for g in parts {
                sum = Some(sum.as_ref().unwrap_or(&first).add(&g)?);
            }
            // A lone gradient is copied: the same tensor may have been handed
            // to several leaves, and optimizers scale gradients in place.
            p.set_grad(Some(match sum {
                Some(s) => s,
                None => first.copy()?,
            }));
            Ok(())
        })?;
        Ok(loss)
    }
}

/// `f(part)` for each part, part i on pool i, all at once, results in
/// order. Pool i's work is spawned into it while the calling thread goes on
/// to the next pool (the last runs through `install`, blocking until done):
/// no thread is created per call.
fn run_on_pools<P: Sync, R: Send>(
    pools: &[rayon::ThreadPool],
    parts: &[P],
    f: &(impl Fn(&P) -> R + Sync),
    out: &mut [Option<R>],
) {
    match (pools, parts, out) {
        ([pool, ..], [part], [slot]) => *slot = Some(pool.install(|| f(part))),
        ([pool, more_pools @ ..], [part, more_parts @ ..], [slot, more_slots @ ..]) => pool
            .in_place_scope(|s| {
                s.spawn(|_| *slot = Some(f(part)));
                run_on_pools(more_pools, more_parts, f, more_slots);
            }),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_covers_the_batch_evenly() {
        assert_eq!(DataParallel::split(12, 2), vec![(0, 6), (6, 6)]);
        assert_eq!(DataParallel::split(7, 3), vec![(0, 3), (3, 2), (5, 2)]);
        assert_eq!(DataParallel::split(2, 4), vec![(0, 1), (1, 1)]);
        assert_eq!(DataParallel::split(5, 1), vec![(0, 5)]);
    }

    #[test]
    fn sharded_gradient_equals_the_whole_batch_gradient() {
        // Mean squared error of a linear map over 7 rows, cut into 3 shards.
        let mut rng = kindling_tensor::Rng::new(3);
        let w = Tensor::randn(&[4, 2], 0.0, 1.0, &mut rng).requires_grad_(true);
        let x = Tensor::randn(&[7, 4], 0.0, 1.0, &mut rng);
        let y = Tensor::randn(&[7, 2], 0.0, 1.0, &mut rng);
        let loss_of = |_shard: usize, start: usize, len: usize| {
            x.narrow(0, start, len)?
                .matmul(&w)?
                .mse_loss(&y.narrow(0, start, len)?)
        };
        let whole = loss_of(0, 0, 7).unwrap();
        whole.backward().unwrap();
        let want = w.grad().unwrap().to_vec_f32().unwrap();
        w.zero_grad();
        let dp = DataParallel::new(3).unwrap();
        let got_loss = dp.backward(7, std::slice::from_ref(&w), loss_of).unwrap();
        let got = w.grad().unwrap().to_vec_f32().unwrap();
        assert!((got_loss - whole.item().unwrap()).abs() < 1e-5);
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-5, "{got:?} vs {want:?}");
        }
    }
}
