//! Shape, strides and offset: how a flat buffer is seen as an n-d tensor.
//! Views (reshape, permute, narrow, expand) only change a Layout, never data.

use crate::{Error, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    shape: Vec<usize>,
    strides: Vec<usize>,
    offset: usize,
}

pub fn contiguous_strides(shape: &[usize]) -> Vec<usize> {
    let mut strides = vec![0; shape.len()];
    let mut acc = 1;
    for i in (0..shape.len()).rev() {
        strides[i] = acc;
        acc *= shape[i];
    }
    strides
}

/// Turns a possibly negative axis (`-1` = last) into an index, or names the bad one.
pub fn resolve_dim(op: &'static str, dim: isize, rank: usize) -> Result<usize> {
    let d = if dim < 0 { dim + rank as isize } else { dim };
    if d < 0 || d as usize >= rank {
        return Err(Error::Dim { op, dim, rank });
    }
    Ok(d as usize)
}

/// NumPy broadcasting: align from the right, sizes must match or be 1.
pub fn broadcast_shapes(op: &'static str, a: &[usize], b: &[usize]) -> Result<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => {
                return Err(Error::shape(
                    op,
                    format!("cannot broadcast {a:?} with {b:?}"),
                ))
            }
        };
    }
    Ok(out)
}

impl Layout {
    pub fn contiguous(shape: &[usize]) -> Self {
        Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: 0,
        }
    }

    pub fn new(shape: Vec<usize>, strides: Vec<usize>, offset: usize) -> Self {
        Layout {
            shape,
            strides,
            offset,
        }
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }
    pub fn strides(&self) -> &[usize] {
        &self.strides
    }
    pub fn offset(&self) -> usize {
        self.offset
    }
    pub fn rank(&self) -> usize {
        self.shape.len()
    }
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    /// Row-major contiguous (size-1 dims may have any stride).
    pub fn is_contiguous(&self) -> bool {
        let mut acc = 1;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != acc {
                return false;
            }
            acc *= self.shape[i];
        }
        true
    }

    /// The contiguous element range, when the layout is contiguous.
    pub fn contiguous_range(&self) -> Option<std::ops::Range<usize>> {
        self.is_contiguous()
            .then(|| self.offset..self.offset + self.numel())
    }

    pub fn permute(&self, dims: &[usize]) -> Result<Layout> {
        let rank = self.rank();
        let mut seen = vec![false; rank];
        if dims.len() != rank
            || dims
                .iter()
                .any(|&d| d >= rank || std::mem::replace(&mut seen[d], true))
        {
            return Err(Error::shape(
                "permute",
                format!("{dims:?} is not a permutation of 0..{rank}"),
            ));
        }
        Ok(Layout {
            shape: dims.iter().map(|&d| self.shape[d]).collect(),
            strides: dims.iter().map(|&d| self.strides[d]).collect(),
            offset: self.offset,
        })
    }

    pub fn narrow(&self, dim: usize, start: usize, len: usize) -> Result<Layout> {
        if start + len > self.shape[dim] {
            return Err(Error::shape(
                "narrow",
                format!(
                    "range {start}..{} is outside dim {dim} of size {}",
                    start + len,
                    self.shape[dim]
                ),
            ));
        }
        let mut shape = self.shape.clone();
        shape[dim] = len;
        Ok(Layout {
            shape,
            strides: self.strides.clone(),
            offset: self.offset + start * self.strides[dim],
        })
    }

    /// Stride-0 view that repeats size-1 (or missing leading) dims.
    pub fn broadcast_as(&self, shape: &[usize]) -> Result<Layout> {
        if shape.len() < self.rank() {
            return Err(Error::shape(
                "expand",
                format!("cannot expand {:?} to fewer dims {shape:?}", self.shape),
            ));
        }
        let lead = shape.len() - self.rank();
        let mut strides = vec![0; shape.len()];
        for i in 0..shape.len() {
            if i < lead {
                continue;
            }
            let (src, st) = (self.shape[i - lead], self.strides[i - lead]);
            if src == shape[i] {
                strides[i] = st;
            } else if src != 1 {
                return Err(Error::shape(
                    "expand",
                    format!("cannot expand {:?} to {shape:?}", self.shape),
                ));
            }
        }
        Ok(Layout {
            shape: shape.to_vec(),
            strides,
            offset: self.offset,
        })
    }

    /// Reshape without a copy; `None` when the strides do not allow it.
    pub fn reshape(&self, shape: &[usize]) -> Option<Layout> {
        if !self.is_contiguous() {
            return None;
        }
        Some(Layout {
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: self.offset,
        })
    }

    /// Merges adjacent dims that are laid out one after the other, so strided
    /// loops run over as few, as long, inner rows as possible.
    pub fn coalesced(&self) -> (Vec<usize>, Vec<usize>) {
        let mut shape: Vec<usize> = Vec::with_capacity(self.rank());
        let mut strides: Vec<usize> = Vec::with_capacity(self.rank());
        for (&n, &s) in self.shape.iter().zip(&self.strides) {
            if n == 1 {
                continue;
            }
            if let (Some(ln), Some(ls)) = (shape.last_mut(), strides.last_mut()) {
                if *ls == s * n {
                    *ln *= n;
                    *ls = s;
                    continue;
                }
            }
            shape.push(n);
            strides.push(s);
        }
        if shape.is_empty() {
            shape.push(1);
            strides.push(1);
        }
        (shape, strides)
    }
}

