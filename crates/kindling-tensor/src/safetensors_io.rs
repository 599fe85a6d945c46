//! Named tensors to and from safetensors files (checkpoints, fixtures).
//! Writes go to a temporary file that is renamed into place, so a crash
//! never leaves a half-written checkpoint behind.

use crate::{CpuStorage, Error, Result, Tensor};
use half::{bf16, f16};
use safetensors::{tensor::TensorView, Dtype as StDtype, SafeTensors};
use std::collections::HashMap;
use std::path::Path;

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.display().to_string(),
        source,
    }
}

fn st_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::SafeTensors(format!("{}: {e}", path.display()))
}

fn from_le<T, const N: usize>(bytes: &[u8], conv: impl Fn([u8; N]) -> T) -> Vec<T> {
    bytes
        .chunks_exact(N)
        .map(|c| conv(c.try_into().expect("chunk of N bytes")))
        .collect()
}

fn view_to_tensor(path: &Path, name: &str, v: &TensorView<'_>) -> Result<Tensor> {
    let b = v.data();
    let storage = match v.dtype() {
        StDtype::F32 => CpuStorage::F32(from_le(b, f32::from_le_bytes)),
        StDtype::F64 => CpuStorage::F32(from_le(b, |x| f64::from_le_bytes(x) as f32)),
        StDtype::F16 => CpuStorage::F16(from_le(b, |x| f16::from_bits(u16::from_le_bytes(x)))),
        StDtype::BF16 => CpuStorage::BF16(from_le(b, |x| bf16::from_bits(u16::from_le_bytes(x)))),
        StDtype::I64 => CpuStorage::I64(from_le(b, i64::from_le_bytes)),
        StDtype::I32 => CpuStorage::I64(from_le(b, |x| i32::from_le_bytes(x) as i64)),
        StDtype::U8 | StDtype::BOOL => CpuStorage::U8(b.to_vec()),
        other => {
            return Err(st_err(
                path,
                format!("tensor `{name}` has unsupported dtype {other:?}"),
            ))
        }
    };
    Tensor::from_storage(storage, v.shape())
}

/// Why `bytes` cannot be a whole safetensors file, in words a user can act
/// on (the library's own errors, `HeaderTooLarge` or
/// `MetadataIncompleteBuffer`, name its internals): `Err(NotSafeTensors)`
/// when it never was one, `Err(Truncated)` when a real one was cut short.
fn check_framing(path: &Path, bytes: &[u8]) -> Result<()> {
    let not = |why: String| Error::NotSafeTensors {
        path: path.display().to_string(),
        why,
    };
    if bytes.is_empty() {
        return Err(not("the file is empty".into()));
    }
    if bytes.len() < 8 {
        return Err(not(format!(
            "{} bytes, too short for a header",
            bytes.len()
        )));
    }
    let header = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    // Every safetensors header is a JSON object right after its length.
    if bytes.get(8) != Some(&b'{') || header < 2 {
        return Err(not("no JSON header after its first 8 bytes".into()));
    }
    if header > (bytes.len() - 8) as u64 {
        return Err(Error::Truncated {
            path: path.display().to_string(),
            len: bytes.len() as u64,
            needed: header.saturating_add(8),
        });
    }
    Ok(())
}

/// Every tensor in the file, by name, plus the header metadata.
pub fn load(path: &Path) -> Result<(HashMap<String, Tensor>, HashMap<String, String>)> {
    let bytes = std::fs::read(path).map_err(|e| io_err(path, e))?;
    check_framing(path, &bytes)?;
    let header_end = 8 + u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    // The data's end as the header records it: a shorter file was cut off.
    if let Ok(serde_json::Value::Object(header)) =
        serde_json::from_slice::<serde_json::Value>(&bytes[8..header_end])
    {
        let data_end = header
            .values()
            .filter_map(|t| t["data_offsets"][1].as_u64())
            .max()
            .unwrap_or(0);
        let needed = header_end as u64 + data_end;
        if (bytes.len() as u64) < needed {
            return Err(Error::Truncated {
                path: path.display().to_string(),
                len: bytes.len() as u64,
                needed,
            });
        }
    }
    let (_, meta) = SafeTensors::read_metadata(&bytes).map_err(|e| st_err(path, e))?;
    let metadata = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).map_err(|e| st_err(path, e))?;
    let mut out = HashMap::new();
    for (name, view) in st.tensors() {
        out.insert(name.clone(), view_to_tensor(path, &name, &view)?);
    }
    Ok((out, metadata))
}

