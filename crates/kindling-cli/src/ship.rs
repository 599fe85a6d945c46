//! Making a model small for shipping: `kindling quantize` writes a LLaMA as
//! a GGUF file in one of llama.cpp's block formats.

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_models::gguf_export::{self, FileType};
use kindling_models::llama_files;
use serde_json::json;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct Quantize {
    /// The model: a GGUF file, a Hugging Face folder, a run directory, or smollm2-135m-instruct.
    #[arg(long)]
    pub model: PathBuf,
    /// q8_0, q4_0, q4_1 (llama.cpp's mixtures of the same names: norms stay f32, a tied
    /// embedding / output head takes Q6_K or Q8_0), or f16 / f32.
    #[arg(long = "type")]
    pub ty: String,
    /// The GGUF file to write (must not exist unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn quantize(a: Quantize) -> CliResult<()> {
    let Some(ft) = FileType::parse(&a.ty) else {
        bail!("--type {}: unknown (q8_0, q4_0, q4_1, f16 or f32)", a.ty);
    };
    if a.out.exists() && !a.force {
        bail!(
            "--out {}: already exists; give another file or --force",
            a.out.display()
        );
    }
    if a.out.is_dir() {
        bail!(
            "--out {}: is a directory; give a .gguf file name",
            a.out.display()
        );
    }
    let source = crate::lm::resolve(&a.model)?;
    let start = Instant::now();
    let model = llama_files::load_llama(&source)
        .with_context(|| format!("--model {}", a.model.display()))?;
    let report = gguf_export::write_gguf(&model, &source, ft, &a.out)
        .with_context(|| format!("--out {}", a.out.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let types: Vec<String> = report
        .types
        .iter()
        .map(|(t, n)| format!("{n} {t}"))
        .collect();
    eprintln!(
        "wrote {} ({}, {:.1} MB, {} tensors: {}) in {secs:.1} s",
        a.out.display(),
        ft.name(),
        report.bytes as f64 / 1e6,
        report.tensors,
        types.join(", ")
    );
    Report::new(a.json.enabled).finish(json!({
        "out": a.out,
        "type": ft.name(),
        "bytes": report.bytes,
        "tensors": report.tensors,
        "tensor_types": report.types,
        "seconds": secs,
    }));
    Ok(())
}
