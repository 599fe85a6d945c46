//! `kindling lab scaling`: fit Chinchilla's L(N, D) to a family of small
//! language models, predict a larger run before training it, then train it
//! and report the error (docs/lab-2.md).

use crate::common::{CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use clap::Args;
use kindling_train::scaling::{
    self, parse_count, parse_size, parse_sizes, parse_tokens, ScalingOptions,
};
use serde_json::json;

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/scaling")))]
pub struct Scaling {
    /// The corpus: alpaca (English, 18.5 million characters; `kindling data fetch alpaca`), shakespeare, tang-poems or a UTF-8 text file.
    #[arg(long, default_value = "alpaca")]
    pub data: String,
    /// The family: layers x width, comma-separated (at least 2 sizes; the study uses 5 or more).
    #[arg(long, default_value = "2x32,2x48,3x64,3x96,4x128")]
    pub sizes: String,
    /// Token budgets every size is trained on (k and M allowed).
    #[arg(long, default_value = "0.5M,1M,2M,4M")]
    pub tokens: String,
    /// The larger run to predict before training it: LAYERSxWIDTH:TOKENS.
    #[arg(long, default_value = "5x160:4M")]
    pub predict: String,
    /// Width of one attention head (heads = width / this).
    #[arg(long, default_value_t = 16)]
    pub head_dim: usize,
    /// Sequences per step.
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Characters per sequence.
    #[arg(long, default_value_t = 128)]
    pub block_size: usize,
    /// Peak learning rate (AdamW; warmup, then cosine to a tenth over each run).
    #[arg(long, default_value_t = 2e-3)]
    pub lr: f32,
    /// Batches in each run's final validation estimate.
    #[arg(long, default_value_t = 50)]
    pub eval_iters: usize,
    /// Seeds every run's weights and batches.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn scaling(a: Scaling) -> CliResult<()> {
    let (psize, ptokens) = a.predict.split_once(':').ok_or_else(|| {
        anyhow::anyhow!(
            "--predict `{}`: give LAYERSxWIDTH:TOKENS, e.g. 5x160:4M",
            a.predict
        )
    })?;
    let opts = ScalingOptions {
        data: a.data.clone(),
        sizes: parse_sizes(&a.sizes)?,
        tokens: parse_tokens(&a.tokens)?,
        predict: parse_size(psize.trim(), "predict")?,
        predict_tokens: parse_count(ptokens.trim(), "predict")?,
        head_dim: a.head_dim,
        batch_size: a.batch_size,
        block_size: a.block_size,
        lr: a.lr,
        eval_iters: a.eval_iters,
        seed: a.seed,
    };
    opts.validate()?;
    a.threads.apply()?;
    let text = kindling_train::corpus::load(&a.data)?;
    let report = Report::new(a.json.enabled);
    eprintln!(
        "scaling study on `{}` ({} characters): sizes {}, budgets {}, then {} predicted; {} threads; run directory {}",
        a.data,
        text.chars().count(),
        a.sizes,
        a.tokens,
        a.predict,
        kindling_tensor::num_threads(),
        a.run.out.display()
    );
    let o = scaling::run(
        &opts,
        &text,
        &a.run.out,
        a.run.mode(),
        &crate::common::log_line,
    )?;
    report.line("size      N (non-embedding)   tokens      C = 6ND     val loss   fitted");
    for p in &o.points {
        report.line(format!(
            "{:<9} {:>10} {:>15} {:>12.3e} {:>10.4} {:>8.4}",
            format!("{}x{}", p.n_layer, p.n_embd),
            p.params,
            p.tokens,
            p.flops,
            p.loss,
            o.law.loss(p.params as f64, p.tokens as f64)
        ));
    }
    let l = &o.law;
    report.line(format!(
        "fit: L(N, D) = {:.4} + {:.4e} / N^{:.4} + {:.4e} / D^{:.4}  (rms relative error on the family {:.2}%)",
        l.e, l.a, l.alpha, l.b, l.beta, o.fit_rms_relative * 100.0
    ));
    let p = &o.prediction;
    report.line(format!(
        "prediction for {}x{} (N = {}) on {} tokens, written before training it: {:.4}; measured {:.4}; error {:+.2}%",
        p.n_layer,
        p.n_embd,
        p.params,
        p.tokens,
        p.predicted_loss,
        p.actual_loss.unwrap_or(f64::NAN),
        p.error_percent.unwrap_or(f64::NAN)
    ));
    for (c, n, d) in &o.compute_optimal {
        report.line(format!(
            "compute-optimal for C = {c:.3e} FLOPs: N = {n:.0} parameters on D = {d:.0} tokens ({:.1} tokens per parameter)",
            d / n
        ));
    }
    report.line(format!(
        "picture: {}",
        a.run.out.join("scaling.png").display()
    ));
    let mut v = serde_json::to_value(&o)?;
    v["out"] = json!(a.run.out);
    v["compute_optimal"] = json!(o
        .compute_optimal
        .iter()
        .map(|(c, n, d)| json!({ "flops": c, "params": n, "tokens": d }))
        .collect::<Vec<_>>());
    report.finish(v);
    Ok(())
}
