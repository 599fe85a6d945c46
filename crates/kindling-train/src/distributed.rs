//! Data parallelism across processes (`--distributed mpi`): N ranks, each
//! with its own copy of the model, train as one.
//!
//! Every rank builds the whole step's batch from the step's random stream
//! (so any rank count can resume any checkpoint) and takes its rows: rank
//! `r` of `N` takes the `r`-th of `N` equal parts, then cuts them among its
//! threads like a one-process run. Its gradient is weighted by its rows
//! over the global batch; an all-reduce (sum) makes it the global batch's
//! gradient on every rank, and every rank takes the same optimizer step.
//! The reduction order is fixed: shard gradients are summed in order within
//! a rank, then across ranks by MPI. With one gradient-accumulation step,
//! N ranks × T threads and one process with N·T threads run the same
//! shards (the same rows, the same dropout streams) and sum them in the
//! same order, so their results are the same bits for two ranks (for more,
//! MPI's summation order decides the last bits).
//!
//! Rank 0 alone writes: the other ranks' run directory is a scratch folder
//! that is deleted when they finish (`RunDir::start`), and they read the
//! checkpoint to resume from the real one.
//!
//! The transport is behind [`Collective`]; [`mpi`] (cargo feature `mpi`)
//! implements it with rsmpi over Open MPI. One process installs one
//! collective at start ([`install`]); without it everything is rank 0 of 1.

use crate::Result;
use kindling_tensor::Tensor;
use std::sync::OnceLock;

/// Collective operations among the ranks of one job. Called from the main
/// thread only.
pub trait Collective: Send + Sync {
    fn rank(&self) -> usize;
    fn size(&self) -> usize;
    /// Sums `buf` elementwise over the ranks; every rank gets the sum.
    fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()>;
    /// The largest `v` over the ranks.
    fn all_reduce_max(&self, v: u64) -> Result<u64>;
    /// Every rank's `v`, in rank order.
    fn all_gather(&self, v: u64) -> Result<Vec<u64>>;
    /// Ends every rank of the job now (after an error on one of them, so
    /// that no rank waits forever on the others).
    fn abort(&self, code: i32) -> !;
}

static COLLECTIVE: OnceLock<Box<dyn Collective>> = OnceLock::new();

/// Makes `c` this process's collective (once).
pub fn install(c: Box<dyn Collective>) -> Result<()> {
    COLLECTIVE
        .set(c)
        .map_err(|_| "distributed: a collective is already installed".into())
}

pub fn get() -> Option<&'static dyn Collective> {
    COLLECTIVE.get().map(|c| c.as_ref())
}

/// This process's rank (0 when not distributed).
pub fn rank() -> usize {
    get().map_or(0, |c| c.rank())
}

/// Ranks in the job (1 when not distributed).
pub fn size() -> usize {
    get().map_or(1, |c| c.size())
}

/// Whether this process writes results (rank 0, or not distributed).
pub fn is_writer() -> bool {
    rank() == 0
}

/// Gradients are reduced in buckets of at most this many floats (16 MB),
/// so a large model never needs one huge message or buffer.
pub const BUCKET_FLOATS: usize = 4 << 20;

