//! Logits of a GGUF model, for bit-level comparison with llama.cpp
//! (`tools/ggml_dump.py` writes llama.cpp's the same way): the first
//! `PROMPT_LEN` ids in one call, then one id per call, each call's last
//! row of logits appended to OUT as little-endian f32.
//!
//!     cargo run --release -p kindling-models --example gguf_logits -- FILE.gguf OUT PROMPT_LEN ID...
use kindling_models::llama_files::llama_from_gguf_quantized;
use kindling_tensor::gguf::GgufFile;
use kindling_tensor::Tensor;
use std::io::Write;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (path, out, prompt_len) = (&args[0], &args[1], args[2].parse::<usize>()?);
    let ids: Vec<u32> = args[3..]
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let mut model = llama_from_gguf_quantized(&GgufFile::open(std::path::Path::new(path))?)?;
    // KINDLING_LAYERS=n keeps the first n blocks (to find where two
    // implementations part: compare with the reference's `l_out-(n-1)`
    // put through the final norm and head).
    if let Ok(n) = std::env::var("KINDLING_LAYERS") {
        model.layers.truncate(n.parse()?);
    }
    let mut cache = model.new_cache();
    let mut f = std::io::BufWriter::new(std::fs::File::create(out)?);
    let mut calls = vec![&ids[..prompt_len.min(ids.len())]];
    calls.extend(ids[prompt_len.min(ids.len())..].chunks(1));
    let _g = kindling_tensor::no_grad();
    for part in calls {
        let t = Tensor::from_vec_i64(part.iter().map(|&i| i as i64).collect(), &[1, part.len()])?;
        // KINDLING_ALL_ROWS=1: every position's logits, not just the last.
        let logits = if std::env::var_os("KINDLING_ALL_ROWS").is_some() {
            model.forward(&t, Some(&mut cache))?
        } else {
            model.forward_last(&t, Some(&mut cache))?
        };
        for v in logits.to_vec_f32()? {
            f.write_all(&v.to_le_bytes())?;
        }
    }
    Ok(())
}
