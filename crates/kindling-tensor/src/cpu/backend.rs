//! `CpuBackend`: the `Backend` trait over `CpuStorage`, each method a thin
//! wrapper that borrows the inputs' slices and calls a kernel of `cpu/`.

use super::{activation, attention, batch_norm, conv, copy, elementwise as ew, index};
use super::{layer_norm, loss};
use super::{matmul, optim, pool, reduce, rms_norm, rope, simd, softmax};
use crate::backend::{
    AttentionGeometry, Backend, BinaryOp, CachedAttentionGeometry, ConvGeometry, Gemm, Mat,
    PoolGeometry, UnaryOp,
};
use crate::layout::Layout;
use crate::ops::optim_update::{AdamStep, SgdStep};
use crate::{CpuStorage, DType, Error, Result, Storage, Tensor};

pub struct CpuBackend;

fn f32s(v: Vec<f32>) -> Storage {
    Storage::Cpu(CpuStorage::F32(v))
}

fn i64s(v: Vec<i64>) -> Storage {
    Storage::Cpu(CpuStorage::I64(v))
}

/// The f32 slice of a contiguous tensor (callers made it so).
fn slice<'a>(s: &'a Storage, t: &Tensor, op: &'static str) -> Result<&'a [f32]> {
    let r = t
        .layout()
        .contiguous_range()
        .ok_or_else(|| Error::msg(format!("{op}: kernel input must be contiguous")))?;
    Ok(&s.cpu().f32(op)?[r])
}

/// A cached key or value tensor `[B, Tk, H_kv, d]` read in place (its
/// `[H_kv, d]` rows contiguous, any batch and position strides).
fn kv_view<'a>(
    s: &'a Storage,
    t: &Tensor,
    d: usize,
    op: &'static str,
) -> Result<attention::KvView<'a>> {
    let l = t.layout();
    let st = l.strides();
    if l.rank() != 4 || st[3] != 1 || st[2] != d {
        return Err(Error::msg(format!(
            "{op}: keys need contiguous [kv_heads, d] rows (values those or contiguous positions), got strides {st:?}"
        )));
    }
    Ok(attention::KvView {
        data: &s.cpu().f32(op)?[l.offset()..],
        batch_stride: st[0],
        pos_stride: st[1],
    })
}

/// Cached values read in place: `[B, Tk, H_kv, d]` by rows like `kv_view`,
/// or with positions contiguous (`[B, H_kv, d, capacity]` permuted),
/// llama.cpp's layout of its value cache.
fn values_view<'a>(
    s: &'a Storage,
    t: &Tensor,
    d: usize,
    op: &'static str,
) -> Result<attention::Values<'a>> {
    let l = t.layout();
    let st = l.strides();
    if l.rank() == 4 && st[1] == 1 && st[3] > 0 {
        return Ok(attention::Values::Transposed(attention::ValuesT {
            data: &s.cpu().f32(op)?[l.offset()..],
            batch_stride: st[0],
            head_stride: st[2],
            elem_stride: st[3],
        }));
    }
    Ok(attention::Values::Rows(kv_view(s, t, d, op)?))
}

/// The contiguous f32 elements of `t` in its (write-locked) storage.
fn owned_slice<'a>(s: &'a mut Storage, t: &Tensor, op: &'static str) -> Result<&'a mut [f32]> {
    let r = t
        .layout()
        .contiguous_range()
        .ok_or_else(|| Error::msg(format!("{op}: tensor must be contiguous")))?;
    Ok(&mut s.cpu_mut().f32_mut(op)?[r])
}

/// The elements of any-dtype `t` as f32, in row-major order.
fn values_f32(s: &CpuStorage, l: &Layout) -> Vec<f32> {
    match s {
        CpuStorage::F32(v) => copy::gather_strided(v, l),
        other => {
            let mut out = Vec::with_capacity(l.numel());
            crate::layout::for_each_row(l, |start, stride, len| {
                out.extend((0..len).map(|i| other.get_f64(start + i * stride) as f32))
            });
            out
        }
    }
}

/// `f` over two broadcast views; `x * x` reads through one guard, since a
/// second read lock on the same RwLock can deadlock behind a waiting writer.
fn binary_map<T: Copy + Send + Sync + Default>(
    a: &Tensor,
    b: &Tensor,
    op: &'static str,
    f: impl simd::Map<(f32, f32), T>,
) -> Result<Vec<T>> {
    let sa = a.storage();
    if a.shares_storage_with(b) {
        let x = sa.cpu().f32(op)?;
        Ok(ew::binary(x, a.layout(), x, b.layout(), f))
    } else {
        let sb = b.storage();
        Ok(ew::binary(
            sa.cpu().f32(op)?,
            a.layout(),
            sb.cpu().f32(op)?,
            b.layout(),
            f,
        ))
    }
}