/// Walks the element offsets of a layout in row-major order, a row at a time:
/// `for_each_row(|start, stride, len|)` over the coalesced innermost dim.
pub fn for_each_row(layout: &Layout, mut f: impl FnMut(usize, usize, usize)) {
    if layout.numel() == 0 {
        return;
    }
    let (shape, strides) = layout.coalesced();
    let rank = shape.len();
    let inner = shape[rank - 1];
    let inner_stride = strides[rank - 1];
    let outer: usize = shape[..rank - 1].iter().product();
    let mut idx = vec![0usize; rank - 1];
    let mut off = layout.offset();
    for _ in 0..outer.max(1) {
        f(off, inner_stride, inner);
        // advance the multi-index over the outer dims
        for d in (0..rank - 1).rev() {
            idx[d] += 1;
            off += strides[d];
            if idx[d] < shape[d] {
                break;
            }
            off -= strides[d] * shape[d];
            idx[d] = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcasting_follows_numpy_rules() {
        assert_eq!(
            broadcast_shapes("t", &[3, 1, 4], &[5, 1]).unwrap(),
            vec![3, 5, 4]
        );
        assert!(broadcast_shapes("t", &[3, 2], &[3]).is_err());
    }

    #[test]
    fn transposed_layout_is_not_contiguous_and_rows_walk_it_in_order() {
        let l = Layout::contiguous(&[2, 3]).permute(&[1, 0]).unwrap();
        assert!(!l.is_contiguous());
        let mut offs = vec![];
        for_each_row(&l, |start, stride, len| {
            for i in 0..len {
                offs.push(start + i * stride)
            }
        });
        assert_eq!(offs, vec![0, 3, 1, 4, 2, 5]);
    }

    #[test]
    fn coalescing_merges_contiguous_dims() {
        let l = Layout::contiguous(&[2, 3, 4]);
        assert_eq!(l.coalesced(), (vec![24], vec![1]));
        let n = l.narrow(2, 1, 2).unwrap();
        assert_eq!(n.coalesced(), (vec![6, 2], vec![4, 1]));
    }
}

/// Splits `shape` around `axis` into (outer, n, inner).
pub fn split_at_axis(shape: &[usize], axis: usize) -> (usize, usize, usize) {
    let outer = shape[..axis].iter().product();
    let inner = shape[axis + 1..].iter().product();
    (outer, shape[axis], inner)
}
