//! One LLaMA block of a GGUF model run by Kindling's modules on llama.cpp's
//! own inputs (dumped by `tools/ggml_dump.py`), each op's output compared
//! bit for bit with llama.cpp's node: where two implementations part.
//!
//!     cargo run --release -p kindling-models --example ggml_layer_check -- FILE.gguf DUMP_DIR CALL LAYER POS
use kindling_models::llama_files::llama_from_gguf_quantized;
use kindling_nn::Module;
use kindling_tensor::gguf::GgufFile;
use kindling_tensor::Tensor;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let (dir, call, layer, pos): (&str, usize, usize, usize) =
        (&a[1], a[2].parse()?, a[3].parse()?, a[4].parse()?);
    let model = llama_from_gguf_quantized(&GgufFile::open(std::path::Path::new(&a[0]))?)?;
    let nodes = std::fs::read_to_string(format!("{dir}/nodes.tsv"))?;
    let node = |name: &str, op: &str| -> Vec<f32> {
        let row = nodes
            .lines()
            .map(|l| l.split('\t').collect::<Vec<_>>())
            .find(|r| r[0] == call.to_string() && r[2] == name && (op.is_empty() || r[3] == op))
            .unwrap_or_else(|| panic!("no node {name}"));
        let b = std::fs::read(format!("{dir}/{}", row[6])).unwrap();
        b.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let t = |v: Vec<f32>, s: &[usize]| Tensor::from_vec(v, s).unwrap();
    let cmp = |tag: &str, ours: &Tensor, theirs: &[f32]| {
        let o = ours.to_vec_f32().unwrap();
        let n = o
            .iter()
            .zip(theirs)
            .filter(|(x, y)| x.to_bits() != y.to_bits())
            .count();
        let m = o
            .iter()
            .zip(theirs)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        println!("{tag:10} differ {n}/{} max {m:e}", o.len());
    };
    let _g = kindling_tensor::no_grad();
    let blk = &model.layers[layer];
    let c = model.config.hidden_size;
    let prev = if layer == 0 {
        node("embd", "")
    } else {
        node(&format!("l_out-{}", layer - 1), "")
    };
    let x = t(prev.clone(), &[1, 1, c]);
    let an = blk.input_layernorm.forward(&x)?;
    cmp("attn_norm", &an, &node(&format!("attn_norm-{layer}"), ""));
    let an = t(node(&format!("attn_norm-{layer}"), ""), &[1, 1, c]);
    let q = blk.self_attn.q_proj.forward(&an)?;
    // Kindling's Q rows are in Hugging Face's order: compare after rope via
    // the permuted dump is awkward, so compare K/V/Q sums of squares.
    let ss = |v: &[f32]| v.iter().map(|x| (*x as f64) * (*x as f64)).sum::<f64>();
    println!(
        "q sumsq ours {} theirs {}",
        ss(&q.to_vec_f32()?),
        ss(&node(&format!("Qcur-{layer}"), "MUL_MAT"))
    );
    let v = blk.self_attn.v_proj.forward(&an)?;
    cmp("v", &v, &node(&format!("Vcur-{layer}"), "MUL_MAT"));
    let o_in = t(node(&format!("kqv_out-{layer}"), ""), &[1, 1, c]);
    let o = blk.self_attn.o_proj.forward(&o_in)?;
    cmp("attn_out", &o, &node(&format!("attn_out-{layer}"), ""));
    let fi = t(node(&format!("ffn_inp-{layer}"), ""), &[1, 1, c]);
    let fnorm = blk.post_attention_layernorm.forward(&fi)?;
    cmp("ffn_norm", &fnorm, &node(&format!("ffn_norm-{layer}"), ""));
    let fnorm = t(node(&format!("ffn_norm-{layer}"), ""), &[1, 1, c]);
    let g = blk.mlp.gate_proj.forward(&fnorm)?;
    cmp("gate", &g, &node(&format!("ffn_gate-{layer}"), ""));
    let u = blk.mlp.up_proj.forward(&fnorm)?;
    cmp("up", &u, &node(&format!("ffn_up-{layer}"), ""));
    let inter = g.shape()[2];
    let g = t(node(&format!("ffn_gate-{layer}"), ""), &[1, 1, inter]);
    let u = t(node(&format!("ffn_up-{layer}"), ""), &[1, 1, inter]);
    let sw = g.swiglu(&u)?;
    cmp("swiglu", &sw, &node(&format!("ffn_swiglu-{layer}"), ""));
    let sw = t(node(&format!("ffn_swiglu-{layer}"), ""), &[1, 1, inter]);
    let d = blk.mlp.down_proj.forward(&sw)?;
    cmp("down", &d, &node(&format!("ffn_out-{layer}"), ""));
    // Attention: ggml keeps rotated pairs interleaved (2i, 2i+1), Kindling
    // in halves (i, i + D/2): move ggml's values over.
    let (h, kvh, dh) = (
        model.config.num_attention_heads,
        model.config.num_key_value_heads,
        model.config.head_dim(),
    );
    let to_halves = |v: &[f32]| -> Vec<f32> {
        let mut o = vec![0f32; v.len()];
        for (src, dst) in v.chunks_exact(dh).zip(o.chunks_exact_mut(dh)) {
            for i in 0..dh / 2 {
                dst[i] = src[2 * i];
                dst[i + dh / 2] = src[2 * i + 1];
            }
        }
        o
    };
    // Kindling's own rope on the projection, against ggml's rotated q.
    let rope = model.rope(pos, 1)?;
    let q_rot = q.reshape(&[1, 1, h, dh])?.rope(&rope.0, &rope.1)?;
    cmp(
        "q rope",
        &q_rot,
        &to_halves(&node(&format!("Qcur-{layer}"), "ROPE")),
    );
    let keys = pos + 1;
    // cache_k [kvh, 256, dh] → [1, keys, kvh, dh].
    let ck = node(&format!("cache_k_l{layer} (view) (permuted)"), "");
    let mut kk = vec![0f32; keys * kvh * dh];
    for j in 0..keys {
        for g in 0..kvh {
            kk[(j * kvh + g) * dh..][..dh].copy_from_slice(&ck[(g * 256 + j) * dh..][..dh]);
        }
    }
    // cache_v (transposed) [kvh, dh, 256] → [1, keys, kvh, dh].
    let cv = node(&format!("cache_v_l{layer} (view) (permuted)"), "");
    let mut vv = vec![0f32; keys * kvh * dh];
    for j in 0..keys {
        for g in 0..kvh {
            for e in 0..dh {
                vv[(j * kvh + g) * dh + e] = cv[(g * dh + e) * 256 + j];
            }
        }
    }
    // Queries and keys in ggml's order, as `Llama::follow_llama_cpp` turns
    // them before the cache.
    let qg = t(node(&format!("Qcur-{layer}"), "ROPE"), &[1, 1, h, dh]);
    let y = qg.attend_kv(
        &t(kk, &[1, keys, kvh, dh]),
        &t(vv, &[1, keys, kvh, dh]),
        pos,
    )?;
    cmp("attention", &y, &node(&format!("kqv_out-{layer}"), ""));
    Ok(())
}