/// A GEMM operand over storage, as its CPU slice.
fn on_cpu<'a>(m: Mat<'a, Storage>) -> Result<Mat<'a, [f32]>> {
    Ok(Mat {
        data: m.data.cpu().f32("gemm")?,
        offset: m.offset,
        row_stride: m.row_stride,
        col_stride: m.col_stride,
    })
}

/// The row length of a `[.., n]` kernel input.
fn last_dim(t: &Tensor) -> usize {
    t.shape().last().copied().unwrap_or(1)
}

impl Backend for CpuBackend {
    fn contiguous(&self, x: &Tensor) -> Result<Storage> {
        Ok(Storage::Cpu(copy::gather_any(
            x.storage().cpu(),
            x.layout(),
        )))
    }

    fn to_dtype(&self, x: &Tensor, dtype: DType) -> Result<Storage> {
        Ok(Storage::Cpu(copy::convert(
            x.storage().cpu(),
            x.layout(),
            dtype,
        )))
    }

    fn cat(
        &self,
        parts: &[(&Tensor, usize, usize)],
        outer: usize,
        total: usize,
        inner: usize,
    ) -> Result<Storage> {
        let mut out = vec![0f32; outer * total * inner];
        for &(t, start, n) in parts {
            let s = t.storage();
            match (s.cpu(), t.layout().contiguous_range()) {
                (CpuStorage::F32(v), Some(r)) => {
                    copy::copy_into_slot(&mut out, total, &v[r], n, start, inner)
                }
                (other, _) => {
                    let v = values_f32(other, t.layout());
                    copy::copy_into_slot(&mut out, total, &v, n, start, inner)
                }
            }
        }
        Ok(f32s(out))
    }

    fn unary(&self, x: &Tensor, op: UnaryOp) -> Result<Storage> {
        let s = x.storage();
        Ok(f32s(activation::unary(
            s.cpu().f32(op.name())?,
            x.layout(),
            op,
        )))
    }

    fn gelu_erf_with_grad(&self, x: &Tensor) -> Result<(Storage, Storage)> {
        let s = x.storage();
        let (y, d) = ew::map1_pair(slice(&s, x, "gelu_erf")?, activation::GeluErfWithGrad);
        Ok((f32s(y), f32s(d)))
    }

    fn binary(&self, a: &Tensor, b: &Tensor, op: BinaryOp) -> Result<Storage> {
        use activation::{GeluErfBackward, GeluTanhBackward, SiluBackward, Swiglu};
        let n = op.name();
        let mask = |v: Vec<u8>| Storage::Cpu(CpuStorage::U8(v));
        Ok(match op {
            BinaryOp::Add => f32s(binary_map(a, b, n, |x: f32, y: f32| x + y)?),
            BinaryOp::Sub => f32s(binary_map(a, b, n, |x: f32, y: f32| x - y)?),
            BinaryOp::Mul => f32s(binary_map(a, b, n, |x: f32, y: f32| x * y)?),
            BinaryOp::Div => f32s(binary_map(a, b, n, |x: f32, y: f32| x / y)?),
            BinaryOp::Gt => mask(binary_map(a, b, n, |x: f32, y: f32| (x > y) as u8)?),
            BinaryOp::Ge => mask(binary_map(a, b, n, |x: f32, y: f32| (x >= y) as u8)?),
            BinaryOp::Lt => mask(binary_map(a, b, n, |x: f32, y: f32| (x < y) as u8)?),
            BinaryOp::Eq => mask(binary_map(a, b, n, |x: f32, y: f32| (x == y) as u8)?),
            BinaryOp::SiluBackward => f32s(binary_map(a, b, n, SiluBackward)?),
            BinaryOp::GeluTanhBackward => f32s(binary_map(a, b, n, GeluTanhBackward)?),
            BinaryOp::GeluErfBackward => f32s(binary_map(a, b, n, GeluErfBackward)?),
            BinaryOp::Swiglu => f32s(binary_map(a, b, n, Swiglu)?),
        })
    }

