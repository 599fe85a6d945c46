//! GGUF, llama.cpp's model file (spec: ggml/docs/gguf.md): a magic and a
//! version, typed key/value metadata (architecture, sizes, tokenizer, chat
//! template), tensor infos (name, dims, block type, offset), then the tensor
//! data, each tensor aligned to `general.alignment` bytes.
//!
//! The reader validates every count, length and offset against the file's
//! size before trusting it, so a truncated or corrupt file gives an error
//! that names the file (and the tensor) instead of a huge allocation.
//! Quantized tensors (Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K) are dequantized by the
//! block formats in `quant/`, which follow ggml's reference implementations
//! (`dequantize_row_q4_0` etc. in ggml-quants.c).

use crate::{quant, Error, Result, Tensor};
use half::{bf16, f16};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"GGUF";
const DEFAULT_ALIGNMENT: u64 = 32;

/// A metadata value, as typed in the file.
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    U64(u64),
    I64(i64),
    F32(f32),
    F64(f64),
    Bool(bool),
    Str(String),
    Array(Vec<GgufValue>),
}

impl GgufValue {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            GgufValue::Str(s) => Some(s),
            _ => None,
        }
    }
    /// Any non-negative integer.
    pub fn as_u64(&self) -> Option<u64> {
        self.as_i64()
            .and_then(|v| u64::try_from(v).ok())
            .or(match self {
                GgufValue::U64(v) => Some(*v),
                _ => None,
            })
    }
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            GgufValue::U8(v) => v as i64,
            GgufValue::I8(v) => v as i64,
            GgufValue::U16(v) => v as i64,
            GgufValue::I16(v) => v as i64,
            GgufValue::U32(v) => v as i64,
            GgufValue::I32(v) => v as i64,
            GgufValue::U64(v) => i64::try_from(v).ok()?,
            GgufValue::I64(v) => v,
            _ => return None,
        })
    }
    /// Any number.
    pub fn as_f64(&self) -> Option<f64> {
        match *self {
            GgufValue::F32(v) => Some(v as f64),
            GgufValue::F64(v) => Some(v),
            _ => self.as_i64().map(|v| v as f64),
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            GgufValue::Bool(b) => Some(b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&[GgufValue]> {
        match self {
            GgufValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

/// ggml's tensor element types that Kindling reads (ids from `ggml_type`),
/// named as ggml names them.
#[allow(non_camel_case_types)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GgmlType {
    F32,
    F16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q8_0,
    Q4_K,
    Q6_K,
    BF16,
}

impl GgmlType {
    fn from_id(id: u32) -> Option<GgmlType> {
        Some(match id {
            0 => GgmlType::F32,
            1 => GgmlType::F16,
            2 => GgmlType::Q4_0,
            3 => GgmlType::Q4_1,
            6 => GgmlType::Q5_0,
            8 => GgmlType::Q8_0,
            12 => GgmlType::Q4_K,
            14 => GgmlType::Q6_K,
            30 => GgmlType::BF16,
            _ => return None,
        })
    }

    /// The type's id in the file.
    pub fn id(self) -> u32 {
        match self {
            GgmlType::F32 => 0,
            GgmlType::F16 => 1,
            GgmlType::Q4_0 => 2,
            GgmlType::Q4_1 => 3,
            GgmlType::Q5_0 => 6,
            GgmlType::Q8_0 => 8,
            GgmlType::Q4_K => 12,
            GgmlType::Q6_K => 14,
            GgmlType::BF16 => 30,
        }
    }

    /// (weights per block, bytes per block): the block layouts live with
    /// their formats in `quant/`.
    pub fn block(self) -> (usize, usize) {
        match self {
            GgmlType::F32 => (1, 4),
            GgmlType::F16 | GgmlType::BF16 => (1, 2),
            GgmlType::Q4_0 => (quant::q8_0::QK, quant::q4_0::BLOCK_BYTES),
            GgmlType::Q4_1 => (quant::q8_0::QK, quant::q4_1::BLOCK_BYTES),
            GgmlType::Q5_0 => (quant::q8_0::QK, quant::q5_0::BLOCK_BYTES),
            GgmlType::Q8_0 => (quant::q8_0::QK, quant::q8_0::BLOCK_BYTES),
            GgmlType::Q4_K => (quant::q8_k::QK_K, quant::q4_k::BLOCK_BYTES),
            GgmlType::Q6_K => (quant::q8_k::QK_K, quant::q6_k::BLOCK_BYTES),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            GgmlType::F32 => "F32",
            GgmlType::F16 => "F16",
            GgmlType::Q4_0 => "Q4_0",
            GgmlType::Q4_1 => "Q4_1",
            GgmlType::Q5_0 => "Q5_0",
            GgmlType::Q8_0 => "Q8_0",
            GgmlType::Q4_K => "Q4_K",
            GgmlType::Q6_K => "Q6_K",
            GgmlType::BF16 => "BF16",
        }
    }
}

/// Names of the ggml types this reader does not dequantize, for errors.
fn ggml_type_name(id: u32) -> String {
    let known = [
        (7, "Q5_1"),
        (9, "Q8_1"),
        (10, "Q2_K"),
        (11, "Q3_K"),
        (13, "Q5_K"),
        (15, "Q8_K"),
    ];
    match known.iter().find(|(i, _)| *i == id) {
        Some((_, n)) => n.to_string(),
        None => format!("type id {id}"),
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct GgufTensorInfo {
    pub name: String,
    /// ggml order: `dims[0]` is the fastest-varying (a row's length).
    pub dims: Vec<u64>,
    /// The raw type id; see [`GgufTensorInfo::ggml_type`].
    pub type_id: u32,
    /// Offset from the start of the data section.
    pub offset: u64,
}

impl GgufTensorInfo {
    /// The shape in Kindling's (row-major) order: ggml's dims reversed.
    pub fn shape(&self) -> Vec<usize> {
        self.dims.iter().rev().map(|&d| d as usize).collect()
    }
    pub fn numel(&self) -> u64 {
        self.dims.iter().product()
    }
    pub fn ggml_type(&self) -> Option<GgmlType> {
        GgmlType::from_id(self.type_id)
    }
    pub fn type_name(&self) -> String {
        match self.ggml_type() {
            Some(t) => t.name().to_string(),
            None => ggml_type_name(self.type_id),
        }
    }
}

/// An opened GGUF file: its metadata and tensor infos; tensor data is read
/// from the file on demand.
#[derive(Debug)]
pub struct GgufFile {
    pub path: PathBuf,
    pub version: u32,
    pub metadata: BTreeMap<String, GgufValue>,
    pub tensors: Vec<GgufTensorInfo>,
    data_offset: u64,
    file_size: u64,
}

fn fmt_err(path: &Path, msg: impl std::fmt::Display) -> Error {
    Error::Msg(format!("{}: {msg}", path.display()))
}

/// Reads little-endian values, turning an early end of file into an error
/// that says the file is truncated.
struct Cursor<'p, R> {
    r: R,
    path: &'p Path,
    file_size: u64,
    pos: u64,
}

impl<R: Read> Cursor<'_, R> {
    fn bytes(&mut self, n: u64, what: &str) -> Result<Vec<u8>> {
        if self.pos.saturating_add(n) > self.file_size {
            return Err(fmt_err(
                self.path,
                format!(
                    "truncated GGUF file: {what} needs {n} bytes at offset {}, the file has {}",
                    self.pos, self.file_size
                ),
            ));
        }
        let mut buf = vec![0u8; n as usize];
        self.r
            .read_exact(&mut buf)
            .map_err(|e| fmt_err(self.path, format!("reading {what}: {e}")))?;
        self.pos += n;
        Ok(buf)
    }
    fn arr<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.bytes(N as u64, what)?.try_into().expect("N bytes"))
    }
    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.arr(what)?))
    }
    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.arr(what)?))
    }
    fn string(&mut self, what: &str) -> Result<String> {
        let n = self.u64(what)?;
        let b = self.bytes(n, what)?;
        String::from_utf8(b).map_err(|_| fmt_err(self.path, format!("{what} is not UTF-8")))
    }

    fn value(&mut self, type_id: u32, key: &str, depth: usize) -> Result<GgufValue> {
        Ok(match type_id {
            0 => GgufValue::U8(self.arr::<1>(key)?[0]),
            1 => GgufValue::I8(self.arr::<1>(key)?[0] as i8),
            2 => GgufValue::U16(u16::from_le_bytes(self.arr(key)?)),
            3 => GgufValue::I16(i16::from_le_bytes(self.arr(key)?)),
            4 => GgufValue::U32(self.u32(key)?),
            5 => GgufValue::I32(i32::from_le_bytes(self.arr(key)?)),
            6 => GgufValue::F32(f32::from_le_bytes(self.arr(key)?)),
            7 => GgufValue::Bool(self.arr::<1>(key)?[0] != 0),
            8 => GgufValue::Str(self.string(key)?),
            9 if depth == 0 => {
                let elem = self.u32(key)?;
                let n = self.u64(key)?;
                // Every element takes at least one byte: a count larger
                // than what is left of the file is corrupt, not a reason to
                // reserve memory for it.
                if n > self.file_size - self.pos {
                    return Err(fmt_err(
                        self.path,
                        format!("metadata `{key}`: array of {n} elements is longer than the file"),
                    ));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(self.value(elem, key, depth + 1)?);
                }
                GgufValue::Array(v)
            }
            10 => GgufValue::U64(self.u64(key)?),
            11 => GgufValue::I64(i64::from_le_bytes(self.arr(key)?)),
            12 => GgufValue::F64(f64::from_le_bytes(self.arr(key)?)),
            other => {
                return Err(fmt_err(
                    self.path,
                    format!("metadata `{key}` has unknown value type {other}"),
                ))
            }
        })
    }
}

