//! Where a tensor's elements live. Each `Storage` variant belongs to one
//! device, and `Device::backend()` gives the kernels for it (see
//! `backend.rs`): a CUDA backend adds a variant here (behind a cargo
//! feature) and a `Backend` implementation, without touching the autograd
//! or the ops above it.

use crate::{DType, Error, Result};
use half::{bf16, f16};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
}

impl std::fmt::Display for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Device::Cpu => f.write_str("cpu"),
        }
    }
}

#[derive(Clone, Debug)]
pub enum CpuStorage {
    F32(Vec<f32>),
    F16(Vec<f16>),
    BF16(Vec<bf16>),
    I64(Vec<i64>),
    U8(Vec<u8>),
}

#[derive(Clone, Debug)]
pub enum Storage {
    Cpu(CpuStorage),
}

impl CpuStorage {
    pub fn dtype(&self) -> DType {
        match self {
            CpuStorage::F32(_) => DType::F32,
            CpuStorage::F16(_) => DType::F16,
            CpuStorage::BF16(_) => DType::BF16,
            CpuStorage::I64(_) => DType::I64,
            CpuStorage::U8(_) => DType::U8,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            CpuStorage::F32(v) => v.len(),
            CpuStorage::F16(v) => v.len(),
            CpuStorage::BF16(v) => v.len(),
            CpuStorage::I64(v) => v.len(),
            CpuStorage::U8(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn f32(&self, op: &'static str) -> Result<&[f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            other => Err(Error::DType {
                op,
                expected: DType::F32,
                got: other.dtype(),
            }),
        }
    }

    pub fn f32_mut(&mut self, op: &'static str) -> Result<&mut [f32]> {
        match self {
            CpuStorage::F32(v) => Ok(v),
            other => Err(Error::DType {
                op,
                expected: DType::F32,
                got: other.dtype(),
            }),
        }
    }

    pub fn i64(&self, op: &'static str) -> Result<&[i64]> {
        match self {
            CpuStorage::I64(v) => Ok(v),
            other => Err(Error::DType {
                op,
                expected: DType::I64,
                got: other.dtype(),
            }),
        }
    }

    /// Element `i` widened to f64: used by conversions and debugging, not hot loops.
    pub fn get_f64(&self, i: usize) -> f64 {
        match self {
            CpuStorage::F32(v) => v[i] as f64,
            CpuStorage::F16(v) => v[i].to_f64(),
            CpuStorage::BF16(v) => v[i].to_f64(),
            CpuStorage::I64(v) => v[i] as f64,
            CpuStorage::U8(v) => v[i] as f64,
        }
    }
}

impl Storage {
    /// f32 values computed on the host, placed on `device`.
    pub(crate) fn from_host_f32(device: Device, v: Vec<f32>) -> Storage {
        match device {
            Device::Cpu => Storage::Cpu(CpuStorage::F32(v)),
        }
    }
    pub fn device(&self) -> Device {
        match self {
            Storage::Cpu(_) => Device::Cpu,
        }
    }
    pub fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(s) => s.dtype(),
        }
    }
    pub fn len(&self) -> usize {
        match self {
            Storage::Cpu(s) => s.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn cpu(&self) -> &CpuStorage {
        match self {
            Storage::Cpu(s) => s,
        }
    }
    pub fn cpu_mut(&mut self) -> &mut CpuStorage {
        match self {
            Storage::Cpu(s) => s,
        }
    }
}