    fn select(&self, mask: &Tensor, a: &Tensor, b: &Tensor) -> Result<Storage> {
        let m = values_f32(mask.storage().cpu(), mask.layout());
        let av = values_f32(a.storage().cpu(), a.layout());
        let bv = values_f32(b.storage().cpu(), b.layout());
        Ok(f32s(ew::select(&m, &av, &bv)))
    }

    fn matmul(&self, a: &Tensor, b: &Tensor) -> Result<Storage> {
        // Same storage on both sides (`x @ x^T`): one guard, as in `binary_map`.
        let sa = a.storage();
        let out = if a.shares_storage_with(b) {
            let x = sa.cpu().f32("matmul")?;
            matmul::matmul(x, a.layout(), x, b.layout())
        } else {
            let sb = b.storage();
            matmul::matmul(
                sa.cpu().f32("matmul")?,
                a.layout(),
                sb.cpu().f32("matmul")?,
                b.layout(),
            )
        };
        Ok(f32s(out))
    }

    fn gemm(&self, g: &Gemm<'_, Storage>) -> Result<Storage> {
        let cg = Gemm {
            m: g.m,
            n: g.n,
            k: g.k,
            a: on_cpu(g.a)?,
            b: on_cpu(g.b)?,
            bias: g.bias.map(on_cpu).transpose()?,
        };
        // A few contiguous rows times a transposed row-major weight (token
        // by token generation): one pass over the weight beats packing it.
        let (a, b) = (&cg.a, &cg.b);
        let gemv = cg.m <= super::gemv::MAX_ROWS
            && cg.k > 0
            && a.row_stride == cg.k
            && a.col_stride == 1
            && b.row_stride == 1
            && b.col_stride == cg.k;
        if !gemv {
            return Ok(f32s(matmul::gemm_new(&cg)));
        }
        let x = &a.data[a.offset..][..cg.m * cg.k];
        let w = &b.data[b.offset..][..cg.n * cg.k];
        let mut y = super::gemv::gemv_rows(x, cg.m, cg.k, w, cg.n);
        if let Some(bias) = cg.bias {
            for (i, row) in y.chunks_exact_mut(cg.n).enumerate() {
                let start = bias.offset + i * bias.row_stride;
                for (j, y) in row.iter_mut().enumerate() {
                    *y += bias.data[start + j * bias.col_stride];
                }
            }
        }
        Ok(f32s(y))
    }

    fn sum_axis(&self, x: &Tensor, axis: usize) -> Result<Storage> {
        let s = x.storage();
        let (outer, n, inner) = reduce::split_at_axis(x.shape(), axis);
        Ok(f32s(reduce::sum_axis(
            slice(&s, x, "sum")?,
            outer,
            n,
            inner,
        )))
    }

    fn max_axis(&self, x: &Tensor, axis: usize) -> Result<(Storage, Storage)> {
        let s = x.storage();
        let (outer, n, inner) = reduce::split_at_axis(x.shape(), axis);
        let (v, i) = reduce::max_axis(slice(&s, x, "max")?, outer, n, inner);
        Ok((f32s(v), i64s(i)))
    }

    fn softmax(&self, x: &Tensor) -> Result<Storage> {
        let s = x.storage();
        Ok(f32s(softmax::softmax(
            slice(&s, x, "softmax")?,
            last_dim(x),
        )))
    }

    fn log_softmax(&self, x: &Tensor) -> Result<Storage> {
        let s = x.storage();
        Ok(f32s(softmax::log_softmax(
            slice(&s, x, "log_softmax")?,
            last_dim(x),
        )))
    }

    fn nll_sum(&self, logp: &Tensor, targets: &[i64], ignore: Option<i64>) -> Result<(f64, usize)> {
        let s = logp.storage();
        loss::nll_sum(
            slice(&s, logp, "cross_entropy")?,
            last_dim(logp),
            targets,
            ignore,
        )
    }

    fn cross_entropy_backward(
        &self,
        logp: &Tensor,
        targets: &[i64],
        ignore: Option<i64>,
        scale: f32,
    ) -> Result<Storage> {
        let s = logp.storage();
        let lp = slice(&s, logp, "cross_entropy")?;
        Ok(f32s(loss::backward(
            lp,
            last_dim(logp),
            targets,
            ignore,
            scale,
        )))
    }

