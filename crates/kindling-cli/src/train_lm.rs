//! `kindling train lm`: pretraining a LLaMA- or GPT-2-architecture language
//! model with a BPE (or character) tokenizer, on the one training loop.

use crate::report::{CliResult, Report};
use clap::Args;
use kindling_train::lm_run::{self, LmTrainOptions};
use serde_json::json;
use std::path::PathBuf;

#[derive(Args)]
pub struct TrainLm {
    /// Start from a named preset; flags below override it. shakespeare-cpu-modern:
    /// nanoGPT's CPU run (same iterations, batch, block, no more parameters) with a
    /// LLaMA block, QK-norm and a warmup-stable-decay schedule, character tokens:
    /// val loss 1.625 (mean of seeds 1337-1339) vs 1.905 for train gpt --preset shakespeare-cpu.
    #[arg(long, default_value = "shakespeare-cpu-modern")]
    pub preset: String,
    /// Architecture: llama (RMSNorm, RoPE, SwiGLU, GQA) or gpt2 (LayerNorm, learned positions, GELU).
    #[arg(long)]
    pub arch: Option<String>,
    /// Tokenizer: a tokenizer.json, GPT-2 folder, .tiktoken file, GGUF, a name
    /// (gpt2, cl100k_base, ...; `kindling data fetch tokenizers`), or `char`.
    #[arg(long)]
    pub tokenizer: Option<String>,
    /// Corpus: shakespeare, tang-poems (after `kindling data fetch tang-poems`), or a UTF-8 text file.
    #[arg(long)]
    pub data: Option<String>,
    /// Transformer blocks.
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Attention heads.
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Key/value heads for grouped-query attention (llama; 0 = --n-head).
    #[arg(long)]
    pub n_kv_head: Option<usize>,
    /// Width of the residual stream.
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// MLP width (0 = 4 x n-embd for gpt2, 8/3 x n-embd rounded up to 8 for llama).
    #[arg(long)]
    pub intermediate: Option<usize>,
    /// Tokens of context per training window (also the model's context).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Windows per step.
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer steps.
    #[arg(long)]
    pub max_iters: Option<usize>,
    /// Peak learning rate.
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning rate at the end of the cosine decay.
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Steps of linear warmup.
    #[arg(long)]
    pub warmup_iters: Option<usize>,
    /// AdamW decoupled weight decay on matrices.
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Adam's second-moment decay.
    #[arg(long)]
    pub beta2: Option<f32>,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Estimate train/validation loss every N steps.
    #[arg(long)]
    pub eval_interval: Option<usize>,
    /// Batches per loss estimate.
    #[arg(long)]
    pub eval_iters: Option<usize>,
    /// Seed for initialization and batches.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Share the output head with the token embedding: true or false.
    #[arg(long)]
    pub tie_weights: Option<bool>,
    /// RoPE base (llama).
    #[arg(long)]
    pub rope_theta: Option<f64>,
    /// Micro-batches per optimizer step (gradient accumulation).
    #[arg(long)]
    pub accum_steps: Option<usize>,
    /// Learning-rate schedule after warmup: cosine (to --min-lr) or wsd
    /// (constant, then a linear cooldown to --min-lr over the last --cooldown-frac).
    #[arg(long)]
    pub schedule: Option<String>,
    /// Fraction of the iterations spent in the linear cooldown (--schedule wsd).
    #[arg(long)]
    pub cooldown_frac: Option<f32>,
    /// Start the residual output projections (o_proj, down_proj; c_proj for gpt2) at zero: true or false.
    #[arg(long)]
    pub zero_init_residual: Option<bool>,
    /// RMSNorm on each head's queries and keys before RoPE: true or false. Llama with
    /// --tokenizer char only (transformers' LLaMA has no QK-norm, so a BPE run's hf/
    /// folder could not hold it); the preset's QK-norm is off with --arch gpt2 or a BPE tokenizer.
    #[arg(long)]
    pub qk_norm: Option<bool>,
    /// CPU threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run directory.
    #[arg(long, default_value = "runs/lm")]
    pub out: PathBuf,
    /// Continue the run in --out.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds a run: the old run is moved aside (DIR.1, DIR.2, ...), not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Stop after N iterations of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    /// Print one JSON object as the last line.
    #[arg(long)]
    pub json: bool,
}

