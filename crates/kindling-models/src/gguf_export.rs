//! A LLaMA written as a GGUF file that llama.cpp reads: the tensors under
//! GGUF's names (Q and K rows in GGUF's rotary order), each in the type
//! llama.cpp's `llama-quantize` picks for the requested mixture (without an
//! importance matrix), the configuration as `llama.*` keys, and the
//! tokenizer and chat template as `tokenizer.*` keys — copied from a GGUF
//! source, or built from a Hugging Face folder's `tokenizer.json`.
//!
//! The per-tensor choice follows `llama_tensor_get_type` in llama.cpp's
//! `src/llama-quant.cpp` for the mixtures Kindling writes: 1-D tensors and
//! norms stay f32; the output head — and the token embedding when it is
//! tied to the head — takes Q6_K unless the mixture is Q8_0 or its rows do
//! not split into the mixture's blocks (then Q8_0); a Q6_K tensor whose rows
//! are not a whole number of 256-blocks falls back to Q8_0. (Kindling has no
//! Q6_K quantizer yet: where llama.cpp writes Q6_K, it writes Q8_0.)

use crate::llama::{gguf_name, permute_rope_rows, Llama};
use kindling_nn::Module;
use kindling_tensor::gguf::{self, GgmlType, GgufFile, GgufValue};
use kindling_tensor::quant::QMatrix;
use kindling_tensor::{Error, Result};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// A whole-file type, as `llama-quantize` names them (`general.file_type`
/// holds llama.cpp's `llama_ftype` number).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileType {
    F32,
    F16,
    Q8_0,
    Q4_0,
    Q4_1,
}