impl GgufFile {
    /// Reads the header, metadata and tensor infos (not the tensor data) and
    /// checks that every tensor lies inside the file.
    pub fn open(path: &Path) -> Result<GgufFile> {
        let io = |e| Error::Io {
            path: path.display().to_string(),
            source: e,
        };
        let file = File::open(path).map_err(io)?;
        let file_size = file.metadata().map_err(io)?.len();
        let mut c = Cursor {
            r: BufReader::new(file),
            path,
            file_size,
            pos: 0,
        };
        if c.arr::<4>("the magic").ok().as_ref() != Some(MAGIC) {
            return Err(fmt_err(
                path,
                "not a GGUF file (it does not start with \"GGUF\")",
            ));
        }
        let version = c.u32("the version")?;
        if !(2..=3).contains(&version) {
            return Err(fmt_err(
                path,
                format!("GGUF version {version} is not supported (2 and 3 are)"),
            ));
        }
        let n_tensors = c.u64("the tensor count")?;
        let n_kv = c.u64("the metadata count")?;
        // Each entry takes well over 8 bytes; bound the counts by the file.
        if n_tensors > file_size / 8 || n_kv > file_size / 8 {
            return Err(fmt_err(
                path,
                format!("corrupt header: {n_tensors} tensors and {n_kv} metadata entries cannot fit in {file_size} bytes"),
            ));
        }
        let mut metadata = BTreeMap::new();
        for _ in 0..n_kv {
            let key = c.string("a metadata key")?;
            let t = c.u32(&key)?;
            let v = c.value(t, &key, 0)?;
            metadata.insert(key, v);
        }
        let mut tensors = Vec::with_capacity(n_tensors as usize);
        for _ in 0..n_tensors {
            let name = c.string("a tensor name")?;
            let n_dims = c.u32(&name)?;
            if n_dims > 4 {
                return Err(fmt_err(
                    path,
                    format!("tensor `{name}` has {n_dims} dimensions (at most 4)"),
                ));
            }
            let dims = (0..n_dims)
                .map(|_| c.u64(&name))
                .collect::<Result<Vec<_>>>()?;
            let type_id = c.u32(&name)?;
            let offset = c.u64(&name)?;
            tensors.push(GgufTensorInfo {
                name,
                dims,
                type_id,
                offset,
            });
        }
        let alignment = match metadata.get("general.alignment") {
            Some(v) => v
                .as_u64()
                .filter(|a| *a > 0 && a.is_power_of_two())
                .ok_or_else(|| {
                    fmt_err(
                        path,
                        format!("general.alignment {v:?} is not a power of two"),
                    )
                })?,
            None => DEFAULT_ALIGNMENT,
        };
        let data_offset = c.pos.div_ceil(alignment) * alignment;
        let g = GgufFile {
            path: path.to_path_buf(),
            version,
            metadata,
            tensors,
            data_offset,
            file_size,
        };
        for t in &g.tensors {
            if t.offset % alignment != 0 {
                return Err(g.err(format!(
                    "tensor `{}` is not aligned to {alignment} bytes",
                    t.name
                )));
            }
            // Unknown types are reported when the tensor is read, so a file
            // with one exotic tensor can still be inspected.
            if let Some(ty) = t.ggml_type() {
                let end = g
                    .data_offset
                    .saturating_add(t.offset)
                    .saturating_add(g.byte_len(t, ty)?);
                if end > file_size {
                    return Err(g.err(format!(
                        "truncated GGUF file: tensor `{}` ends at byte {end}, the file has {file_size}",
                        t.name
                    )));
                }
            }
        }
        Ok(g)
    }

