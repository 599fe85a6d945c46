//! `kindling attack fgsm` (adversarial examples against a trained LeNet-5)
//! and `kindling inspect lenet5` (what every layer sees for one image).

use crate::common::{checkpoint_path, CliResult, JsonArg, MnistDirArg, ResultsDirArgs, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kindling_data::{Mnist, Normalize};
use kindling_tensor::{no_grad, Tensor};
use kindling_train::lenet5_run;
use kindling_train::run_dir::RunDir;
use kindling_train::{fgsm, plot};
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Subcommand)]
pub enum Attack {
    /// Fast gradient sign method (Goodfellow et al. 2015) on the MNIST test
    /// set: x_adv = clamp(x + eps * sign(grad_x loss), 0, 1), accuracy at
    /// each epsilon, and a PNG of examples.
    Fgsm(Fgsm),
}

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/fgsm")))]
pub struct Fgsm {
    /// Run directory (or model.safetensors) of a trained LeNet-5.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// Epsilons in pixel units of the [0, 1] image, each in (0, 1], comma-separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "0.05,0.1,0.2,0.3",
        allow_negative_numbers = true
    )]
    pub eps: Vec<f32>,
    /// Craft the examples on this other checkpoint's gradient and test them on
    /// --ckpt (a transfer attack: does robustness survive when the attacker
    /// cannot see the model?) [default: --ckpt itself].
    #[arg(long, value_name = "CKPT")]
    pub craft_on: Option<PathBuf>,
    #[command(flatten)]
    pub run: ResultsDirArgs,
    /// Attack only the first N test images (quick runs and tests) [default: all 10,000].
    #[arg(long)]
    pub limit: Option<usize>,
    #[command(flatten)]
    pub data: MnistDirArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// ε as written (0.05, not the f32's 0.05000000074505806).
fn eps_json(eps: f32) -> f64 {
    eps.to_string().parse().unwrap_or(eps as f64)
}

pub fn attack(cmd: Attack) -> CliResult<()> {
    match cmd {
        Attack::Fgsm(a) => fgsm_cmd(a),
    }
}

fn fgsm_cmd(args: Fgsm) -> CliResult<()> {
    for &e in &args.eps {
        fgsm::check_eps(e).map_err(|err| anyhow::anyhow!("--eps: {err}"))?;
    }
    if args.eps.is_empty() {
        bail!("--eps: give at least one epsilon");
    }
    args.threads.apply()?;
    let path = checkpoint_path("--ckpt", &args.ckpt, lenet5_run::CHECKPOINT)?;
    let (model, ck) = lenet5_run::load_model(&path)?;
    let source = match &args.craft_on {
        Some(p) => {
            // The message names the flag the path came from.
            let p = checkpoint_path("--craft-on", p, lenet5_run::CHECKPOINT)?;
            let (m, _) = lenet5_run::load_model(&p).context("--craft-on")?;
            Some((p, m))
        }
        None => None,
    };
    let dir = args.data.dir.clone().unwrap_or_else(Mnist::default_dir);
    let (_, _, mut test) = Mnist::load(&dir)?.split();
    if let Some(n) = args.limit {
        if n == 0 {
            bail!("--limit must be at least 1");
        }
        test = test.slice(0..n.min(test.len()))?;
    }
    let run = RunDir::start(&args.run.out, args.run.mode())?;
    let crafted_on = source.as_ref().map_or(path.clone(), |(p, _)| p.clone());
    eprintln!(
        "FGSM against {} (gradient of {}) on {} test images, eps {:?}, {} threads",
        path.display(),
        crafted_on.display(),
        test.len(),
        args.eps,
        kindling_tensor::num_threads()
    );
    let started = Instant::now();
    let source_model = source.as_ref().map(|(_, m)| m as &dyn kindling_nn::Module);
    let r = fgsm::attack(&model, source_model, &test, &args.eps, Normalize::MNIST)?;
    let png = run.file("examples.png");
    let title = if crafted_on == path {
        format!("FGSM against {}", path.display())
    } else {
        format!(
            "FGSM transfer: examples crafted on {}, tested on {}",
            crafted_on.display(),
            path.display()
        )
    };
    plot::adversarial::draw_examples(&png, &title, &args.eps, &r.examples, test.rows())
        .map_err(|e| anyhow::anyhow!("{}: {e}", png.display()))?;

    let mut by_eps = Map::new();
    for (e, a) in &r.accuracy_by_eps {
        by_eps.insert(e.to_string(), json!(a));
    }
    let examples: Vec<Value> = r
        .examples
        .iter()
        .map(|ex| {
            json!({
                "label": ex.label,
                "clean": { "digit": ex.clean.0, "confidence": ex.clean.1 },
                "adversarial": args.eps.iter().zip(&ex.attacked).map(|(e, (_, (d, p)))| {
                    json!({ "eps": eps_json(*e), "digit": d, "confidence": p })
                }).collect::<Vec<_>>(),
            })
        })
        .collect();
    let result = json!({
        "checkpoint": path,
        "crafted_on": crafted_on,
        "trained_adversarial_eps": ck.config["options"].get("adversarial_eps").cloned().unwrap_or(Value::Null),
        "test_images": r.images,
        "clean_accuracy": r.clean_accuracy,
        "accuracy_by_eps": by_eps,
        "examples": examples,
        "seconds": started.elapsed().as_secs_f32(),
        "run_dir": args.run.out,
    });
    run.write_json("results.json", &result)?;

    let out = Report::new(args.json.enabled);
    out.line(format!(
        "FGSM on {} MNIST test images ({}, gradient of {}):",
        r.images,
        path.display(),
        crafted_on.display()
    ));
    out.line(format!(
        "  clean          accuracy {:6.2}%",
        r.clean_accuracy * 100.0
    ));
    for (e, a) in &r.accuracy_by_eps {
        out.line(format!("  eps = {e:<6}   accuracy {:6.2}%", a * 100.0));
    }
    out.line(format!(
        "wrote {} and {}",
        run.file("results.json").display(),
        png.display()
    ));
    out.finish(result);
    Ok(())
}