impl TrainLm {
    fn options(&self) -> CliResult<LmTrainOptions> {
        // --resume starts from the run's own settings; flags given change them
        // (only --max-iters may: the library names any other difference).
        let mut o = match crate::report::resumed_options(self.resume, &self.out)? {
            Some(o) => o,
            None => LmTrainOptions::preset(&self.preset).map_err(|e| e.to_string())?,
        };
        macro_rules! set {
            ($($f:ident),*) => {$( if let Some(v) = self.$f.clone() { o.$f = v; } )*};
        }
        set!(
            arch,
            tokenizer,
            data,
            n_layer,
            n_head,
            n_kv_head,
            n_embd,
            intermediate,
            block_size,
            batch_size,
            max_iters,
            lr,
            min_lr,
            warmup_iters,
            weight_decay,
            beta2,
            grad_clip,
            eval_interval,
            eval_iters,
            seed,
            tie_weights,
            rope_theta,
            accum_steps,
            schedule,
            cooldown_frac,
            zero_init_residual,
            qk_norm
        );
        // The preset's QK-norm is for character-level LLaMA runs: GPT-2 has no
        // place for it and a BPE run's hf/ folder (a transformers LLaMA) cannot hold it.
        if self.qk_norm.is_none() && o.qk_norm && (o.arch != "llama" || o.tokenizer != "char") {
            o.qk_norm = false;
            eprintln!("note: QK-norm off (the preset's QK-norm applies to --arch llama with --tokenizer char)");
        }
        o.validate().map_err(|e| e.to_string())?;
        Ok(o)
    }
}

pub fn train(args: TrainLm) -> CliResult<()> {
    let opts = args.options()?;
    if let Some(n) = args.threads {
        if n == 0 {
            return Err("--threads must be at least 1".into());
        }
        kindling_tensor::set_num_threads(n)?;
    }
    let out = Report::new(args.json);
    let text = kindling_train::corpus::load(&opts.data).map_err(|e| e.to_string())?;
    eprintln!(
        "training a {} language model on `{}` ({} tokens) with {} threads; run directory {}",
        opts.arch,
        opts.data,
        opts.tokenizer,
        kindling_tensor::num_threads(),
        args.out.display()
    );
    let o = lm_run::train(
        &opts,
        &text,
        &args.out,
        crate::report::run_mode(args.resume, args.force),
        kindling_train::trainer::StopWhen {
            after: args.interrupt_after,
            flag: Some(crate::stop::on_signals()),
        },
        &|l| eprintln!("{l}"),
    )
    .map_err(|e| e.to_string())?;
    let speed = if o.steps_trained > 0 {
        format!(
            "{:.1} ms/iter, {:.0} tokens/s",
            o.ms_per_iter, o.tokens_per_sec
        )
    } else {
        "already finished, nothing trained now".into()
    };
    out.line(format!(
        "{} ({} parameters, vocabulary {}), {} iterations: train loss {:.4}, val loss {:.4}; {speed}",
        opts.arch, o.params, o.vocab_size, opts.max_iters, o.train_loss, o.val_loss
    ));
    if let Some(hf) = &o.hf_dir {
        out.line(format!(
            "  Hugging Face folder {} (loads in transformers; --model {} works)",
            hf.display(),
            args.out.display()
        ));
    }
    out.finish(json!({
        "params": o.params,
        "iters": opts.max_iters,
        "train_loss": o.train_loss,
        "val_loss": o.val_loss,
        "ms_per_iter": o.ms_per_iter,
        "tokens_per_sec": o.tokens_per_sec,
        "vocab_size": o.vocab_size,
        "train_tokens": o.train_tokens,
        "run_dir": args.out,
        "hf_dir": o.hf_dir,
    }));
    Ok(())
}