    fn err(&self, msg: impl std::fmt::Display) -> Error {
        fmt_err(&self.path, msg)
    }

    fn byte_len(&self, t: &GgufTensorInfo, ty: GgmlType) -> Result<u64> {
        let (per_block, bytes) = ty.block();
        let row = t.dims.first().copied().unwrap_or(1);
        if row % per_block as u64 != 0 {
            return Err(self.err(format!(
                "tensor `{}`: row of {row} is not a whole number of {}-weight {} blocks",
                t.name,
                per_block,
                ty.name()
            )));
        }
        t.dims
            .iter()
            .try_fold(1u64, |a, &d| a.checked_mul(d))
            .and_then(|n| (n / per_block as u64).checked_mul(bytes as u64))
            .ok_or_else(|| self.err(format!("tensor `{}`: dims {:?} overflow", t.name, t.dims)))
    }

    pub fn get(&self, key: &str) -> Option<&GgufValue> {
        self.metadata.get(key)
    }

    /// A required metadata value, or an error naming the key.
    pub fn require(&self, key: &str) -> Result<&GgufValue> {
        self.get(key)
            .ok_or_else(|| self.err(format!("metadata key `{key}` is missing")))
    }

    pub fn info(&self, name: &str) -> Option<&GgufTensorInfo> {
        self.tensors.iter().find(|t| t.name == name)
    }