impl FileType {
    pub fn parse(s: &str) -> Option<FileType> {
        Some(match s.to_ascii_lowercase().as_str() {
            "f32" => FileType::F32,
            "f16" => FileType::F16,
            "q8_0" => FileType::Q8_0,
            "q4_0" => FileType::Q4_0,
            "q4_1" => FileType::Q4_1,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::F32 => "f32",
            FileType::F16 => "f16",
            FileType::Q8_0 => "q8_0",
            FileType::Q4_0 => "q4_0",
            FileType::Q4_1 => "q4_1",
        }
    }

    /// llama.cpp's `llama_ftype`.
    fn ftype_id(self) -> u32 {
        match self {
            FileType::F32 => 0,
            FileType::F16 => 1,
            FileType::Q4_0 => 2,
            FileType::Q4_1 => 3,
            FileType::Q8_0 => 7,
        }
    }

    fn base(self) -> GgmlType {
        match self {
            FileType::F32 => GgmlType::F32,
            FileType::F16 => GgmlType::F16,
            FileType::Q8_0 => GgmlType::Q8_0,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q4_1 => GgmlType::Q4_1,
        }
    }
}

/// The type llama.cpp gives the GGUF tensor `name` of shape `[rows, cols]`
/// in mixture `ft` (`tied`: the token embedding doubles as the head).
pub fn tensor_type(ft: FileType, name: &str, shape: &[usize], tied: bool) -> GgmlType {
    let quantizable =
        shape.len() >= 2 && name.ends_with("weight") && !name.contains("_norm.weight");
    if !quantizable {
        return GgmlType::F32;
    }
    let base = ft.base();
    if matches!(base, GgmlType::F32 | GgmlType::F16) {
        return base;
    }
    let cols = shape[shape.len() - 1];
    let is_head = name == "output.weight" || (tied && name == "token_embd.weight");
    let mut ty = base;
    if is_head {
        ty = if !cols.is_multiple_of(base.block().0) || base == GgmlType::Q8_0 {
            GgmlType::Q8_0
        } else {
            GgmlType::Q6_K
        };
    }
    // llama.cpp's fallback for rows that are not whole super-blocks. Where
    // llama.cpp would write Q6_K (a head of whole 256-blocks), Kindling has
    // no Q6_K quantizer yet and writes Q8_0: larger, and more precise.
    if ty == GgmlType::Q6_K {
        ty = GgmlType::Q8_0;
    }
    ty
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_types_follow_llama_quantize() {
        let t = |ft, name, shape: &[usize], tied| tensor_type(ft, name, shape, tied);
        // Norms and 1-D tensors stay f32.
        assert_eq!(
            t(FileType::Q4_0, "blk.0.attn_norm.weight", &[576], true),
            GgmlType::F32
        );
        // Projections take the mixture's type.
        let q = "blk.3.attn_q.weight";
        assert_eq!(t(FileType::Q4_1, q, &[576, 576], true), GgmlType::Q4_1);
        assert_eq!(t(FileType::Q8_0, q, &[576, 576], true), GgmlType::Q8_0);
        // SmolLM2's tied embedding: 576 is not whole 256-blocks, so Q8_0,
        // as in the Q4_1 file llama.cpp's tools wrote.
        let e = "token_embd.weight";
        assert_eq!(t(FileType::Q4_1, e, &[49152, 576], true), GgmlType::Q8_0);
        // An untied embedding is an ordinary tensor; the head is the head.
        assert_eq!(t(FileType::Q4_0, e, &[49152, 576], false), GgmlType::Q4_0);
        assert_eq!(
            t(FileType::Q4_0, "output.weight", &[49152, 512], false),
            GgmlType::Q8_0
        );
        assert_eq!(t(FileType::F16, q, &[576, 576], true), GgmlType::F16);
    }
}

/// One tensor ready for the file: its GGUF name, type, shape `[rows, cols]`
/// (outermost first) and bytes.
struct Encoded {
    name: String,
    ty: GgmlType,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

fn encode(name: String, ty: GgmlType, shape: Vec<usize>, values: &[f32]) -> Result<Encoded> {
    let bytes = match ty {
        GgmlType::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => {
            let cols = *shape.last().expect("a weight has a shape");
            let rows = values.len() / cols.max(1);
            QMatrix::quantize(ty, values, rows, cols)
                .map_err(|e| Error::msg(format!("tensor `{name}`: {e}")))?
                .bytes()
                .to_vec()
        }
    };
    Ok(Encoded {
        name,
        ty,
        shape,
        bytes,
    })
}

/// The model's tensors in mixture `ft`, in the order of its parameters.
fn encode_tensors(model: &Llama, ft: FileType) -> Result<Vec<Encoded>> {
    let c = &model.config;
    if c.qk_norm {
        return Err(Error::msg(
            "a LLaMA with qk_norm (Qwen3-style) has no llama.cpp `llama` equivalent; not writing it as one",
        ));
    }
    let tied = model.lm_head.is_none();
    let mut out = Vec::new();
    for (hf, t) in model.named_parameters() {
        let name = gguf_name(&hf)
            .ok_or_else(|| Error::msg(format!("parameter `{hf}` has no GGUF name")))?;
        let t = if hf.ends_with("q_proj.weight") {
            permute_rope_rows(&t, c.num_attention_heads, false)?
        } else if hf.ends_with("k_proj.weight") {
            permute_rope_rows(&t, c.num_key_value_heads, false)?
        } else {
            t
        };
        let shape = t.shape().to_vec();
        let ty = tensor_type(ft, &name, &shape, tied);
        out.push(encode(name, ty, shape, &t.to_vec_f32()?)?);
    }
    Ok(out)
}

/// The `llama.*` and `general.*` keys of `model` in mixture `ft`.
fn model_metadata(model: &Llama, ft: FileType, name: &str) -> Vec<(String, GgufValue)> {
    let c = &model.config;
    let u32v = |v: usize| GgufValue::U32(v as u32);
    let mut m = vec![
        (
            "general.architecture".into(),
            GgufValue::Str("llama".into()),
        ),
        ("general.type".into(), GgufValue::Str("model".into())),
        ("general.name".into(), GgufValue::Str(name.into())),
        ("llama.block_count".into(), u32v(c.num_hidden_layers)),
        (
            "llama.context_length".into(),
            u32v(c.max_position_embeddings),
        ),
        ("llama.embedding_length".into(), u32v(c.hidden_size)),
        (
            "llama.feed_forward_length".into(),
            u32v(c.intermediate_size),
        ),
        (
            "llama.attention.head_count".into(),
            u32v(c.num_attention_heads),
        ),
        (
            "llama.attention.head_count_kv".into(),
            u32v(c.num_key_value_heads),
        ),
        (
            "llama.rope.freq_base".into(),
            GgufValue::F32(c.rope_theta as f32),
        ),
        (
            "llama.attention.layer_norm_rms_epsilon".into(),
            GgufValue::F32(c.rms_norm_eps as f32),
        ),
        ("llama.vocab_size".into(), u32v(c.vocab_size)),
        ("llama.rope.dimension_count".into(), u32v(c.head_dim())),
    ];
    m.extend(file_type_keys(ft));
    m
}

fn file_type_keys(ft: FileType) -> Vec<(String, GgufValue)> {
    vec![
        ("general.file_type".into(), GgufValue::U32(ft.ftype_id())),
        ("general.quantization_version".into(), GgufValue::U32(2)),
    ]
}

/// llama.cpp's name for a `tokenizer.json` pre-tokenizer (`tokenizer.ggml.pre`),
/// for the byte-level BPEs Kindling knows.
fn pre_tokenizer_name(tok: &Value) -> Option<&'static str> {
    let pre = tok.get("pre_tokenizer")?;
    let kinds: Vec<&str> = match pre.get("type")?.as_str()? {
        "Sequence" => pre
            .get("pretokenizers")?
            .as_array()?
            .iter()
            .filter_map(|p| p.get("type")?.as_str())
            .collect(),
        one => vec![one],
    };
    match kinds.as_slice() {
        // SmolLM's: digits one by one, then GPT-2's byte-level split.
        ["Digits", "ByteLevel"] => Some("smollm"),
        ["ByteLevel"] => Some("gpt2"),
        _ => None,
    }
}

/// Tokenizer keys built from a Hugging Face folder's `tokenizer.json` and
/// `tokenizer_config.json` (special tokens, chat template).
fn tokenizer_keys_from_hf(dir: &Path) -> Result<Vec<(String, GgufValue)>> {
    let read = |file: &str| -> Result<Value> {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::Io {
            path: path.display().to_string(),
            source: e,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| Error::msg(format!("{}: not JSON: {e}", path.display())))
    };
    let tok = read("tokenizer.json")?;
    let bad = |what: &str| Error::msg(format!("{}: {what}", dir.join("tokenizer.json").display()));
    let model = tok.get("model").ok_or_else(|| bad("no `model`"))?;
    if model.get("type").and_then(Value::as_str) != Some("BPE") {
        return Err(bad("only byte-level BPE tokenizers can be written to GGUF"));
    }
    let pre = pre_tokenizer_name(&tok).ok_or_else(|| {
        bad("its pre-tokenizer has no llama.cpp name Kindling knows (gpt2, smollm)")
    })?;
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no `model.vocab`"))?;
    let mut by_id: BTreeMap<u64, (String, i32)> = vocab
        .iter()
        .filter_map(|(t, id)| Some((id.as_u64()?, (t.clone(), 1))))
        .collect();
    for a in tok
        .get("added_tokens")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let (Some(id), Some(content)) = (
            a.get("id").and_then(Value::as_u64),
            a.get("content").and_then(Value::as_str),
        ) else {
            continue;
        };
        // llama.cpp's token types: 1 normal, 3 control (special), 4 user-defined.
        let special = a.get("special").and_then(Value::as_bool).unwrap_or(false);
        by_id.insert(id, (content.to_string(), if special { 3 } else { 4 }));
    }
    let n = by_id.keys().next_back().map_or(0, |k| k + 1);
    if by_id.len() as u64 != n {
        return Err(bad("token ids are not 0..N without gaps"));
    }
    let merges: Vec<GgufValue> = model
        .get("merges")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no `model.merges`"))?
        .iter()
        .map(|m| match m {
            Value::String(s) => Ok(GgufValue::Str(s.clone())),
            Value::Array(p) if p.len() == 2 => Ok(GgufValue::Str(format!(
                "{} {}",
                p[0].as_str().unwrap_or(""),
                p[1].as_str().unwrap_or("")
            ))),
            _ => Err(bad("a merge is neither \"a b\" nor [a, b]")),
        })
        .collect::<Result<_>>()?;
    let id_of = |content: &str| {
        by_id
            .iter()
            .find(|(_, (t, _))| t == content)
            .map(|(id, _)| *id as u32)
    };
    let mut keys = vec![
        (
            "tokenizer.ggml.model".to_string(),
            GgufValue::Str("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".to_string(), GgufValue::Str(pre.into())),
        (
            "tokenizer.ggml.tokens".to_string(),
            GgufValue::Array(
                by_id
                    .values()
                    .map(|(t, _)| GgufValue::Str(t.clone()))
                    .collect(),
            ),
        ),
        (
            "tokenizer.ggml.token_type".to_string(),
            GgufValue::Array(by_id.values().map(|(_, ty)| GgufValue::I32(*ty)).collect()),
        ),
        (
            "tokenizer.ggml.merges".to_string(),
            GgufValue::Array(merges),
        ),
        (
            "tokenizer.ggml.add_bos_token".to_string(),
            GgufValue::Bool(false),
        ),
    ];
    let config = read("tokenizer_config.json").ok();
    let special = |key: &str| -> Option<String> {
        let v = config.as_ref()?.get(key)?;
        v.as_str()
            .or_else(|| v.get("content").and_then(Value::as_str))
            .map(str::to_string)
    };
    for (key, gguf_key) in [
        ("bos_token", "tokenizer.ggml.bos_token_id"),
        ("eos_token", "tokenizer.ggml.eos_token_id"),
        ("unk_token", "tokenizer.ggml.unknown_token_id"),
        ("pad_token", "tokenizer.ggml.padding_token_id"),
    ] {
        if let Some(id) = special(key).and_then(|t| id_of(&t)) {
            keys.push((gguf_key.to_string(), GgufValue::U32(id)));
        }
    }
    if let Some(t) = config
        .as_ref()
        .and_then(|c| c.get("chat_template"))
        .and_then(Value::as_str)
    {
        keys.push((
            "tokenizer.chat_template".to_string(),
            GgufValue::Str(t.to_string()),
        ));
    }
    Ok(keys)
}

/// What [`write_gguf`] wrote.
#[derive(Debug, Clone)]
pub struct GgufReport {
    pub tensors: usize,
    pub bytes: u64,
    /// How many tensors went into each type (`Q4_0: 180, Q8_0: 1, F32: 61`).
    pub types: BTreeMap<String, usize>,
}

/// Writes `model` to `out` in mixture `ft`, with the tokenizer of `source`
/// (a GGUF file, whose other keys such as `general.name` are kept, or a
/// Hugging Face folder). Atomic: a temporary file renamed into place.
pub fn write_gguf(model: &Llama, source: &Path, ft: FileType, out: &Path) -> Result<GgufReport> {
    let tensors = encode_tensors(model, ft)?;
    let mut metadata: BTreeMap<String, GgufValue> = BTreeMap::new();
    let name = source
        .file_stem()
        .map_or("model".to_string(), |s| s.to_string_lossy().into_owned());
    for (k, v) in model_metadata(model, ft, &name) {
        metadata.insert(k, v);
    }
    if source.is_dir() {
        for (k, v) in tokenizer_keys_from_hf(source)? {
            metadata.insert(k, v);
        }
    } else {
        // The tokenizer as it is, and what the source says of itself (name,
        // licence, languages...); the file type is this file's.
        let src = GgufFile::open(source)?;
        for (k, v) in &src.metadata {
            if k.starts_with("tokenizer.") || k.starts_with("general.") {
                metadata.insert(k.clone(), v.clone());
            }
        }
        for (k, v) in file_type_keys(ft) {
            metadata.insert(k, v);
        }
    }
    // general.architecture first: readers look it up to name the other keys.
    let mut ordered: Vec<(&str, GgufValue)> = Vec::with_capacity(metadata.len());
    if let Some(v) = metadata.get("general.architecture") {
        ordered.push(("general.architecture", v.clone()));
    }
    ordered.extend(
        metadata
            .iter()
            .filter(|(k, _)| k.as_str() != "general.architecture")
            .map(|(k, v)| (k.as_str(), v.clone())),
    );
    let list: Vec<(&str, GgmlType, Vec<usize>, &[u8])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.ty, t.shape.clone(), t.bytes.as_slice()))
        .collect();
    gguf::write(out, &ordered, &list)?;
    let mut types = BTreeMap::new();
    for t in &tensors {
        *types.entry(t.ty.name().to_string()).or_insert(0) += 1;
    }
    Ok(GgufReport {
        tensors: tensors.len(),
        bytes: std::fs::metadata(out).map(|m| m.len()).unwrap_or(0),
        types,
    })
}