fn to_bytes(t: &Tensor) -> Result<(StDtype, Vec<u8>)> {
    let c = t.contiguous()?;
    let s = c.storage();
    let range = c.layout().contiguous_range().expect("contiguous");
    Ok(match s.cpu() {
        CpuStorage::F32(v) => (
            StDtype::F32,
            v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        CpuStorage::F16(v) => (
            StDtype::F16,
            v[range]
                .iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect(),
        ),
        CpuStorage::BF16(v) => (
            StDtype::BF16,
            v[range]
                .iter()
                .flat_map(|x| x.to_bits().to_le_bytes())
                .collect(),
        ),
        CpuStorage::I64(v) => (
            StDtype::I64,
            v[range].iter().flat_map(|x| x.to_le_bytes()).collect(),
        ),
        CpuStorage::U8(v) => (StDtype::U8, v[range].to_vec()),
    })
}

/// Writes `tensors` (sorted by name) with `metadata`, atomically.
pub fn save(
    path: &Path,
    tensors: &[(String, Tensor)],
    metadata: &HashMap<String, String>,
) -> Result<()> {
    let mut owned: Vec<(String, StDtype, Vec<usize>, Vec<u8>)> = Vec::new();
    for (name, t) in tensors {
        let (dt, bytes) = to_bytes(t)?;
        owned.push((name.clone(), dt, t.shape().to_vec(), bytes));
    }
    owned.sort_by(|a, b| a.0.cmp(&b.0));
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, dt, shape, bytes)| {
            Ok((
                n.clone(),
                TensorView::new(*dt, shape.clone(), bytes).map_err(|e| st_err(path, e))?,
            ))
        })
        .collect::<Result<_>>()?;
    let meta = (!metadata.is_empty()).then(|| metadata.clone());
    let data = safetensors::serialize(views, &meta).map_err(|e| st_err(path, e))?;
    write_atomic(path, &data)
}

/// Writes `bytes` to `path` through a sibling temp file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    // Process id plus a counter: concurrent writers never share a temp file.
    static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = path.with_extension(format!(
        "{}.tmp{}-{n}",
        path.extension().and_then(|e| e.to_str()).unwrap_or(""),
        std::process::id()
    ));
    let write = || -> Result<()> {
        let mut f = std::fs::File::create(&tmp).map_err(|e| io_err(&tmp, e))?;
        f.write_all(bytes).map_err(|e| io_err(&tmp, e))?;
        f.sync_all().map_err(|e| io_err(&tmp, e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| io_err(path, e))?;
        // The rename itself is durable only once the directory is synced.
        #[cfg(unix)]
        if let Some(dir) = path.parent() {
            let dir = if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            };
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| io_err(dir, e))?;
        }
        Ok(())
    };
    let result = write();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_foreign_and_truncated_files_are_named_as_such() {
        let dir = std::env::temp_dir().join(format!("kindling-st-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.safetensors");
        let t = Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0], &[2, 2]).unwrap();
        save(&good, &[("w".to_string(), t)], &HashMap::new()).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cases: [(&str, Vec<u8>, &str); 4] = [
            (
                "empty",
                Vec::new(),
                "is not a safetensors file (the file is empty)",
            ),
            (
                "random",
                (0..300u32).map(|i| (i * 97 % 251) as u8).collect(),
                "is not a safetensors file",
            ),
            (
                "cut-data",
                bytes[..bytes.len() - 3].to_vec(),
                "is truncated",
            ),
            ("cut-header", bytes[..12].to_vec(), "is truncated"),
        ];
        for (name, content, want) in cases {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            let e = load(&path).unwrap_err().to_string();
            assert!(e.contains(want) && e.contains(name), "{name}: {e}");
        }
        assert_eq!(load(&good).unwrap().0["w"].shape(), &[2, 2]);
        std::fs::remove_dir_all(&dir).ok();
    }
}