    /// The raw bytes of a tensor and its type.
    pub fn tensor_bytes(&self, name: &str) -> Result<(&GgufTensorInfo, GgmlType, Vec<u8>)> {
        let t = self
            .info(name)
            .ok_or_else(|| self.err(format!("tensor `{name}` is missing")))?;
        let ty = t.ggml_type().ok_or_else(|| {
            self.err(format!(
                "tensor `{name}` has quantization type {}, which Kindling cannot read yet (F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q4_K, Q6_K are supported)",
                t.type_name()
            ))
        })?;
        let n = self.byte_len(t, ty)?;
        let mut f = File::open(&self.path).map_err(|e| Error::Io {
            path: self.path.display().to_string(),
            source: e,
        })?;
        let start = self.data_offset + t.offset;
        debug_assert!(start + n <= self.file_size, "checked in open");
        f.seek(SeekFrom::Start(start))
            .map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
        let mut buf = vec![0u8; n as usize];
        f.read_exact(&mut buf)
            .map_err(|e| self.err(format!("tensor `{name}`: {e}")))?;
        Ok((t, ty, buf))
    }

    /// A tensor dequantized to f32, in row-major shape (ggml's dims reversed).
    pub fn tensor(&self, name: &str) -> Result<Tensor> {
        let (t, ty, bytes) = self.tensor_bytes(name)?;
        let data = dequantize(ty, &bytes);
        debug_assert_eq!(data.len() as u64, t.numel());
        Tensor::from_vec(data, &t.shape())
    }
}