/// Sums the gradients of `params` over the ranks, in buckets. A parameter
/// without a gradient on some rank counts as zero there; one without a
/// gradient on every rank keeps none (the optimizer skips it, as in one
/// process).
pub fn all_reduce_gradients(c: &dyn Collective, params: &[Tensor]) -> Result<()> {
    // Which parameters have a gradient anywhere.
    let mut present: Vec<f32> = params
        .iter()
        .map(|p| if p.grad().is_some() { 1.0 } else { 0.0 })
        .collect();
    c.all_reduce_sum(&mut present)?;
    let mut i = 0;
    while i < params.len() {
        // The next bucket: whole parameters up to BUCKET_FLOATS (a larger
        // parameter goes alone, in BUCKET_FLOATS pieces).
        let mut j = i;
        let mut n = 0;
        while j < params.len() && (j == i || n + params[j].numel() <= BUCKET_FLOATS) {
            if present[j] > 0.0 {
                n += params[j].numel();
            }
            j += 1;
        }
        let mut buf = Vec::with_capacity(n);
        for (p, &here) in params[i..j].iter().zip(&present[i..j]) {
            if here == 0.0 {
                continue;
            }
            match p.grad() {
                Some(g) => buf.extend(g.to_vec_f32()?),
                None => buf.extend(std::iter::repeat_n(0.0, p.numel())),
            }
        }
        for piece in buf.chunks_mut(BUCKET_FLOATS) {
            c.all_reduce_sum(piece)?;
        }
        let mut at = 0;
        for (p, &here) in params[i..j].iter().zip(&present[i..j]) {
            if here == 0.0 {
                continue;
            }
            let k = p.numel();
            p.set_grad(Some(Tensor::from_vec(buf[at..at + k].to_vec(), p.shape())?));
            at += k;
        }
        i = j;
    }
    Ok(())
}

/// Checks at start that every rank runs the same binary with the same
/// arguments (a fingerprint per rank, gathered): a job of mismatched
/// ranks would compute different things and hang or diverge.
pub fn check_same_job(c: &dyn Collective, fingerprint: u64, what: &str) -> Result<()> {
    let all = c.all_gather(fingerprint)?;
    if let Some(r) = all.iter().position(|&f| f != all[0]) {
        return Err(format!(
            "--distributed: rank {r} runs a different {what} than rank 0; every rank needs the same binary and the same arguments"
        )
        .into());
    }
    Ok(())
}

/// A 64-bit fingerprint of some bytes (the first 8 bytes of their SHA-256).
pub fn fingerprint(parts: &[&[u8]]) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
    }
    u64::from_le_bytes(h.finalize()[..8].try_into().expect("8 bytes"))
}

#[cfg(feature = "mpi")]
pub mod mpi {
    //! [`Collective`](super::Collective) over MPI (rsmpi, Open MPI).

    use super::Collective;
    use crate::Result;
    use ::mpi::collective::SystemOperation;
    use ::mpi::environment::Universe;
    use ::mpi::topology::SimpleCommunicator;
    use ::mpi::traits::*;

    pub struct Mpi {
        world: SimpleCommunicator,
        rank: usize,
        size: usize,
    }

