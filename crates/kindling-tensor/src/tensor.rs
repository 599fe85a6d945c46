//! `Tensor`: a cheap, reference-counted handle to shared storage seen through a
//! layout, plus what autograd needs (whether it wants a gradient, the node that
//! made it, and the accumulated gradient for leaves).

use crate::autograd::{self, BackwardFn, Node};
use crate::backend::Backend;
use crate::cpu;
use crate::layout::{resolve_dim, Layout};
use crate::{CpuStorage, DType, Device, Error, Result, Rng, Storage};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

pub(crate) struct TensorInner {
    id: usize,
    storage: Arc<RwLock<Storage>>,
    layout: Layout,
    /// Atomic so a leaf can be frozen in place (`set_requires_grad`) while
    /// every handle to it (the model's, the optimizer's) sees the change.
    requires_grad: AtomicBool,
    pub(crate) node: Option<Node>,
    pub(crate) grad: RwLock<Option<Tensor>>,
}

#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<TensorInner>);

impl std::fmt::Debug for Tensor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tensor[{:?}, {}", self.shape(), self.dtype())?;
        if self.numel() <= 16 {
            if let Ok(v) = self.to_vec_f64() {
                write!(f, ", {v:?}")?;
            }
        }
        if self.requires_grad() {
            write!(f, ", requires_grad")?;
        }
        write!(f, "]")
    }
}

fn check_len(op: &'static str, len: usize, shape: &[usize]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != len {
        return Err(Error::shape(
            op,
            format!("{len} elements cannot fill shape {shape:?} ({n} elements)"),
        ));
    }
    Ok(())
}

impl Tensor {
    // ---- construction -------------------------------------------------