    fn layer_norm(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        eps: f32,
    ) -> Result<(Storage, Storage, Storage)> {
        let (wv, bv) = (w.to_vec_f32()?, b.to_vec_f32()?);
        let s = x.storage();
        let xv = slice(&s, x, "layer_norm")?;
        let (y, mean, rstd) = layer_norm::forward(xv, &wv, &bv, last_dim(x), eps);
        Ok((f32s(y), f32s(mean), f32s(rstd)))
    }

    fn layer_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        mean: &Tensor,
        rstd: &Tensor,
    ) -> Result<(Storage, Storage, Storage)> {
        let (wv, mv, rv) = (w.to_vec_f32()?, mean.to_vec_f32()?, rstd.to_vec_f32()?);
        let (sd, sx) = (dy.storage(), x.storage());
        let (dyv, xv) = (slice(&sd, dy, "layer_norm")?, slice(&sx, x, "layer_norm")?);
        let (dx, dw, db) = layer_norm::backward(dyv, xv, &wv, &mv, &rv, last_dim(x));
        Ok((f32s(dx), f32s(dw), f32s(db)))
    }

    fn batch_norm_stats(&self, x: &Tensor, channels: usize) -> Result<(Storage, Storage)> {
        let s = x.storage();
        let xv = slice(&s, x, "batch_norm")?;
        let plane = xv.len() / (x.shape().first().copied().unwrap_or(1) * channels).max(1);
        let (mean, var) = batch_norm::stats(xv, channels, plane);
        Ok((f32s(mean), f32s(var)))
    }

    fn batch_norm_apply(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        mean: &Tensor,
        invstd: &Tensor,
    ) -> Result<Storage> {
        let (wv, bv) = (w.to_vec_f32()?, b.to_vec_f32()?);
        let (mv, rv) = (mean.to_vec_f32()?, invstd.to_vec_f32()?);
        let s = x.storage();
        let xv = slice(&s, x, "batch_norm")?;
        let plane = xv.len() / (x.shape().first().copied().unwrap_or(1) * wv.len()).max(1);
        Ok(f32s(batch_norm::apply(xv, &wv, &bv, &mv, &rv, plane)))
    }

    fn batch_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        mean: &Tensor,
        invstd: &Tensor,
        batch_stats: bool,
    ) -> Result<(Storage, Storage, Storage)> {
        let (wv, mv, rv) = (w.to_vec_f32()?, mean.to_vec_f32()?, invstd.to_vec_f32()?);
        let (sd, sx) = (dy.storage(), x.storage());
        let (dyv, xv) = (slice(&sd, dy, "batch_norm")?, slice(&sx, x, "batch_norm")?);
        let plane = xv.len() / (x.shape().first().copied().unwrap_or(1) * wv.len()).max(1);
        let (dx, dw, db) = batch_norm::backward(dyv, xv, &wv, &mv, &rv, plane, batch_stats);
        Ok((f32s(dx), f32s(dw), f32s(db)))
    }

    fn rms_norm(&self, x: &Tensor, w: &Tensor, eps: f32) -> Result<(Storage, Storage)> {
        let wv = w.to_vec_f32()?;
        let s = x.storage();
        let (y, rstd) = rms_norm::forward(slice(&s, x, "rms_norm")?, &wv, last_dim(x), eps);
        Ok((f32s(y), f32s(rstd)))
    }

    fn rms_norm_backward(
        &self,
        dy: &Tensor,
        x: &Tensor,
        w: &Tensor,
        rstd: &Tensor,
    ) -> Result<(Storage, Storage)> {
        let (wv, rv) = (w.to_vec_f32()?, rstd.to_vec_f32()?);
        let (sd, sx) = (dy.storage(), x.storage());
        let (dyv, xv) = (slice(&sd, dy, "rms_norm")?, slice(&sx, x, "rms_norm")?);
        let (dx, dw) = rms_norm::backward(dyv, xv, &wv, &rv, last_dim(x));
        Ok((f32s(dx), f32s(dw)))
    }

    fn rope(&self, x: &Tensor, cos: &Tensor, sin: &Tensor, sign: f32) -> Result<Storage> {
        let (c, sn) = (cos.to_vec_f32()?, sin.to_vec_f32()?);
        let sh = x.shape();
        let s = x.storage();
        let y = rope::rotate(slice(&s, x, "rope")?, (sh[1], sh[2], sh[3]), &c, &sn, sign);
        Ok(f32s(y))
    }

    fn attention(&self, qkv: &Tensor, g: &AttentionGeometry) -> Result<(Storage, Storage)> {
        let s = qkv.storage();
        let (y, probs) = attention::forward(slice(&s, qkv, "causal_self_attention")?, g);
        Ok((f32s(y), f32s(probs)))
    }

    fn attention_backward(
        &self,
        dy: &Tensor,
        qkv: &Tensor,
        probs: &Tensor,
        g: &AttentionGeometry,
    ) -> Result<Storage> {
        let op = "causal_self_attention";
        let (sd, sx, sp) = (dy.storage(), qkv.storage(), probs.storage());
        let (dyv, xv, pv) = (
            slice(&sd, dy, op)?,
            slice(&sx, qkv, op)?,
            slice(&sp, probs, op)?,
        );
        Ok(f32s(attention::backward(dyv, xv, pv, g)))
    }

    fn attention_cached(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        g: &CachedAttentionGeometry,
    ) -> Result<Storage> {
        let op = "attention_cached";
        let (sq, sk, sv) = (q.storage(), k.storage(), v.storage());
        let (kv, vv) = (kv_view(&sk, k, g.d, op)?, values_view(&sv, v, g.d, op)?);
        Ok(f32s(attention::cached(slice(&sq, q, op)?, &kv, &vv, g)))
    }

    fn conv2d(
        &self,
        x: &Tensor,
        w: &Tensor,
        bias: Option<&Tensor>,
        g: &ConvGeometry,
    ) -> Result<(Storage, Storage)> {
        let bv = bias.map(|b| b.to_vec_f32()).transpose()?;
        let (sx, sw) = (x.storage(), w.storage());
        let (xv, wv) = (slice(&sx, x, "conv2d")?, slice(&sw, w, "conv2d")?);
        let (out, cols) = conv::conv2d_forward(xv, wv, bv.as_deref(), g);
        Ok((f32s(out), f32s(cols)))
    }

    fn conv2d_backward(
        &self,
        dout: &Tensor,
        w: &Tensor,
        saved: &Tensor,
        g: &ConvGeometry,
        need_dx: bool,
    ) -> Result<(Option<Storage>, Storage, Storage)> {
        let (sd, sw, sc) = (dout.storage(), w.storage(), saved.storage());
        let dv = slice(&sd, dout, "conv2d")?;
        let (wv, cols) = (slice(&sw, w, "conv2d")?, slice(&sc, saved, "conv2d")?);
        let grads = conv::conv2d_backward(dv, wv, cols, g, need_dx);
        Ok((grads.dx.map(f32s), f32s(grads.dw), f32s(grads.db)))
    }

    fn max_pool2d(&self, x: &Tensor, g: &PoolGeometry) -> Result<(Storage, Storage)> {
        let s = x.storage();
        let (out, arg) = pool::max_pool_forward(slice(&s, x, "max_pool2d")?, g);
        // The kernel keeps u32 indices (i64 ones cost its loop 3x on LeNet's
        // pools); storage holds indices as i64, so widen once here.
        Ok((f32s(out), i64s(arg.iter().map(|&a| a as i64).collect())))
    }

    fn max_pool2d_backward(
        &self,
        dout: &Tensor,
        argmax: &Tensor,
        g: &PoolGeometry,
    ) -> Result<Storage> {
        let (sd, sa) = (dout.storage(), argmax.storage());
        // Indices are below H*W, so they fit the kernel's u32.
        let arg: Vec<u32> = sa
            .cpu()
            .i64("max_pool2d")?
            .iter()
            .map(|&a| a as u32)
            .collect();
        Ok(f32s(pool::max_pool_backward(
            slice(&sd, dout, "max_pool2d")?,
            &arg,
            g,
        )))
    }

    fn avg_pool2d(&self, x: &Tensor, g: &PoolGeometry) -> Result<Storage> {
        let s = x.storage();
        Ok(f32s(pool::avg_pool_forward(slice(&s, x, "avg_pool2d")?, g)))
    }

    fn avg_pool2d_backward(&self, dout: &Tensor, g: &PoolGeometry) -> Result<Storage> {
        let s = dout.storage();
        Ok(f32s(pool::avg_pool_backward(
            slice(&s, dout, "avg_pool2d")?,
            g,
        )))
    }

    fn index_select(
        &self,
        x: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
    ) -> Result<Storage> {
        let s = x.storage();
        let out = match (s.cpu(), x.layout().contiguous_range()) {
            // Read in place: an embedding table is the largest tensor of a
            // language model, and generation looks up one row of it per token.
            (CpuStorage::F32(v), Some(r)) => index::index_select(&v[r], outer, n, inner, idx)?,
            (other, _) => {
                index::index_select(&values_f32(other, x.layout()), outer, n, inner, idx)?
            }
        };
        Ok(f32s(out))
    }

    fn index_add(
        &self,
        g: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
    ) -> Result<Storage> {
        let gv = values_f32(g.storage().cpu(), g.layout());
        Ok(f32s(index::index_add(&gv, outer, n, inner, idx)?))
    }

    fn gather(
        &self,
        x: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
        m: usize,
    ) -> Result<Storage> {
        let xv = values_f32(x.storage().cpu(), x.layout());
        Ok(f32s(index::gather(&xv, outer, n, inner, idx, m)?))
    }

    fn scatter_add(
        &self,
        src: &Tensor,
        outer: usize,
        n: usize,
        inner: usize,
        idx: &[i64],
        m: usize,
    ) -> Result<Storage> {
        let sv = values_f32(src.storage().cpu(), src.layout());
        Ok(f32s(index::scatter_add(&sv, outer, n, inner, idx, m)?))
    }

    fn adam_update(
        &self,
        p: &Tensor,
        g: &Tensor,
        m: &Tensor,
        v: &Tensor,
        h: &AdamStep,
    ) -> Result<()> {
        // The gradient is read out before any write lock is taken: it may
        // be a view of anything.
        let gv = g.to_vec_f32()?;
        let (mut ps, mut ms, mut vs) = (p.storage_mut(), m.storage_mut(), v.storage_mut());
        simd::dispatch(optim::AdamUpdate {
            h: *h,
            w: owned_slice(&mut ps, p, "adam_update")?,
            g: &gv,
            m: owned_slice(&mut ms, m, "adam_update")?,
            v: owned_slice(&mut vs, v, "adam_update")?,
        });
        Ok(())
    }

    fn sgd_update(&self, p: &Tensor, g: &Tensor, buf: Option<&Tensor>, h: &SgdStep) -> Result<()> {
        let gv = g.to_vec_f32()?;
        let mut ps = p.storage_mut();
        let w = owned_slice(&mut ps, p, "sgd_update")?;
        match buf {
            Some(b) => {
                let mut bs = b.storage_mut();
                optim::sgd_update(h, w, &gv, owned_slice(&mut bs, b, "sgd_update")?);
            }
            None => optim::sgd_update(h, w, &gv, &mut []),
        }
        Ok(())
    }

    fn quantized_matmul(
        &self,
        x: &Tensor,
        w: &crate::quant::QMatrix,
        rows: usize,
    ) -> Result<Storage> {
        let s = x.storage();
        Ok(f32s(w.matmul(slice(&s, x, "linear_quantized")?, rows)?))
    }

    fn sum_squares(&self, x: &Tensor) -> Result<f64> {
        let s = x.storage();
        match x.layout().contiguous_range() {
            Some(r) => Ok(simd::dispatch(optim::SumSquares(
                &s.cpu().f32("sum_squares")?[r],
            ))),
            None => Ok(simd::dispatch(optim::SumSquares(&values_f32(
                s.cpu(),
                x.layout(),
            )))),
        }
    }

    fn assign(&self, dst: &Tensor, src: &Tensor) -> Result<()> {
        if dst.shares_storage_with(src) {
            return Err(Error::msg(
                "assign_: the source is a view of the destination",
            ));
        }
        let ss = src.storage();
        let from = match src.layout().contiguous_range() {
            Some(r) => std::borrow::Cow::Borrowed(&ss.cpu().f32("assign_")?[r]),
            None => std::borrow::Cow::Owned(copy::gather_strided(
                ss.cpu().f32("assign_")?,
                src.layout(),
            )),
        };
        let mut sd = dst.storage_mut();
        let to = sd.cpu_mut().f32_mut("assign_")?;
        let mut at = 0;
        crate::layout::for_each_row(dst.layout(), |start, stride, len| {
            let run = &from[at..at + len];
            if stride == 1 {
                to[start..start + len].copy_from_slice(run);
            } else {
                for (i, &x) in run.iter().enumerate() {
                    to[start + i * stride] = x;
                }
            }
            at += len;
        });
        Ok(())
    }

    fn scale_in_place(&self, x: &Tensor, k: f32) -> Result<()> {
        let mut s = x.storage_mut();
        owned_slice(&mut s, x, "scale_")?
            .iter_mut()
            .for_each(|v| *v *= k);
        Ok(())
    }
}