#[derive(Subcommand)]
pub enum Inspect {
    /// Every layer's activations for one image as a labelled grid (input, C1
    /// kernels and maps, S2, C3, S4, bar charts of C5, F6 and the output).
    Lenet5(InspectLenet5),
}

#[derive(Args)]
pub struct InspectLenet5 {
    /// Run directory (or model.safetensors) of a trained LeNet-5.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// A PNG or JPEG of one digit (any size, colour or polarity; prepared as `predict` does).
    pub image: PathBuf,
    /// The PNG to write (a directory gets maps.png inside).
    #[arg(long, default_value = "runs/inspect/maps.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn inspect(cmd: Inspect) -> CliResult<()> {
    let Inspect::Lenet5(args) = cmd;
    let path = checkpoint_path("--ckpt", &args.ckpt, lenet5_run::CHECKPOINT)?;
    let (model, _) = lenet5_run::load_model(&path)?;
    let digit = kindling_data::load_digit(&args.image)?;
    let mut out_path = args.out.clone();
    if out_path.is_dir() {
        out_path = out_path.join("maps.png");
    }
    if out_path.extension().and_then(|e| e.to_str()) != Some("png") {
        bail!("--out {}: must be a .png file", args.out.display());
    }
    if let Some(parent) = out_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let norm = Normalize::MNIST;
    let x: Vec<f32> = digit
        .pixels
        .iter()
        .map(|&p| (p - norm.mean) / norm.std)
        .collect();
    let x = Tensor::from_vec(x, &[1, 1, 28, 28])?;
    let acts = {
        let _g = no_grad();
        model.forward_all(&x)?
    };
    let probs = acts.logits.softmax(-1)?.to_vec_f32()?;
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(i, _)| i)
        .unwrap_or(0);
    let name = args
        .image
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let title = format!(
        "LeNet-5 on {name}: predicted {best} ({:.1}%)",
        probs[best] * 100.0
    );
    plot::feature_maps::draw(&out_path, &title, &model, &digit.pixels, &acts)
        .map_err(|e| anyhow::anyhow!("{}: {e}", out_path.display()))?;
    let layers: Vec<Value> = [
        ("C1", &acts.c1),
        ("S2", &acts.s2),
        ("C3", &acts.c3),
        ("S4", &acts.s4),
        ("C5", &acts.c5),
        ("F6", &acts.f6),
    ]
    .iter()
    .map(|(n, t)| -> CliResult<Value> {
        let v = t.to_vec_f32()?;
        let max = v.iter().fold(f32::MIN, |a, &b| a.max(b));
        let active = v.iter().filter(|&&b| b > 0.0).count() as f32 / v.len().max(1) as f32;
        Ok(json!({ "layer": n, "shape": t.shape(), "max": max, "fraction_active": active }))
    })
    .collect::<CliResult<_>>()?;
    let out = Report::new(args.json.enabled);
    out.line(format!(
        "{}: {best} ({:.1}%)",
        args.image.display(),
        probs[best] * 100.0
    ));
    out.line(format!("wrote {}", out_path.display()));
    out.finish(json!({
        "image": args.image,
        "digit": best,
        "probabilities": probs,
        "layers": layers,
        "out": out_path,
    }));
    Ok(())
}
