//! `kindling train lm`: pretraining a LLaMA- or GPT-2-architecture language
//! model with a BPE (or character) tokenizer, on the one training loop.

use crate::common::{CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use crate::train_options::{self, LmLoopArgs, PresetArgs};
use clap::Args;
use kindling_train::lm_run::{self, LmTrainOptions};
use serde::Serialize;
use serde_json::json;

/// The preset `train lm` starts from unless told otherwise.
const LM_PRESET: &str = "shakespeare-cpu-modern";

fn lm_preset_values() -> serde_json::Value {
    serde_json::to_value(LmTrainOptions::shakespeare_cpu_modern()).unwrap_or_default()
}

#[derive(Args)]
#[command(
    mut_arg("out", |a| a.required(false).default_value("runs/lm")),
    mut_arg("preset", |a| a.help(
        "Start from a named preset: shakespeare-cpu-modern (nanoGPT's CPU run, same iterations, \
         batch, block and no more parameters, with a LLaMA block, QK-norm and a warmup-stable-decay \
         schedule, character tokens: val loss 1.625, mean of seeds 1337-1339, vs 1.905 for \
         train gpt --preset shakespeare-cpu); --config and flags override it \
         [default: shakespeare-cpu-modern]"
    )),
    mut_args(|a| train_options::show_preset_value(a, &lm_preset_values(), LM_PRESET))
)]
pub struct TrainLm {
    #[command(flatten)]
    pub preset: PresetArgs,
    #[command(flatten)]
    pub common: LmLoopArgs,
    #[command(flatten)]
    pub lm: LmOnlyArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub run: RunDirArgs,
    /// Stop after N iterations of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    #[command(flatten)]
    pub json: JsonArg,
}

/// The options only `train lm` has.
#[derive(Args, Clone, Debug, Serialize)]
pub struct LmOnlyArgs {
    /// Architecture: llama (RMSNorm, RoPE, SwiGLU, GQA) or gpt2 (LayerNorm, learned positions, GELU).
    #[arg(long)]
    pub arch: Option<String>,
    /// Tokenizer: a tokenizer.json, GPT-2 folder, .tiktoken file, GGUF, a name
    /// (gpt2, cl100k_base, ...; `kindling data fetch tokenizers`), or `char`.
    #[arg(long, value_name = "SPEC")]
    pub tokenizer: Option<String>,
    /// Key/value heads for grouped-query attention (llama; 0 = --n-head).
    #[arg(long)]
    pub n_kv_head: Option<usize>,
    /// MLP width (0 = 4 x n-embd for gpt2, 8/3 x n-embd rounded up to 8 for llama).
    #[arg(long)]
    pub intermediate: Option<usize>,
    /// Adam's second-moment decay.
    #[arg(long)]
    pub beta2: Option<f32>,
    /// Share the output head with the token embedding: true or false.
    #[arg(long)]
    pub tie_weights: Option<bool>,
    /// RoPE base (llama).
    #[arg(long)]
    pub rope_theta: Option<f64>,
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
}

impl TrainLm {
    fn options(&self) -> CliResult<LmTrainOptions> {
        let mut config = match &self.preset.config {
            Some(path) => train_options::read_config(path)?,
            None => Default::default(),
        };
        let name = train_options::preset_name(&self.preset, &mut config, LM_PRESET)?;
        // --resume starts from the run's own settings; the file and flags
        // given change them (only --max-iters may: the library names any
        // other difference).
        let preset = match crate::common::resumed_options(self.run.resume, &self.run.out)? {
            Some(o) => o,
            None => LmTrainOptions::preset(&name)?,
        };
        let mut flags = train_options::given(&self.common);
        flags.extend(train_options::given(&self.lm));
        let (mut o, set) =
            train_options::layer(&preset, &config, self.preset.config.as_deref(), &flags)?;
        // The preset's QK-norm is for character-level LLaMA runs: GPT-2 has no
        // place for it and a BPE run's hf/ folder (a transformers LLaMA) cannot hold it.
        let qk_norm_given = set.iter().any(|k| k == "qk_norm");
        if !qk_norm_given && o.qk_norm && (o.arch != "llama" || o.tokenizer != "char") {
            o.qk_norm = false;
            eprintln!("note: QK-norm off (the preset's QK-norm applies to --arch llama with --tokenizer char)");
        }
        o.validate()?;
        Ok(o)
    }
}

pub fn train(args: TrainLm) -> CliResult<()> {
    let opts = args.options()?;
    args.threads.apply()?;
    let out = Report::new(args.json.enabled);
    let text = kindling_train::corpus::load(&opts.data)?;
    eprintln!(
        "training a {} language model on `{}` ({} tokens) with {} threads; run directory {}",
        opts.arch,
        opts.data,
        opts.tokenizer,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let o = lm_run::train(
        &opts,
        &text,
        &args.run.out,
        args.run.mode(),
        kindling_train::trainer::StopWhen {
            after: args.interrupt_after,
            flag: Some(crate::stop::on_signals()),
        },
        &crate::common::log_line,
    )?;
    let speed = if o.steps_trained > 0 {
        format!(
            "{:.1} ms/iter, {} tokens/s",
            o.ms_per_iter,
            kindling_train::progress::rate(o.tokens_per_sec as f64)
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
            args.run.out.display()
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
        "run_dir": args.run.out,
        "hf_dir": o.hf_dir,
    }));
    Ok(())
}
