//! Optimizers against hand-computed steps and PyTorch's (mlp_step fixture
//! from tools/gen_fixtures.py), plus checkpoint round trips and determinism.

use kindling_nn::optim::{Adam, AdamConfig, Optimizer, Sgd, SgdConfig};
use kindling_nn::{checkpoint, Linear, Module};
use kindling_tensor::{safetensors_io, Result, Rng, Tensor};
use std::collections::HashMap;
use std::path::Path;

fn fixture() -> HashMap<String, Tensor> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mlp_step.safetensors");
    safetensors_io::load(&path).unwrap().0
}

struct TinyMlp {
    l1: Linear,
    l2: Linear,
}

impl TinyMlp {
    fn from_fixture(f: &HashMap<String, Tensor>) -> Self {
        let p = |k: &str| f[k].copy().unwrap().requires_grad_(true);
        TinyMlp {
            l1: Linear::from_tensors(p("w1"), Some(p("b1"))).unwrap(),
            l2: Linear::from_tensors(p("w2"), Some(p("b2"))).unwrap(),
        }
    }
    fn loss(&self, f: &HashMap<String, Tensor>) -> Result<Tensor> {
        let h = self.l1.forward(&f["x"])?.tanh()?;
        self.l2.forward(&h)?.cross_entropy(&f["y"], None)
    }
    fn params(&self) -> [(&'static str, Tensor); 4] {
        [
            ("w1", self.l1.dense_weight().unwrap().clone()),
            ("b1", self.l1.bias.clone().unwrap()),
            ("w2", self.l2.dense_weight().unwrap().clone()),
            ("b2", self.l2.bias.clone().unwrap()),
        ]
    }
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let (g, w) = (got.to_vec_f32().unwrap(), want.to_vec_f32().unwrap());
    assert_eq!(g.len(), w.len(), "{what}");
    for (i, (a, b)) in g.iter().zip(&w).enumerate() {
        assert!(
            (a - b).abs() <= tol * (1.0 + b.abs()),
            "{what}[{i}]: kindling {a} vs pytorch {b}"
        );
    }
}

#[test]
fn mlp_loss_and_gradients_match_pytorch() {
    let f = fixture();
    let mlp = TinyMlp::from_fixture(&f);
    let loss = mlp.loss(&f).unwrap();
    assert_close("loss", &loss, &f["loss"], 1e-6);
    loss.backward().unwrap();
    for (name, p) in mlp.params() {
        assert_close(
            &format!("grad.{name}"),
            &p.grad().unwrap(),
            &f[&format!("grad.{name}")],
            1e-5,
        );
    }
}

/// Three steps from the fixture's initial weights, compared with PyTorch.
fn three_steps_match(prefix: &str, make: impl FnOnce(Vec<Tensor>) -> Box<dyn Optimizer>) {
    let f = fixture();
    let mlp = TinyMlp::from_fixture(&f);
    let mut opt = make(mlp.params().iter().map(|(_, p)| p.clone()).collect());
    for _ in 0..3 {
        opt.zero_grad();
        mlp.loss(&f).unwrap().backward().unwrap();
        opt.step().unwrap();
    }
    for (name, p) in mlp.params() {
        assert_close(
            &format!("{prefix}.{name}"),
            &p,
            &f[&format!("{prefix}.{name}")],
            1e-5,
        );
    }
}

#[test]
fn sgd_momentum_weight_decay_matches_pytorch() {
    three_steps_match("sgd", |p| {
        Box::new(Sgd::new(
            p,
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
                weight_decay: 0.01,
            },
        ))
    });
}

#[test]
fn sgd_nesterov_matches_pytorch() {
    three_steps_match("nesterov", |p| {
        Box::new(Sgd::new(
            p,
            SgdConfig {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
                weight_decay: 0.0,
            },
        ))
    });
}

#[test]
fn adam_matches_pytorch() {
    three_steps_match("adam", |p| Box::new(Adam::new(p, AdamConfig::adam(0.01))));
}

#[test]
fn adamw_matches_pytorch() {
    three_steps_match("adamw", |p| {
        Box::new(Adam::new(p, AdamConfig::adamw(0.01, 0.1)))
    });
}

fn one_param(v: f32, g: f32) -> Tensor {
    let p = Tensor::from_vec(vec![v], &[1])
        .unwrap()
        .requires_grad_(true);
    p.set_grad(Some(Tensor::from_vec(vec![g], &[1]).unwrap()));
    p
}

