//! Kindling's tensor crate: n-d tensors over a backend storage, define-by-run
//! autograd, and the CPU kernels.
//!
//! ```
//! use kindling_tensor::Tensor;
//! let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap().requires_grad_(true);
//! let y = x.sqr().unwrap().sum_all().unwrap();
//! y.backward().unwrap();
//! assert_eq!(x.grad().unwrap().to_vec_f32().unwrap(), vec![2.0, 4.0, 6.0]);
//! ```

mod autograd;
// The seam between ops and kernels: descriptors and the `Backend` trait.
pub(crate) mod backend;
// Kernels take raw slices and reach `unsafe` GEMM calls: only `CpuBackend`,
// called by the validated tensor ops, may call them.
pub(crate) mod cpu;
mod dtype;
mod error;
pub mod gguf;
pub mod gradcheck;
pub mod layout;
mod ops;
// Weights in llama.cpp's block formats and products with them.
pub mod quant;
mod rng;
pub mod safetensors_io;
mod storage;
mod tensor;

/// The vector instruction set the CPU kernels run with on this machine
/// (`baseline`, `avx2` or `avx512`), for logs and benchmark records.
pub fn simd_level() -> &'static str {
    cpu::simd::level().name()
}

/// Run-time instruction-set dispatch for kernels written in other crates
/// (optimizers): see `simd::Kernel`.
pub use cpu::simd;

pub use autograd::{is_grad_enabled, no_grad, Gradients, NoGradGuard};
pub use dtype::DType;
pub use error::{Error, Result};
pub use layout::Layout;
pub use ops::elementwise::where_cond;
pub use ops::optim_update::{adam_update_, sgd_update_, AdamStep, SgdStep};
pub use ops::shape_ops::{cat, stack};
pub use quant::QMatrix;
pub use rng::Rng;
pub use storage::{CpuStorage, Device, Storage};
pub use tensor::Tensor;

/// Sets the number of CPU threads kernels use (rayon's global pool). Call
/// once, before the first op; later calls are ignored with an error.
pub fn set_num_threads(n: usize) -> Result<()> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .map_err(|e| Error::msg(format!("`threads` {n}: {e}")))
}

pub fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Runs `f` on one of the kernel threads (rayon's pool) and returns its
/// result; inline when already on one. A product called from outside the
/// pool hands its work to the pool and sleeps until it is done (a futex
/// wake and wait each way), which for a decoding step of ~200 small
/// products cost a third of the time; called from inside, the calling
/// thread takes its share and a one-thread pool runs everything inline.
/// `f` sees the caller's grad mode (`no_grad` is per thread).
pub fn on_kernel_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        return f();
    }
    let grad = is_grad_enabled();
    rayon::scope(move |_| {
        let _guard = (!grad).then(no_grad);
        f()
    })
}
