//! `kindling demo ...`: the first chapter of the story, each demo telling in
//! words what the model learned.

use crate::common::{CliResult, JsonArg};
use crate::report::Report;
use anyhow::bail;
use clap::Subcommand;
use kindling_models::{mlp, perceptron, polyfit};
use kindling_nn::Module;
use kindling_train::plot::{save_panels, Panel, Series};
use plotters::style::{BLUE, GREEN, RED};
use serde_json::json;
use std::path::PathBuf;

#[derive(Subcommand)]
pub enum Demo {
    /// Rosenblatt's perceptron learns "is it an apple?", then fails at XOR.
    Perceptron {
        /// Learning rate of the perceptron rule.
        #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
        lr: f32,
        /// Passes over the examples at most.
        #[arg(long, default_value_t = 100)]
        max_epochs: usize,
        #[command(flatten)]
        json: JsonArg,
    },
    /// A 2-N-2 multi-layer perceptron (tanh hidden units, softmax output) learns XOR by backpropagation.
    Xor {
        /// Hidden units N of the 2-N-2 network (two inputs, N tanh units, a two-way softmax); 2 is the fewest that can learn XOR.
        #[arg(long, default_value_t = 4)]
        hidden: usize,
        /// Learning rate of gradient descent (momentum 0.9).
        #[arg(long, default_value_t = 0.1, allow_negative_numbers = true)]
        lr: f32,
        /// Gradient-descent steps at most (training stops early once the loss is below 0.01).
        #[arg(long, default_value_t = 5000)]
        max_steps: usize,
        /// Seed for the initial weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Six knobs: fit a degree-5 polynomial by gradient descent.
    Polyfit {
        /// Number of noisy samples.
        #[arg(long, default_value_t = 40)]
        samples: usize,
        /// Standard deviation of the noise.
        #[arg(long, default_value_t = 0.1)]
        noise: f32,
        /// Adam steps of gradient descent.
        #[arg(long, default_value_t = 4000)]
        steps: usize,
        /// Adam's learning rate.
        #[arg(long, default_value_t = 0.05)]
        lr: f32,
        /// Seed for the noisy samples.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Also draw the fitted curve and the loss curve to this PNG [default: no picture].
        #[arg(long)]
        plot: Option<PathBuf>,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub fn run(demo: Demo) -> CliResult<()> {
    match demo {
        Demo::Perceptron {
            lr,
            max_epochs,
            json,
        } => perceptron_demo(lr, max_epochs, json.enabled),
        Demo::Xor {
            hidden,
            lr,
            max_steps,
            seed,
            json,
        } => xor_demo(hidden, lr, max_steps, seed, json.enabled),
        Demo::Polyfit {
            samples,
            noise,
            steps,
            lr,
            seed,
            plot,
            json,
        } => polyfit_demo(samples, noise, steps, lr, seed, plot, json.enabled),
    }
}

fn check_positive(flag: &str, v: f32) -> CliResult<()> {
    if !(v.is_finite() && v > 0.0) {
        bail!("{flag} must be a positive number, got {v}");
    }
    Ok(())
}

fn perceptron_demo(lr: f32, max_epochs: usize, json: bool) -> CliResult<()> {
    check_positive("--lr", lr)?;
    let out = Report::new(json);
    let (x, t, names) = perceptron::fruit_dataset()?;
    let mut p = perceptron::Perceptron::new(x.shape()[1]);
    let run = p.train(&x, &t, lr, max_epochs)?;
    let apple_accuracy = p.accuracy(&x, &t)?;
    out.line("Part 1: is it an apple? A single threshold neuron, y = step(w·x + b).");
    out.line(format!(
        "  {} after {}; mistakes per epoch: {:?}",
        if run.converged {
            "Converged"
        } else {
            "Did not converge"
        },
        kindling_train::progress::count(run.epochs, "epoch"),
        run.errors_per_epoch
    ));
    let w = p.weights.to_vec_f32()?;
    for (name, wi) in perceptron::FRUIT_FEATURES.iter().zip(&w) {
        let says = if *wi > 0.0 {
            "for apple"
        } else if *wi < 0.0 {
            "against apple"
        } else {
            "ignored"
        };
        out.line(format!("  weight of {name:<12} {wi:+.3}  ({says})"));
    }
    out.line(format!("  bias {:+.3}", p.bias));
    let pred = p.predict(&x)?.to_vec_f32()?;
    for (i, name) in names.iter().enumerate() {
        out.line(format!(
            "  {name:<12} → {}",
            if pred[i] > 0.5 {
                "apple"
            } else {
                "not an apple"
            }
        ));
    }
    out.line(format!(
        "  accuracy on the table: {:.0}%",
        apple_accuracy * 100.0
    ));

    let (xx, xt) = perceptron::xor_dataset()?;
    let mut px = perceptron::Perceptron::new(2);
    let xrun = px.train(&xx, &xt, lr, max_epochs)?;
    let xor_accuracy = px.accuracy(&xx, &xt)?;
    out.line("Part 2: the same neuron on XOR (output 1 when exactly one input is 1).");
    out.line(format!(
        "  after {} it still makes mistakes every epoch (last: {}); accuracy {:.0}%.",
        kindling_train::progress::count(xrun.epochs, "epoch"),
        xrun.errors_per_epoch.last().copied().unwrap_or(0),
        xor_accuracy * 100.0
    ));
    out.line("  No straight line puts (0,1),(1,0) on one side and (0,0),(1,1) on the other,");
    out.line("  so one neuron can get at most 3 of the 4 cases right. A hidden layer fixes that:");
    out.line("  try `kindling demo xor`.");
    out.finish(json!({
        "apple_accuracy": apple_accuracy,
        "apple_epochs": run.epochs,
        "apple_converged": run.converged,
        "xor_accuracy": xor_accuracy,
        "xor_epochs": xrun.epochs,
        "xor_converged": xrun.converged,
    }));
    Ok(())
}

fn xor_demo(hidden: usize, lr: f32, max_steps: usize, seed: u64, json: bool) -> CliResult<()> {
    check_positive("--lr", lr)?;
    if hidden == 0 {
        bail!("--hidden must be at least 1");
    }
    let out = Report::new(json);
    let run = mlp::train_xor(hidden, lr, max_steps, 0.01, seed)?;
    out.line(format!(
        "A 2-{hidden}-2 network (tanh hidden units, softmax output) trained by backpropagation."
    ));
    out.line(format!(
        "  {} steps of gradient descent (momentum 0.9, lr {lr}); final loss {:.4}; accuracy {:.0}%",
        run.steps,
        run.final_loss,
        run.accuracy * 100.0
    ));
    if run.accuracy < 1.0 {
        out.line(
            "  Stuck in a local minimum: with so few hidden units some starting weights never",
        );
        out.line("  find the solution. Try another --seed or more --hidden units.");
    }
    let (x, _) = perceptron::xor_dataset()?;
    let h = run.model.hidden_activations(&x)?.to_vec_f32()?;
    let w = run
        .model
        .hidden
        .dense_weight()
        .ok_or_else(|| {
            anyhow::anyhow!("demo xor: the hidden layer's weight is not a dense f32 tensor")
        })?
        .to_vec_f32()?;
    let b = run
        .model
        .hidden
        .bias
        .as_ref()
        .map(|b| b.to_vec_f32())
        .transpose()?
        .unwrap_or_default();
    let cases = ["(0,0)", "(0,1)", "(1,0)", "(1,1)"];
    out.line("  What each hidden unit learned (it fires when its output is > 0):");
    for j in 0..hidden {
        let fires: Vec<&str> = (0..4)
            .filter(|&i| h[i * hidden + j] > 0.0)
            .map(|i| cases[i])
            .collect();
        let gate = match fires.as_slice() {
            ["(0,1)", "(1,0)", "(1,1)"] => " — an OR gate",
            ["(0,0)", "(0,1)", "(1,0)"] => " — a NAND gate",
            ["(1,1)"] => " — an AND gate",
            ["(0,0)"] => " — a NOR gate",
            ["(0,1)", "(1,0)"] => " — XOR itself",
            ["(0,0)", "(1,1)"] => " — XNOR",
            _ => "",
        };
        out.line(format!(
            "    h{j}: w = ({:+.2}, {:+.2}), b = {:+.2}; fires for {}{gate}",
            w[j * 2],
            w[j * 2 + 1],
            b[j],
            if fires.is_empty() {
                "none".to_string()
            } else {
                fires.join(" ")
            }
        ));
    }
    let probs = run.model.forward(&x)?.softmax(-1)?.to_vec_f32()?;
    for (i, c) in cases.iter().enumerate() {
        out.line(format!(
            "  XOR{c} → {} (p = {:.3})",
            (probs[i * 2 + 1] > 0.5) as u8,
            probs[i * 2 + 1]
        ));
    }
    out.line(format!("  parameters: {}", run.model.num_parameters()));
    out.finish(json!({
        "accuracy": run.accuracy,
        "steps": run.steps,
        "final_loss": run.final_loss,
        "hidden": hidden,
    }));
    Ok(())
}

fn polyfit_demo(
    samples: usize,
    noise: f32,
    steps: usize,
    lr: f32,
    seed: u64,
    plot: Option<PathBuf>,
    json: bool,
) -> CliResult<()> {
    check_positive("--lr", lr)?;
    if samples < polyfit::DEGREE + 1 {
        bail!(
            "--samples must be at least {} to pin down six coefficients",
            polyfit::DEGREE + 1
        );
    }
    if !(noise.is_finite() && noise >= 0.0) {
        bail!("--noise must be zero or positive, got {noise}");
    }
    let out = Report::new(json);
    let data = polyfit::noisy_samples(samples, noise, seed);
    let exact = polyfit::least_squares(&data);
    let gd = polyfit::fit_by_gradient_descent(&data, steps, lr)?;
    let (gd_loss, lstsq_loss) = (polyfit::mse(&gd.coefs, &data), polyfit::mse(&exact, &data));
    let max_abs_coef_diff = gd
        .coefs
        .iter()
        .zip(&exact)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    out.line(format!(
        "Six knobs: y = c0 + c1·x + … + c5·x⁵ fitted to {samples} noisy samples of sin(πx)."
    ));
    out.line(format!(
        "  gradient descent ({steps} Adam steps): mean squared error {gd_loss:.6}"
    ));
    out.line(format!(
        "  closed-form least squares:          mean squared error {lstsq_loss:.6}"
    ));
    out.line("  knob   gradient descent   least squares");
    for (i, (a, b)) in gd.coefs.iter().zip(&exact).enumerate() {
        out.line(format!("  c{i}     {a:+12.5}      {b:+12.5}"));
    }
    out.line(format!(
        "  largest difference between the knobs: {max_abs_coef_diff:.5}"
    ));
    if let Some(path) = &plot {
        let xs: Vec<f32> = (0..=200).map(|i| -1.0 + i as f32 / 100.0).collect();
        let fit = Panel {
            title: "Degree-5 fit by gradient descent",
            x_label: "x",
            y_label: "y",
            series: vec![
                Series {
                    label: "samples",
                    points: data.x.iter().copied().zip(data.y.iter().copied()).collect(),
                    color: BLUE,
                    dots: true,
                },
                Series {
                    label: "sin(πx)",
                    points: xs.iter().map(|&x| (x, polyfit::true_curve(x))).collect(),
                    color: GREEN,
                    dots: false,
                },
                Series {
                    label: "fitted",
                    points: xs
                        .iter()
                        .map(|&x| (x, polyfit::eval_poly(&gd.coefs, x)))
                        .collect(),
                    color: RED,
                    dots: false,
                },
            ],
            log_y: false,
        };
        let loss = Panel {
            title: "Training loss",
            x_label: "step",
            y_label: "mean squared error",
            series: vec![Series {
                label: "loss",
                points: gd
                    .losses
                    .iter()
                    .enumerate()
                    .map(|(i, &l)| (i as f32, l))
                    .collect(),
                color: RED,
                dots: false,
            }],
            log_y: true,
        };
        save_panels(path, &[fit, loss]).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        out.line(format!("  wrote {}", path.display()));
    }
    out.finish(json!({
        "gd_loss": gd_loss,
        "lstsq_loss": lstsq_loss,
        "max_abs_coef_diff": max_abs_coef_diff,
        "gd_coefs": gd.coefs,
        "lstsq_coefs": exact,
        "steps": steps,
    }));
    Ok(())
}