#[test]
fn sgd_steps_match_hand_computation() {
    // p=1, g=0.5 constant, lr=0.1, mu=0.9:
    // step1: buf=0.5, p=1-0.05=0.95; step2: buf=0.9*0.5+0.5=0.95, p=0.95-0.095=0.855
    let p = one_param(1.0, 0.5);
    let mut opt = Sgd::new(
        vec![p.clone()],
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            ..Default::default()
        },
    );
    opt.step().unwrap();
    assert!((p.item().unwrap() - 0.95).abs() < 1e-6);
    opt.step().unwrap();
    assert!((p.item().unwrap() - 0.855).abs() < 1e-6);
    // Nesterov, step1: buf=0.5, d=0.5+0.45=0.95, p=1-0.095=0.905
    let p = one_param(1.0, 0.5);
    let mut opt = Sgd::new(
        vec![p.clone()],
        SgdConfig {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            weight_decay: 0.0,
        },
    );
    opt.step().unwrap();
    assert!((p.item().unwrap() - 0.905).abs() < 1e-6);
}

#[test]
fn adam_first_step_moves_by_lr_and_adamw_decays_first() {
    // Bias correction makes Adam's first step exactly lr * sign(g) (eps aside).
    let p = one_param(1.0, 123.0);
    let mut opt = Adam::new(vec![p.clone()], AdamConfig::adam(0.01));
    opt.step().unwrap();
    assert!((p.item().unwrap() - 0.99).abs() < 1e-6);
    // AdamW: p = 1*(1 - 0.01*0.5) - 0.01 = 0.985
    let p = one_param(1.0, 123.0);
    let mut opt = Adam::new(vec![p.clone()], AdamConfig::adamw(0.01, 0.5));
    opt.step().unwrap();
    assert!((p.item().unwrap() - 0.985).abs() < 1e-6);
}

#[test]
fn optimizer_state_round_trips_so_resumed_runs_continue_identically() {
    let run = |split: bool| -> Vec<f32> {
        let p = one_param(1.0, 0.3);
        let mut opt = Adam::new(vec![p.clone()], AdamConfig::adamw(0.05, 0.1));
        opt.step().unwrap();
        if split {
            let state: HashMap<String, Tensor> = opt.state().into_iter().collect();
            let mut fresh = Adam::new(vec![p.clone()], AdamConfig::adamw(0.05, 0.1));
            fresh.load_state(&state).unwrap();
            opt = fresh;
        }
        opt.step().unwrap();
        p.to_vec_f32().unwrap()
    };
    assert_eq!(run(false), run(true));
}

#[test]
fn checkpoint_round_trips_and_names_what_is_wrong() {
    let dir = std::env::temp_dir().join(format!("kindling-ckpt-{}", std::process::id()));
    let path = dir.join("model.safetensors");
    let mut rng = Rng::new(1);
    let a = Linear::new(3, 2, true, &mut rng);
    checkpoint::save(&path, &a, &serde_json::json!({"model": "linear"}), &[]).unwrap();
    let b = Linear::new(3, 2, true, &mut rng);
    let ck = checkpoint::read(&path).unwrap();
    assert_eq!(ck.config["model"], "linear");
    ck.load_into(&b, &path).unwrap();
    assert_eq!(
        a.dense_weight().unwrap().to_vec_f32().unwrap(),
        b.dense_weight().unwrap().to_vec_f32().unwrap()
    );

    let wrong = Linear::new(4, 2, true, &mut rng);
    let msg = ck.load_into(&wrong, &path).unwrap_err().to_string();
    assert!(msg.contains("weight") && msg.contains("[2, 3]"), "{msg}");
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let msg = checkpoint::read(&path).err().unwrap().to_string();
    assert!(msg.contains("model.safetensors"), "{msg}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn same_seed_gives_bitwise_identical_training() {
    let train = |seed: u64| -> Vec<f32> {
        let mut rng = Rng::new(seed);
        let l1 = Linear::new(4, 16, true, &mut rng);
        let l2 = Linear::new(16, 3, true, &mut rng);
        let x = Tensor::randn(&[32, 4], 0.0, 1.0, &mut rng);
        let y = Tensor::from_vec_i64((0..32).map(|i| (i % 3) as i64).collect(), &[32]).unwrap();
        let mut params = l1.parameters();
        params.extend(l2.parameters());
        let mut opt = Adam::new(params, AdamConfig::adamw(1e-2, 0.01));
        for _ in 0..20 {
            opt.zero_grad();
            let loss = l2
                .forward(&l1.forward(&x).unwrap().relu().unwrap())
                .unwrap()
                .cross_entropy(&y, None)
                .unwrap();
            loss.backward().unwrap();
            opt.step().unwrap();
        }
        l2.dense_weight().unwrap().to_vec_f32().unwrap()
    };
    let (a, b) = (train(42), train(42));
    assert_eq!(
        a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_ne!(a, train(43));
}
