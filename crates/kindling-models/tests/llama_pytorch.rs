//! Parity with PyTorch/transformers for LLaMA's ops (forward and backward)
//! and for a whole LLaMA's loss and parameter gradients (the tiny untied
//! fixture), from `tools/gen_llama_fixtures.py` (float64 references).

use kindling_models::llama_files::llama_from_hf_dir;
use kindling_nn::Module;
use kindling_tensor::{safetensors_io, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn fixtures() -> HashMap<String, Tensor> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/llama_ops.safetensors");
    safetensors_io::load(&p).unwrap().0
}

fn close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    assert_eq!(got.shape(), want.shape(), "{what}");
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

fn backward_with(out: &Tensor, gout: &Tensor) {
    out.mul(gout)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
}

#[test]
fn rms_norm_rope_and_silu_match_pytorch_forward_and_backward() {
    let f = fixtures();
    let x = f["rms.x"].clone().requires_grad_(true);
    let w = f["rms.w"].clone().requires_grad_(true);
    let y = x.rms_norm(&w, 1e-5).unwrap();
    close("rms.out", &y, &f["rms.out"], 1e-5);
    backward_with(&y, &f["rms.gout"]);
    close("rms.grad_x", &x.grad().unwrap(), &f["rms.grad_x"], 1e-5);
    close("rms.grad_w", &w.grad().unwrap(), &f["rms.grad_w"], 1e-5);

    let x = f["rope.x"].clone().requires_grad_(true);
    let y = x.rope(&f["rope.cos"], &f["rope.sin"]).unwrap();
    close("rope.out", &y, &f["rope.out"], 1e-6);
    backward_with(&y, &f["rope.gout"]);
    close("rope.grad_x", &x.grad().unwrap(), &f["rope.grad_x"], 1e-6);

    let x = f["silu.x"].clone().requires_grad_(true);
    let y = x.silu().unwrap();
    close("silu.out", &y, &f["silu.out"], 1e-6);
    backward_with(&y, &f["silu.gout"]);
    close("silu.grad_x", &x.grad().unwrap(), &f["silu.grad_x"], 1e-6);
}

#[test]
fn a_llama_loss_and_every_parameter_gradient_match_transformers() {
    let f = fixtures();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tiny-llama/untied");
    let model = llama_from_hf_dir(&dir).unwrap();
    let params = model.named_parameters();
    let params: Vec<(String, Tensor)> = params
        .into_iter()
        .map(|(n, t)| (n, t.requires_grad_(true)))
        .collect();
    // Rebuild the model around the grad-requiring leaves.
    let mut by_name: HashMap<String, Tensor> = params.iter().cloned().collect();
    let model = kindling_models::llama::Llama::from_named(model.config.clone(), &mut |n| {
        by_name
            .remove(n)
            .ok_or_else(|| kindling_tensor::Error::msg(n.to_string()))
    })
    .unwrap();
    let ids = f["model.ids"].clone();
    let targets = f["model.targets"].clone();
    let logits = model.forward(&ids, None).unwrap();
    let v = logits.shape()[2];
    let loss = logits
        .reshape(&[12, v])
        .unwrap()
        .cross_entropy(&targets.reshape(&[12]).unwrap(), None)
        .unwrap();
    close("loss", &loss, &f["model.loss"], 1e-5);
    loss.backward().unwrap();
    for (name, p) in &params {
        let g = p.grad().unwrap_or_else(|| panic!("no gradient for {name}"));
        close(name, &g, &f[&format!("grad.{name}")], 1e-4);
    }
    assert_eq!(params.len(), 21);
}