    /// Keeps MPI initialized; dropping it finalizes MPI (keep it until the
    /// process ends: an installed collective lives in a static, which is
    /// never dropped).
    pub struct Session(#[allow(dead_code)] Universe);

    // SAFETY: MPI is initialized with `Threading::Funneled` and only the
    // main thread calls it (the trainer's collective calls happen between
    // steps, on the thread that runs the loop); the handles are plain
    // integers/pointers owned by the MPI library.
    unsafe impl Send for Mpi {}
    unsafe impl Sync for Mpi {}

    impl Mpi {
        /// Initializes MPI (once per process).
        pub fn init() -> Result<(Mpi, Session)> {
            let (universe, _) = ::mpi::initialize_with_threading(::mpi::Threading::Funneled)
                .ok_or("--distributed mpi: MPI is already initialized")?;
            let world = universe.world();
            let (rank, size) = (world.rank() as usize, world.size() as usize);
            Ok((Mpi { world, rank, size }, Session(universe)))
        }
    }

    impl Collective for Mpi {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            let send = buf.to_vec();
            self.world
                .all_reduce_into(&send[..], buf, SystemOperation::sum());
            Ok(())
        }
        fn all_reduce_max(&self, v: u64) -> Result<u64> {
            let mut out = 0u64;
            self.world
                .all_reduce_into(&v, &mut out, SystemOperation::max());
            Ok(out)
        }
        fn all_gather(&self, v: u64) -> Result<Vec<u64>> {
            let mut out = vec![0u64; self.size];
            self.world.all_gather_into(&v, &mut out[..]);
            Ok(out)
        }
        fn abort(&self, code: i32) -> ! {
            self.world.abort(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier, Mutex};

    /// Ranks as threads of one process: a shared board, a barrier per call.
    struct Threads {
        rank: usize,
        size: usize,
        board: Arc<Mutex<Vec<Vec<f32>>>>,
        barrier: Arc<Barrier>,
    }

    impl Threads {
        fn exchange(&self, mine: Vec<f32>) -> Vec<Vec<f32>> {
            self.board.lock().unwrap()[self.rank] = mine;
            self.barrier.wait();
            let all = self.board.lock().unwrap().clone();
            self.barrier.wait();
            all
        }
    }

    impl Collective for Threads {
        fn rank(&self) -> usize {
            self.rank
        }
        fn size(&self) -> usize {
            self.size
        }
        fn all_reduce_sum(&self, buf: &mut [f32]) -> Result<()> {
            let all = self.exchange(buf.to_vec());
            for (i, v) in buf.iter_mut().enumerate() {
                *v = all.iter().map(|b| b[i]).sum();
            }
            Ok(())
        }
        fn all_reduce_max(&self, v: u64) -> Result<u64> {
            let all = self.exchange(vec![v as f32]);
            Ok(all.iter().map(|b| b[0] as u64).max().unwrap())
        }
        fn all_gather(&self, v: u64) -> Result<Vec<u64>> {
            let all = self.exchange(vec![v as f32]);
            Ok(all.iter().map(|b| b[0] as u64).collect())
        }
        fn abort(&self, _code: i32) -> ! {
            panic!("abort")
        }
    }

    fn ranks(size: usize) -> Vec<Threads> {
        let board = Arc::new(Mutex::new(vec![Vec::new(); size]));
        let barrier = Arc::new(Barrier::new(size));
        (0..size)
            .map(|rank| Threads {
                rank,
                size,
                board: board.clone(),
                barrier: barrier.clone(),
            })
            .collect()
    }

    #[test]
    fn gradients_are_summed_over_ranks_and_missing_ones_count_as_zero() {
        let handles: Vec<_> = ranks(3)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let r = c.rank as f32;
                    let a = Tensor::zeros(&[2, 3]).requires_grad_(true);
                    a.set_grad(Some(Tensor::full(&[2, 3], r + 1.0)));
                    // Only rank 1 has a gradient for b; nobody for z.
                    let b = Tensor::zeros(&[4]).requires_grad_(true);
                    if c.rank == 1 {
                        b.set_grad(Some(Tensor::full(&[4], 5.0)));
                    }
                    let z = Tensor::zeros(&[2]).requires_grad_(true);
                    all_reduce_gradients(&c, &[a.clone(), b.clone(), z.clone()]).unwrap();
                    (
                        a.grad().unwrap().to_vec_f32().unwrap(),
                        b.grad().unwrap().to_vec_f32().unwrap(),
                        z.grad().is_none(),
                    )
                })
            })
            .collect();
        for h in handles {
            let (a, b, z) = h.join().unwrap();
            assert_eq!(a, vec![6.0; 6]);
            assert_eq!(b, vec![5.0; 4]);
            assert!(z);
        }
    }

    #[test]
    fn a_rank_with_other_arguments_is_named() {
        let handles: Vec<_> = ranks(3)
            .into_iter()
            .map(|c| {
                std::thread::spawn(move || {
                    let f = if c.rank == 2 { 7 } else { 3 };
                    check_same_job(&c, f, "command line").map_err(|e| e.to_string())
                })
            })
            .collect();
        for h in handles {
            let e = h.join().unwrap().unwrap_err();
            assert!(e.contains("rank 2 runs a different command line"), "{e}");
        }
        assert_ne!(fingerprint(&[b"a", b"bc"]), fingerprint(&[b"ab", b"c"]));
    }
}
