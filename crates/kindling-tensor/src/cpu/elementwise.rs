//! Elementwise kernels. Each is generic over the scalar function, so the
//! dispatch `match` happens once per call and the inner loop is a plain map
//! the compiler vectorizes. Broadcast operands are walked by stride (stride
//! 0 for repeated dims): no broadcast copy is ever materialized.

use super::{simd, PARALLEL_MIN_ELEMS};
use crate::layout::Layout;
use rayon::prelude::*;
use std::marker::PhantomData;
use std::mem::MaybeUninit;

pub fn unary<F: simd::Map<f32, f32>>(data: &[f32], layout: &Layout, f: F) -> Vec<f32> {
    match layout.contiguous_range() {
        Some(r) => map1(&data[r], f),
        None => map1(&super::copy::gather_strided(data, layout), f),
    }
}

/// Elements per task when a map is split over threads.
const CHUNK: usize = 1 << 14;

/// `f` over a contiguous slice into a new vector: split over threads when
/// large, each piece compiled for the CPU's widest vectors.
pub fn map1<F: simd::Map<f32, f32>>(src: &[f32], f: F) -> Vec<f32> {
    let n = src.len();
    let mut out = Vec::with_capacity(n);
    let dst = &mut out.spare_capacity_mut()[..n];
    let piece = |(d, s): (&mut [MaybeUninit<f32>], &[f32])| simd::dispatch(Map1(d, s, &f));
    if n >= PARALLEL_MIN_ELEMS {
        dst.par_chunks_mut(CHUNK)
            .zip(src.par_chunks(CHUNK))
            .for_each(piece);
    } else {
        piece((dst, src));
    }
    // SAFETY: every piece wrote each element of its chunk, and the chunks
    // cover `dst` (same length as `src`); a panic above never gets here.
    unsafe { out.set_len(n) };
    out
}

struct Map1<'a, F>(&'a mut [MaybeUninit<f32>], &'a [f32], &'a F);

impl<F: simd::Map<f32, f32>> simd::Kernel for Map1<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Map1(d, s, f) = self;
        assert_eq!(d.len(), s.len());
        for (o, &x) in d.iter_mut().zip(s) {
            o.write(f.apply(x));
        }
    }
}

/// `f` returning two values per element, into two new vectors (an
/// activation and its derivative, say), single-threaded.
pub fn map1_pair<F: simd::Map<f32, (f32, f32)>>(src: &[f32], f: F) -> (Vec<f32>, Vec<f32>) {
    let n = src.len();
    let (mut a, mut b) = (Vec::with_capacity(n), Vec::with_capacity(n));
    simd::dispatch(MapPair(
        &mut a.spare_capacity_mut()[..n],
        &mut b.spare_capacity_mut()[..n],
        src,
        &f,
    ));
    // SAFETY: MapPair wrote every element of both (lengths asserted equal).
    unsafe {
        a.set_len(n);
        b.set_len(n);
    }
    (a, b)
}

struct MapPair<'a, F>(
    &'a mut [MaybeUninit<f32>],
    &'a mut [MaybeUninit<f32>],
    &'a [f32],
    &'a F,
);

impl<F: simd::Map<f32, (f32, f32)>> simd::Kernel for MapPair<'_, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let MapPair(a, b, s, f) = self;
        assert!(a.len() == s.len() && b.len() == s.len());
        for ((p, q), &x) in a.iter_mut().zip(b.iter_mut()).zip(s) {
            let (u, v) = f.apply(x);
            p.write(u);
            q.write(v);
        }
    }
}

/// `f(a[i], b[i])` over two contiguous slices of one length, like `map1`.
pub fn map2<T: Copy + Send + Sync, F: simd::Map<(f32, f32), T>>(
    a: &[f32],
    b: &[f32],
    f: F,
) -> Vec<T> {
    assert_eq!(a.len(), b.len());
    let n = a.len();
    let mut out = Vec::with_capacity(n);
    let dst = &mut out.spare_capacity_mut()[..n];
    let piece = |(d, (x, y)): Piece2<T>| simd::dispatch(Map2(d, x, y, &f));
    if n >= PARALLEL_MIN_ELEMS {
        dst.par_chunks_mut(CHUNK)
            .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
            .for_each(piece);
    } else {
        piece((dst, (a, b)));
    }
    // SAFETY: as in `map1`, every element was written.
    unsafe { out.set_len(n) };
    out
}

/// A destination chunk and its two source chunks.
type Piece2<'a, T> = (&'a mut [MaybeUninit<T>], (&'a [f32], &'a [f32]));

struct Map2<'a, T, F>(&'a mut [MaybeUninit<T>], &'a [f32], &'a [f32], &'a F);