    pub(crate) fn from_parts(
        storage: Arc<RwLock<Storage>>,
        layout: Layout,
        node: Option<Node>,
    ) -> Tensor {
        let requires_grad = node.is_some();
        Tensor(Arc::new(TensorInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage,
            layout,
            requires_grad: AtomicBool::new(requires_grad),
            node,
            grad: RwLock::new(None),
        }))
    }

    /// A fresh contiguous tensor over a kernel's output, no autograd history.
    pub(crate) fn from_kernel(storage: Storage, shape: &[usize]) -> Result<Tensor> {
        check_len("from_kernel", storage.len(), shape)?;
        Ok(Tensor::from_parts(
            Arc::new(RwLock::new(storage)),
            Layout::contiguous(shape),
            None,
        ))
    }

    /// The kernels of the device this tensor's storage lives on.
    pub(crate) fn backend(&self) -> &'static dyn Backend {
        self.device().backend()
    }

    /// A fresh contiguous tensor owning `storage`, with no autograd history.
    pub fn from_storage(storage: CpuStorage, shape: &[usize]) -> Result<Tensor> {
        check_len("from_storage", storage.len(), shape)?;
        Ok(Tensor::from_parts(
            Arc::new(RwLock::new(Storage::Cpu(storage))),
            Layout::contiguous(shape),
            None,
        ))
    }

    pub fn from_vec(data: Vec<f32>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_storage(CpuStorage::F32(data), shape)
    }

    pub fn from_slice(data: &[f32], shape: &[usize]) -> Result<Tensor> {
        Tensor::from_vec(data.to_vec(), shape)
    }

    pub fn from_vec_i64(data: Vec<i64>, shape: &[usize]) -> Result<Tensor> {
        Tensor::from_storage(CpuStorage::I64(data), shape)
    }

    pub fn scalar(v: f32) -> Tensor {
        Tensor::from_vec(vec![v], &[]).expect("one element fills a 0-d shape")
    }

    pub fn full(shape: &[usize], v: f32) -> Tensor {
        let n = shape.iter().product();
        Tensor::from_vec(vec![v; n], shape).expect("length computed from shape")
    }

    pub fn zeros(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 0.0)
    }

    pub fn ones(shape: &[usize]) -> Tensor {
        Tensor::full(shape, 1.0)
    }

    pub fn zeros_like(&self) -> Tensor {
        Tensor::zeros(self.shape())
    }

    pub fn ones_like(&self) -> Tensor {
        Tensor::ones(self.shape())
    }

    /// `start, start+step, ...` below `end`, as f32.
    pub fn arange(start: f32, end: f32, step: f32) -> Result<Tensor> {
        if step == 0.0 || (end - start) / step < 0.0 {
            return Err(Error::msg(format!(
                "arange: step {step} cannot go from {start} to {end}"
            )));
        }
        let n = ((end - start) / step).ceil() as usize;
        let data: Vec<f32> = (0..n).map(|i| start + i as f32 * step).collect();
        Tensor::from_vec(data, &[n])
    }

    /// Uniform in [lo, hi).
    pub fn rand(shape: &[usize], lo: f32, hi: f32, rng: &mut Rng) -> Tensor {
        let n = shape.iter().product();
        let data = (0..n).map(|_| rng.uniform_range(lo, hi)).collect();
        Tensor::from_vec(data, shape).expect("length computed from shape")
    }

    /// Normal with the given mean and standard deviation.
    pub fn randn(shape: &[usize], mean: f32, std: f32, rng: &mut Rng) -> Tensor {
        let n = shape.iter().product();
        let data = (0..n).map(|_| mean + std * rng.normal()).collect();
        Tensor::from_vec(data, shape).expect("length computed from shape")
    }

    // ---- properties ---------------------------------------------------

    pub fn id(&self) -> usize {
        self.0.id
    }
    pub fn shape(&self) -> &[usize] {
        self.0.layout.shape()
    }
    pub fn dims(&self) -> &[usize] {
        self.shape()
    }
    pub fn rank(&self) -> usize {
        self.0.layout.rank()
    }
    pub fn numel(&self) -> usize {
        self.0.layout.numel()
    }
    pub fn layout(&self) -> &Layout {
        &self.0.layout
    }
    pub fn dtype(&self) -> DType {
        self.storage().dtype()
    }
    pub fn device(&self) -> Device {
        self.storage().device()
    }
    pub fn is_contiguous(&self) -> bool {
        self.0.layout.is_contiguous()
    }
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }
    pub fn is_leaf(&self) -> bool {
        self.0.node.is_none()
    }
    /// Name of the op that produced this tensor, if autograd recorded one.
    pub fn op_name(&self) -> Option<&'static str> {
        self.0.node.as_ref().map(|n| n.op)
    }

    /// Size of dim `d` (negative counts from the end).
    pub fn dim(&self, d: isize) -> Result<usize> {
        Ok(self.shape()[resolve_dim("dim", d, self.rank())?])
    }

    pub(crate) fn storage(&self) -> RwLockReadGuard<'_, Storage> {
        self.0
            .storage
            .read()
            .expect("storage lock poisoned: a kernel panicked earlier")
    }

    /// The buffer for writing in place (optimizer updates). Callers lock
    /// tensors that share no storage, so two guards never meet on one lock.
    pub(crate) fn storage_mut(&self) -> std::sync::RwLockWriteGuard<'_, Storage> {
        self.0
            .storage
            .write()
            .expect("storage lock poisoned: a kernel panicked earlier")
    }

    /// True when both handles see the same buffer (views of one another).
    pub fn shares_storage_with(&self, other: &Tensor) -> bool {
        Arc::ptr_eq(&self.0.storage, &other.0.storage)
    }

    // ---- autograd state -----------------------------------------------

    /// A leaf that shares this tensor's data and does (or does not) want a gradient.
    pub fn requires_grad_(self, on: bool) -> Tensor {
        Tensor(Arc::new(TensorInner {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            storage: self.0.storage.clone(),
            layout: self.0.layout.clone(),
            requires_grad: AtomicBool::new(on),
            node: None,
            grad: RwLock::new(None),
        }))
    }

    /// Turns gradient tracking of this leaf on or off in place, for every
    /// handle to it, as PyTorch's `p.requires_grad_(False)`: a frozen
    /// parameter records no graph, gets no `.grad()` and costs no backward
    /// work. Ops already recorded keep the setting they saw. Only leaves:
    /// an op's result requires a gradient because its inputs do.
    pub fn set_requires_grad(&self, on: bool) -> Result<()> {
        if !self.is_leaf() {
            return Err(Error::Autograd(format!(
                "set_requires_grad: the result of op `{}` is not a leaf",
                self.op_name().unwrap_or("?")
            )));
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(())
    }

    /// Same data, cut from the graph.
    pub fn detach(&self) -> Tensor {
        Tensor::from_parts(self.0.storage.clone(), self.0.layout.clone(), None)
    }

    pub fn grad(&self) -> Option<Tensor> {
        self.0.grad.read().expect("grad lock poisoned").clone()
    }

    pub fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.write().expect("grad lock poisoned") = g;
    }

    pub fn zero_grad(&self) {
        self.set_grad(None);
    }

    /// Builds an op's result: records the node only when some input wants a
    /// gradient and grad mode is on, so inference pays nothing for autograd.
    pub(crate) fn from_op(
        storage: Storage,
        shape: &[usize],
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        debug_assert_eq!(storage.len(), shape.iter().product::<usize>(), "{op}");
        let node = Self::node_for(op, inputs, backward);
        Tensor::from_parts(
            Arc::new(RwLock::new(storage)),
            Layout::contiguous(shape),
            node,
        )
    }

    /// A view: same storage, new layout, gradient mapped back by `backward`.
    pub(crate) fn view_op(
        &self,
        layout: Layout,
        op: &'static str,
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Tensor {
        let node = Self::node_for(op, &[self], backward);
        Tensor::from_parts(self.0.storage.clone(), layout, node)
    }

    fn node_for(
        op: &'static str,
        inputs: &[&Tensor],
        backward: impl Fn(&Tensor) -> Result<Vec<Option<Tensor>>> + Send + Sync + 'static,
    ) -> Option<Node> {
        if autograd::is_grad_enabled() && inputs.iter().any(|t| t.requires_grad()) {
            Some(Node {
                op,
                inputs: inputs.iter().map(|t| (*t).clone()).collect(),
                backward: Box::new(backward) as BackwardFn,
            })
        } else {
            None
        }
    }

    // ---- reading data -------------------------------------------------

    /// The elements in row-major order as f32 (converting from any dtype).
    pub fn to_vec_f32(&self) -> Result<Vec<f32>> {
        let s = self.storage();
        Ok(match s.cpu() {
            CpuStorage::F32(v) => cpu::copy::gather_strided(v, self.layout()),
            other => {
                let mut out = Vec::with_capacity(self.numel());
                crate::layout::for_each_row(self.layout(), |start, stride, len| {
                    out.extend((0..len).map(|i| other.get_f64(start + i * stride) as f32))
                });
                out
            }
        })
    }

    pub fn to_vec_f64(&self) -> Result<Vec<f64>> {
        let s = self.storage();
        let mut out = Vec::with_capacity(self.numel());
        crate::layout::for_each_row(self.layout(), |start, stride, len| {
            out.extend((0..len).map(|i| s.cpu().get_f64(start + i * stride)))
        });
        Ok(out)
    }

    pub fn to_vec_i64(&self) -> Result<Vec<i64>> {
        let s = self.storage();
        match s.cpu() {
            CpuStorage::I64(v) => Ok(cpu::copy::gather_strided(v, self.layout())),
            other => Err(Error::DType {
                op: "to_vec_i64",
                expected: DType::I64,
                got: other.dtype(),
            }),
        }
    }

    /// The value of a one-element tensor.
    pub fn item(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::shape(
                "item",
                format!(
                    "needs exactly one element, tensor has shape {:?}",
                    self.shape()
                ),
            ));
        }
        Ok(self.to_vec_f32()?[0])
    }

    /// Mutates the elements in place. Only for a contiguous tensor that owns
    /// its whole buffer (parameters, optimizer state): never touches the graph.
    pub(crate) fn update_f32(&self, f: impl FnOnce(&mut [f32])) -> Result<()> {
        let range = self
            .layout()
            .contiguous_range()
            .ok_or_else(|| Error::msg("update_f32: tensor must be contiguous"))?;
        let mut s = self.0.storage.write().expect("storage lock poisoned");
        let data = s.cpu_mut().f32_mut("update_f32")?;
        f(&mut data[range]);
        Ok(())
    }

    /// Copies `src`'s values into this tensor's buffer (same shape), in place.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::shape(
                "assign",
                format!("source {:?} vs destination {:?}", src.shape(), self.shape()),
            ));
        }
        let v = src.to_vec_f32()?;
        self.update_f32(|d| d.copy_from_slice(&v))
    }

    // ---- dtype --------------------------------------------------------

    pub fn to_dtype(&self, dtype: DType) -> Result<Tensor> {
        if dtype == self.dtype() {
            return Ok(self.clone());
        }
        let out = self.backend().to_dtype(self, dtype)?;
        let src_dtype = self.dtype();
        Ok(Tensor::from_op(
            out,
            self.shape(),
            "to_dtype",
            &[self],
            move |g| Ok(vec![Some(g.to_dtype(src_dtype)?)]),
        ))
    }

    // ---- views ----------------------------------------------------------

    /// A contiguous tensor with the same values (`self` when already contiguous).
    pub fn contiguous(&self) -> Result<Tensor> {
        if self.is_contiguous() {
            return Ok(self.clone());
        }
        let out = self.backend().contiguous(self)?;
        Ok(Tensor::from_op(
            out,
            self.shape(),
            "contiguous",
            &[self],
            |g| Ok(vec![Some(g.clone())]),
        ))
    }

    /// A contiguous copy that shares nothing with `self` (no graph).
    pub fn copy(&self) -> Result<Tensor> {
        let out = self.backend().contiguous(self)?;
        Tensor::from_kernel(out, self.shape())
    }

    /// Reshape; a view when the data is contiguous, a copy otherwise. One
    /// dimension may be `usize::MAX` to mean "whatever is left" (like -1).
    pub fn reshape(&self, shape: &[usize]) -> Result<Tensor> {
        let shape = self.infer_shape(shape)?;
        let src = self.contiguous()?;
        let layout = src
            .layout()
            .reshape(&shape)
            .expect("contiguous input reshapes as a view");
        let in_shape = self.shape().to_vec();
        Ok(src.view_op(layout, "reshape", move |g| {
            Ok(vec![Some(g.reshape(&in_shape)?)])
        }))
    }

    fn infer_shape(&self, shape: &[usize]) -> Result<Vec<usize>> {
        let n = self.numel();
        let holes = shape.iter().filter(|&&d| d == usize::MAX).count();
        let known: usize = shape.iter().filter(|&&d| d != usize::MAX).product();
        let mut out = shape.to_vec();
        if holes > 1 {
            return Err(Error::shape(
                "reshape",
                "only one dimension can be inferred",
            ));
        }
        if holes == 1 {
            if known == 0 || !n.is_multiple_of(known) {
                return Err(Error::shape(
                    "reshape",
                    format!("cannot infer a dimension of {shape:?} for {n} elements"),
                ));
            }
            for d in out.iter_mut() {
                if *d == usize::MAX {
                    *d = n / known;
                }
            }
        }
        check_len("reshape", n, &out)?;
        Ok(out)
    }

    pub fn flatten_all(&self) -> Result<Tensor> {
        self.reshape(&[self.numel()])
    }

    /// Merges dims `start..` into one, keeping the leading ones (batch).
    pub fn flatten_from(&self, start: usize) -> Result<Tensor> {
        let mut shape = self.shape()[..start].to_vec();
        shape.push(self.shape()[start..].iter().product());
        self.reshape(&shape)
    }

    pub fn permute(&self, dims: &[usize]) -> Result<Tensor> {
        let layout = self.layout().permute(dims)?;
        let mut inverse = vec![0; dims.len()];
        for (i, &d) in dims.iter().enumerate() {
            inverse[d] = i;
        }
        Ok(self.view_op(layout, "permute", move |g| {
            Ok(vec![Some(g.permute(&inverse)?)])
        }))
    }

    pub fn transpose(&self, a: isize, b: isize) -> Result<Tensor> {
        let r = self.rank();
        let (a, b) = (
            resolve_dim("transpose", a, r)?,
            resolve_dim("transpose", b, r)?,
        );
        let mut dims: Vec<usize> = (0..r).collect();
        dims.swap(a, b);
        self.permute(&dims)
    }

    /// Transpose of the last two dims.
    pub fn t(&self) -> Result<Tensor> {
        self.transpose(-2, -1)
    }

    pub fn narrow(&self, dim: isize, start: usize, len: usize) -> Result<Tensor> {
        let d = resolve_dim("narrow", dim, self.rank())?;
        let layout = self.layout().narrow(d, start, len)?;
        let in_shape = self.shape().to_vec();
        Ok(self.view_op(layout, "narrow", move |g| {
            Ok(vec![Some(crate::ops::shape_ops::pad_into(
                g, &in_shape, d, start,
            )?)])
        }))
    }

    /// Stride-0 view repeating size-1 dims up to `shape`.
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Tensor> {
        if shape == self.shape() {
            return Ok(self.clone());
        }
        let layout = self.layout().broadcast_as(shape)?;
        let in_shape = self.shape().to_vec();
        Ok(self.view_op(layout, "expand", move |g| {
            Ok(vec![Some(g.sum_to_shape(&in_shape)?)])
        }))
    }

    pub fn expand(&self, shape: &[usize]) -> Result<Tensor> {
        self.broadcast_as(shape)
    }

    pub fn unsqueeze(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("unsqueeze", dim, self.rank() + 1)?;
        let mut shape = self.shape().to_vec();
        shape.insert(d, 1);
        let mut strides = self.layout().strides().to_vec();
        let s = if d < strides.len() {
            strides[d] * self.shape()[d]
        } else {
            1
        };
        strides.insert(d, s);
        let layout = Layout::new(shape, strides, self.layout().offset());
        Ok(self.view_op(layout, "unsqueeze", move |g| {
            Ok(vec![Some(g.squeeze(d as isize)?)])
        }))
    }

    pub fn squeeze(&self, dim: isize) -> Result<Tensor> {
        let d = resolve_dim("squeeze", dim, self.rank())?;
        if self.shape()[d] != 1 {
            return Err(Error::shape(
                "squeeze",
                format!(
                    "dim {d} of {:?} has size {}, not 1",
                    self.shape(),
                    self.shape()[d]
                ),
            ));
        }
        let mut shape = self.shape().to_vec();
        let mut strides = self.layout().strides().to_vec();
        shape.remove(d);
        strides.remove(d);
        let layout = Layout::new(shape, strides, self.layout().offset());
        Ok(self.view_op(layout, "squeeze", move |g| {
            Ok(vec![Some(g.unsqueeze(d as isize)?)])
        }))
    }
}