/// Weights of `ty` blocks as f32 (`bytes` holds whole blocks).
pub fn dequantize(ty: GgmlType, bytes: &[u8]) -> Vec<f32> {
    match ty {
        GgmlType::F32 => bytes
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        GgmlType::F16 => bytes
            .chunks_exact(2)
            .map(|b| f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        GgmlType::BF16 => bytes
            .chunks_exact(2)
            .map(|b| bf16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32())
            .collect(),
        _ => quant::dequantize(ty, bytes),
    }
}

/// Writes a GGUF v3 file: `metadata` in order, then each tensor's raw block
/// bytes (already in `ty`'s format), aligned to 32 bytes. Atomic: written to
/// a temporary name and renamed into place.
pub fn write(
    path: &Path,
    metadata: &[(&str, GgufValue)],
    tensors: &[(&str, GgmlType, Vec<usize>, &[u8])],
) -> Result<()> {
    fn put_str(out: &mut Vec<u8>, s: &str) {
        out.extend((s.len() as u64).to_le_bytes());
        out.extend(s.as_bytes());
    }
    fn type_id(v: &GgufValue) -> u32 {
        match v {
            GgufValue::U8(_) => 0,
            GgufValue::I8(_) => 1,
            GgufValue::U16(_) => 2,
            GgufValue::I16(_) => 3,
            GgufValue::U32(_) => 4,
            GgufValue::I32(_) => 5,
            GgufValue::F32(_) => 6,
            GgufValue::Bool(_) => 7,
            GgufValue::Str(_) => 8,
            GgufValue::Array(_) => 9,
            GgufValue::U64(_) => 10,
            GgufValue::I64(_) => 11,
            GgufValue::F64(_) => 12,
        }
    }
    fn put_value(out: &mut Vec<u8>, v: &GgufValue) {
        match v {
            GgufValue::U8(x) => out.push(*x),
            GgufValue::I8(x) => out.push(*x as u8),
            GgufValue::U16(x) => out.extend(x.to_le_bytes()),
            GgufValue::I16(x) => out.extend(x.to_le_bytes()),
            GgufValue::U32(x) => out.extend(x.to_le_bytes()),
            GgufValue::I32(x) => out.extend(x.to_le_bytes()),
            GgufValue::U64(x) => out.extend(x.to_le_bytes()),
            GgufValue::I64(x) => out.extend(x.to_le_bytes()),
            GgufValue::F32(x) => out.extend(x.to_le_bytes()),
            GgufValue::F64(x) => out.extend(x.to_le_bytes()),
            GgufValue::Bool(x) => out.push(*x as u8),
            GgufValue::Str(s) => put_str(out, s),
            GgufValue::Array(a) => {
                out.extend(a.first().map_or(4, type_id).to_le_bytes());
                out.extend((a.len() as u64).to_le_bytes());
                a.iter().for_each(|x| put_value(out, x));
            }
        }
    }
    let align = DEFAULT_ALIGNMENT as usize;
    let mut out = Vec::new();
    out.extend(MAGIC);
    out.extend(3u32.to_le_bytes());
    out.extend((tensors.len() as u64).to_le_bytes());
    out.extend((metadata.len() as u64).to_le_bytes());
    for (k, v) in metadata {
        put_str(&mut out, k);
        out.extend(type_id(v).to_le_bytes());
        put_value(&mut out, v);
    }
    let mut offset = 0usize;
    for (name, ty, shape, bytes) in tensors {
        put_str(&mut out, name);
        out.extend((shape.len() as u32).to_le_bytes());
        for d in shape.iter().rev() {
            out.extend((*d as u64).to_le_bytes());
        }
        out.extend(ty.id().to_le_bytes());
        out.extend((offset as u64).to_le_bytes());
        offset += bytes.len().div_ceil(align) * align;
    }
    out.resize(out.len().div_ceil(align) * align, 0);
    for (_, _, _, bytes) in tensors {
        out.extend(*bytes);
        out.resize(out.len().div_ceil(align) * align, 0);
    }
    let tmp = path.with_extension("gguf.tmp");
    let io = |e| Error::Io {
        path: path.display().to_string(),
        source: e,
    };
    std::fs::write(&tmp, &out).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn q4_1_block_dequantizes_as_ggml_reference() {
        // d = 0.5, m = -1.0; nibbles 0..15 low, 15..0 high.
        let mut b = Vec::new();
        b.extend(f16::from_f32(0.5).to_bits().to_le_bytes());
        b.extend(f16::from_f32(-1.0).to_bits().to_le_bytes());
        for j in 0..16u8 {
            b.push(j | ((15 - j) << 4));
        }
        let w = dequantize(GgmlType::Q4_1, &b);
        assert_eq!(w.len(), 32);
        assert_eq!(w[0], -1.0);
        assert_eq!(w[15], 15.0 * 0.5 - 1.0);
        assert_eq!(w[16], 15.0 * 0.5 - 1.0);
        assert_eq!(w[31], -1.0);
    }

    #[test]
    fn q4_0_and_q8_0_blocks_dequantize_as_ggml_reference() {
        let mut b = Vec::new();
        b.extend(f16::from_f32(2.0).to_bits().to_le_bytes());
        b.extend(std::iter::repeat_n(0x80u8 | 0x03, 16)); // low 3, high 8
        let w = dequantize(GgmlType::Q4_0, &b);
        assert_eq!(w[0], (3 - 8) as f32 * 2.0);
        assert_eq!(w[16], 0.0);
        let mut b = Vec::new();
        b.extend(f16::from_f32(0.25).to_bits().to_le_bytes());
        b.extend((0..32).map(|i| (i as i8 - 16) as u8));
        let w = dequantize(GgmlType::Q8_0, &b);
        assert_eq!(w[0], -4.0);
        assert_eq!(w[31], 15.0 * 0.25);
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kindling-gguf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn f32_bytes(v: &[f32]) -> Vec<u8> {
        v.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn written_file_reads_back_with_metadata_and_tensors() {
        let p = tmp("rt.gguf");
        let w: Vec<f32> = (0..6).map(|i| i as f32).collect();
        let meta = [
            ("general.architecture", GgufValue::Str("llama".into())),
            ("llama.block_count", GgufValue::U32(2)),
            (
                "tokens",
                GgufValue::Array(vec![GgufValue::Str("a".into()), GgufValue::Str("b".into())]),
            ),
        ];
        write(
            &p,
            &meta,
            &[("w", GgmlType::F32, vec![2, 3], &f32_bytes(&w))],
        )
        .unwrap();
        let g = GgufFile::open(&p).unwrap();
        assert_eq!(
            g.get("general.architecture").unwrap().as_str(),
            Some("llama")
        );
        assert_eq!(g.get("llama.block_count").unwrap().as_u64(), Some(2));
        assert_eq!(g.get("tokens").unwrap().as_array().unwrap().len(), 2);
        let t = g.tensor("w").unwrap();
        assert_eq!(t.shape(), &[2, 3]);
        assert_eq!(t.to_vec_f32().unwrap(), w);
    }

    #[test]
    fn truncated_file_and_bad_tensors_are_named() {
        let p = tmp("trunc.gguf");
        let w = vec![1.0f32; 64];
        write(
            &p,
            &[],
            &[("blk.0.w", GgmlType::F32, vec![8, 8], &f32_bytes(&w))],
        )
        .unwrap();
        let bytes = std::fs::read(&p).unwrap();
        let cut = tmp("cut.gguf");
        std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
        let e = GgufFile::open(&cut).unwrap_err().to_string();
        assert!(
            e.contains("cut.gguf") && e.contains("truncated") && e.contains("blk.0.w"),
            "{e}"
        );
        std::fs::write(&cut, &bytes[..20]).unwrap();
        let e = GgufFile::open(&cut).unwrap_err().to_string();
        assert!(e.contains("truncated"), "{e}");
        std::fs::write(&cut, b"PK\x03\x04 not gguf").unwrap();
        let e = GgufFile::open(&cut).unwrap_err().to_string();
        assert!(e.contains("not a GGUF file"), "{e}");
        // An unknown quantization type (Q5_K, id 13) is named when read.
        let mut b = bytes.clone();
        let pos = b.windows(7).position(|x| x == b"blk.0.w").unwrap() + 7 + 4 + 16;
        b[pos..pos + 4].copy_from_slice(&13u32.to_le_bytes());
        std::fs::write(&cut, &b).unwrap();
        let g = GgufFile::open(&cut).unwrap();
        let e = g.tensor("blk.0.w").unwrap_err().to_string();
        assert!(e.contains("Q5_K") && e.contains("blk.0.w"), "{e}");
        let e = g.tensor("nope").unwrap_err().to_string();
        assert!(e.contains("`nope` is missing"), "{e}");
    }
}