impl<T, F: simd::Map<(f32, f32), T>> simd::Kernel for Map2<'_, T, F> {
    type Output = ();
    #[inline(always)]
    fn run(self) {
        let Map2(d, a, b, f) = self;
        assert!(d.len() == a.len() && d.len() == b.len());
        for ((o, &x), &y) in d.iter_mut().zip(a).zip(b) {
            o.write(f.apply((x, y)));
        }
    }
}

/// `f(a, b)` over two layouts already broadcast to the same shape.
pub fn binary<T: Copy + Send + Sync + Default, F: simd::Map<(f32, f32), T>>(
    a: &[f32],
    la: &Layout,
    b: &[f32],
    lb: &Layout,
    f: F,
) -> Vec<T> {
    debug_assert_eq!(la.shape(), lb.shape());
    if let (Some(ra), Some(rb)) = (la.contiguous_range(), lb.contiguous_range()) {
        return map2(&a[ra], &b[rb], f);
    }
    let n = la.numel();
    simd::dispatch(BroadcastMap {
        a,
        la,
        b,
        lb,
        n,
        f: &f,
        out: PhantomData,
    })
}

struct BroadcastMap<'a, T, F> {
    a: &'a [f32],
    la: &'a Layout,
    b: &'a [f32],
    lb: &'a Layout,
    n: usize,
    f: &'a F,
    out: PhantomData<T>,
}

impl<T: Copy + Default, F: simd::Map<(f32, f32), T>> simd::Kernel for BroadcastMap<'_, T, F> {
    type Output = Vec<T>;
    #[inline(always)]
    fn run(self) -> Vec<T> {
        let BroadcastMap {
            a, la, b, lb, n, f, ..
        } = self;
        let mut out = vec![T::default(); n];
        let (shape, sa, sb) = joint_coalesce(la, lb);
        let rank = shape.len();
        let inner = shape[rank - 1];
        let (ia, ib) = (sa[rank - 1], sb[rank - 1]);
        let rows = out.chunks_mut(inner.max(1));
        let mut idx = vec![0usize; rank - 1];
        let (mut oa, mut ob) = (la.offset(), lb.offset());
        for row in rows {
            // Specialised inner loops: unit/zero strides vectorize.
            match (ia, ib) {
                (1, 1) => row_map(row, &a[oa..oa + inner], &b[ob..ob + inner], f),
                (1, 0) => {
                    let y = b[ob];
                    for (o, &x) in row.iter_mut().zip(&a[oa..oa + inner]) {
                        *o = f.apply((x, y));
                    }
                }
                (0, 1) => {
                    let x = a[oa];
                    for (o, &y) in row.iter_mut().zip(&b[ob..ob + inner]) {
                        *o = f.apply((x, y));
                    }
                }
                _ => {
                    for (i, o) in row.iter_mut().enumerate() {
                        *o = f.apply((a[oa + i * ia], b[ob + i * ib]));
                    }
                }
            }
            for d in (0..rank - 1).rev() {
                idx[d] += 1;
                oa += sa[d];
                ob += sb[d];
                if idx[d] < shape[d] {
                    break;
                }
                oa -= sa[d] * shape[d];
                ob -= sb[d] * shape[d];
                idx[d] = 0;
            }
        }
        out
    }
}

#[inline(always)]
fn row_map<T, F: simd::Map<(f32, f32), T>>(out: &mut [T], a: &[f32], b: &[f32], f: &F) {
    for ((o, &x), &y) in out.iter_mut().zip(a).zip(b) {
        *o = f.apply((x, y));
    }
}

/// Merges adjacent dims that are mergeable in both layouts.
fn joint_coalesce(la: &Layout, lb: &Layout) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (mut shape, mut sa, mut sb) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..la.rank() {
        let (n, x, y) = (la.shape()[i], la.strides()[i], lb.strides()[i]);
        if n == 1 {
            continue;
        }
        if let (Some(ln), Some(lx), Some(ly)) = (shape.last_mut(), sa.last_mut(), sb.last_mut()) {
            if *lx == x * n && *ly == y * n {
                *ln *= n;
                *lx = x;
                *ly = y;
                continue;
            }
        }
        shape.push(n);
        sa.push(x);
        sb.push(y);
    }
    if shape.is_empty() {
        shape.push(1);
        sa.push(1);
        sb.push(1);
    }
    (shape, sa, sb)
}

/// `where(cond, a, b)` with all three broadcast to one shape. The mask is
/// read as f32 (non-zero = true), converted by the caller.
pub fn select(cond: &[f32], a: &[f32], b: &[f32]) -> Vec<f32> {
    cond.iter()
        .zip(a.iter().zip(b))
        .map(|(&c, (&x, &y))| if c != 0.0 { x } else { y })
        .collect()
}
