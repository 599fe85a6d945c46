//! The CPU backend: `CpuBackend` implements the `Backend` trait the ops call
//! (`backend.rs`) over a short list of kernels on slices, one file per
//! family. Composite ops and the backward rules live above, in `ops/`.

pub mod activation;
pub mod attention;
mod backend;
pub mod batch_norm;
pub mod conv;
pub mod copy;
pub mod elementwise;
pub mod gemv;
pub mod ggml_order;
pub mod index;
pub mod layer_norm;
pub mod loss;
pub mod matmul;
pub mod optim;
pub mod pool;
pub mod reduce;
pub mod rms_norm;
pub mod rope;
pub mod simd;
pub mod softmax;

pub use backend::CpuBackend;

/// Below this many elements a kernel runs on one thread: spawning costs more.
pub const PARALLEL_MIN_ELEMS: usize = 1 << 15;
