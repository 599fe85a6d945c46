//! `kindling train gpt`, `kindling generate`, `kindling attention`,
//! `kindling bench gpt`.

use crate::lenet::{checkpoint_path, set_threads};
use crate::report::{CliResult, Report};
use clap::Args;
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::sampling::Sampling;
use kindling_nn::Module;
use kindling_tensor::Tensor;
use kindling_train::gpt_run::{self, GptTrainOptions, CHECKPOINT};
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Args)]
pub struct TrainGpt {
    /// Start from a named preset (shakespeare-cpu = nanoGPT's CPU run: val loss 1.901 here at seed 1337, 1.88 in nanoGPT's README; tang-cpu); flags below override it.
    #[arg(long, default_value = "shakespeare-cpu")]
    pub preset: String,
    /// Corpus: shakespeare, tang-poems (after `kindling data fetch tang-poems`), or a UTF-8 text file.
    #[arg(long)]
    pub data: Option<String>,
    /// Transformer blocks (preset: 4).
    #[arg(long)]
    pub n_layer: Option<usize>,
    /// Attention heads (preset: 4).
    #[arg(long)]
    pub n_head: Option<usize>,
    /// Width of the residual stream (preset: 128).
    #[arg(long)]
    pub n_embd: Option<usize>,
    /// Characters of context per training window (preset: 64).
    #[arg(long)]
    pub block_size: Option<usize>,
    /// Windows per step (preset: 12).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Optimizer steps (preset: 2000).
    #[arg(long)]
    pub max_iters: Option<usize>,
    /// Peak learning rate (preset: 1e-3).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Learning rate at the end of the cosine decay (preset: 1e-4).
    #[arg(long)]
    pub min_lr: Option<f32>,
    /// Steps of linear warmup (preset: 100).
    #[arg(long)]
    pub warmup_iters: Option<usize>,
    /// AdamW decoupled weight decay on matrices (preset: 0.1).
    #[arg(long)]
    pub weight_decay: Option<f32>,
    /// Clip the global gradient norm to this (preset: 1.0; 0 = off).
    #[arg(long)]
    pub grad_clip: Option<f32>,
    /// Estimate train/validation loss every N steps (preset: 250).
    #[arg(long)]
    pub eval_interval: Option<usize>,
    /// Batches per loss estimate (preset: 20).
    #[arg(long)]
    pub eval_iters: Option<usize>,
    /// Dropout probability in training (preset: 0).
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Seed for initialization, batches and dropout (preset: 1337).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Give the output head its own weights instead of sharing the token embedding.
    #[arg(long)]
    pub untied: bool,
    /// Biases in the Linear and LayerNorm layers (true or false; the preset decides by default).
    #[arg(long)]
    pub bias: Option<bool>,
    /// Micro-batches of --batch-size per optimizer step (gradient accumulation; default 1).
    #[arg(long)]
    pub accum_steps: Option<usize>,
    /// CPU threads (default: all cores; each takes a shard of every batch).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Run directory (config.json, metrics.jsonl, model.safetensors, curves.png).
    #[arg(long, default_value = "runs/gpt")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds a run: the old run is moved aside (DIR.1, DIR.2, ...), not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
    /// Stop after N iterations of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    /// Print one JSON object (losses, speed, run directory) as the last line.
    #[arg(long)]
    pub json: bool,
}

impl TrainGpt {
    pub fn options(&self) -> CliResult<GptTrainOptions> {
        // --resume starts from the run's own settings; flags given change them
        // (only --max-iters may: the library names any other difference).
        let mut o = match crate::report::resumed_options(self.resume, &self.out)? {
            Some(o) => o,
            None => GptTrainOptions::preset(&self.preset).map_err(|e| e.to_string())?,
        };
        macro_rules! set {
            ($($f:ident),*) => { $( if let Some(v) = self.$f.clone() { o.$f = v; } )* };
        }
        set!(
            data,
            n_layer,
            n_head,
            n_embd,
            block_size,
            batch_size,
            max_iters,
            lr,
            min_lr,
            warmup_iters,
            weight_decay,
            grad_clip,
            eval_interval,
            eval_iters,
            dropout,
            seed,
            bias,
            accum_steps
        );
        if self.untied {
            o.tie_weights = false;
        }
        o.validate().map_err(|e| e.to_string())?;
        Ok(o)
    }
}

pub fn train(args: TrainGpt) -> CliResult<()> {
    let opts = args.options()?;
    set_threads(args.threads)?;
    let out = Report::new(args.json);
    let text = kindling_train::corpus::load(&opts.data).map_err(|e| e.to_string())?;
    eprintln!(
        "training GPT on `{}` with {} threads; run directory {}",
        opts.data,
        kindling_tensor::num_threads(),
        args.out.display()
    );
    let o = gpt_run::train(
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
        "GPT ({} parameters), {} iterations: train loss {:.4}, val loss {:.4}; {speed}",
        o.params, o.iters, o.train_loss, o.val_loss
    ));
    out.line(format!(
        "  checkpoint {}",
        args.out.join(CHECKPOINT).display()
    ));
    out.finish(json!({
        "params": o.params,
        "iters": o.iters,
        "train_loss": o.train_loss,
        "val_loss": o.val_loss,
        "ms_per_iter": o.ms_per_iter,
        "tokens_per_sec": o.tokens_per_sec,
        "run_dir": args.out,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Generate {
    /// Run directory (or model.safetensors) of a trained character GPT.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub ckpt: Option<PathBuf>,
    /// A pretrained language model instead: a GGUF file, a Hugging Face
    /// folder or a Kindling language-model run directory.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// With --model: divide the logits of tokens already present by this (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// With --model: stop when the text contains this string (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
    /// Text to continue (default: a newline).
    #[arg(long, default_value = "\n")]
    pub prompt: String,
    #[arg(long, default_value_t = 500)]
    pub max_new_tokens: usize,
    /// 0 = always the most likely next character (argmax); higher = more adventurous.
    #[arg(long, default_value_t = 0.8, allow_negative_numbers = true)]
    pub temperature: f32,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long)]
    pub top_p: Option<f32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

/// Samples `n` tokens after `prompt` with the library's generator (no stop
/// token: a character model writes until told to stop), calling `emit`
/// with the text as it settles. When the context is full the last half is
/// re-read into a fresh cache (positions are learned, so they cannot slide).
pub fn sample(
    model: &kindling_models::gpt::Gpt,
    decode: &dyn Fn(&[u32]) -> String,
    prompt: &[u32],
    n: usize,
    sampling: &Sampling,
    seed: u64,
    emit: &mut dyn FnMut(&str) -> bool,
) -> CliResult<Vec<u32>> {
    let options = GenerateOptions {
        sampling: *sampling,
        seed,
        slide: true,
        ..GenerateOptions::greedy(n)
    };
    let mut generator = Generator::new(model, options)?;
    Ok(generator.generate(prompt, decode, emit)?.ids)
}

pub fn generate(args: Generate) -> CliResult<()> {
    if let Some(model) = &args.model {
        let sampling = crate::lm::SamplingArgs {
            max_new_tokens: args.max_new_tokens,
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            repetition_penalty: args.repetition_penalty,
            stop: args.stop.clone(),
            seed: args.seed,
        };
        return crate::lm::generate(model, &args.prompt, &sampling, args.threads, args.json);
    }
    set_threads(args.threads)?;
    let sampling = Sampling {
        temperature: args.temperature,
        top_k: args.top_k,
        top_p: args.top_p,
    };
    sampling.validate()?;
    let path = checkpoint_path(
        args.ckpt
            .as_deref()
            .expect("clap requires --ckpt or --model"),
    )?;
    let loaded = gpt_run::load(&path).map_err(|e| e.to_string())?;
    let prompt = loaded
        .tokenizer
        .encode(&args.prompt)
        .map_err(|e| format!("--prompt: {e}"))?;
    if prompt.is_empty() {
        return Err("--prompt must not be empty".into());
    }
    let mut stdout = std::io::stdout();
    if !args.json {
        print!("{}", args.prompt);
    }
    let t0 = Instant::now();
    let decode = |ids: &[u32]| loaded.tokenizer.decode(ids);
    let ids = sample(
        &loaded.model,
        &decode,
        &prompt,
        args.max_new_tokens,
        &sampling,
        args.seed,
        // A closed pipe (`| head`) ends the text quietly.
        &mut |text| {
            args.json
                || write!(stdout, "{text}")
                    .and_then(|_| stdout.flush())
                    .is_ok()
        },
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let tokens_per_sec = ids.len() as f64 / secs.max(1e-9);
    let text = loaded.tokenizer.decode(&ids);
    if !args.json {
        println!();
    }
    eprintln!(
        "{} tokens in {:.2} s: {:.0} tokens/s",
        ids.len(),
        secs,
        tokens_per_sec
    );
    Report::new(args.json)
        .finish(json!({ "prompt": args.prompt, "text": text, "tokens_per_sec": tokens_per_sec }));
    Ok(())
}

#[derive(Args)]
pub struct Attention {
    #[arg(long)]
    pub ckpt: PathBuf,
    /// The text whose attention is drawn (at most the model's block size).
    #[arg(long)]
    pub text: String,
    /// Layer (0 = first).
    #[arg(long, default_value_t = 0)]
    pub layer: usize,
    /// One head; all heads as a grid when omitted.
    #[arg(long)]
    pub head: Option<usize>,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long)]
    pub json: bool,
}

pub fn attention(args: Attention) -> CliResult<()> {
    let path = checkpoint_path(&args.ckpt)?;
    let loaded = gpt_run::load(&path).map_err(|e| e.to_string())?;
    let cfg = &loaded.model.config;
    let ids = loaded
        .tokenizer
        .encode(&args.text)
        .map_err(|e| format!("--text: {e}"))?;
    if ids.is_empty() || ids.len() > cfg.block_size {
        return Err(format!(
            "--text has {} characters; it must have 1 to {} (the model's block size)",
            ids.len(),
            cfg.block_size
        )
        .into());
    }
    if args.layer >= cfg.n_layer {
        return Err(format!(
            "--layer {} out of range: the model has {} layers (0..{})",
            args.layer,
            cfg.n_layer,
            cfg.n_layer - 1
        )
        .into());
    }
    if let Some(h) = args.head {
        if h >= cfg.n_head {
            return Err(format!(
                "--head {h} out of range: the model has {} heads (0..{})",
                cfg.n_head,
                cfg.n_head - 1
            )
            .into());
        }
    }
    let idx = Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let (_, maps) = loaded.model.forward_with_attention(&idx)?;
    let t = ids.len();
    let probs = maps[args.layer].to_vec_f32()?; // [1, H, T, T]
    let heads: Vec<usize> = match args.head {
        Some(h) => vec![h],
        None => (0..cfg.n_head).collect(),
    };
    let matrices: Vec<(String, Vec<f32>)> = heads
        .iter()
        .map(|&h| {
            (
                format!("layer {} head {h}", args.layer),
                probs[h * t * t..(h + 1) * t * t].to_vec(),
            )
        })
        .collect();
    let chars: Vec<String> = args.text.chars().map(String::from).collect();
    kindling_train::plot::attention::draw(&args.out, &chars, &matrices)?;
    let out = Report::new(args.json);
    out.line(format!(
        "wrote {} ({} head(s), {t}×{t})",
        args.out.display(),
        matrices.len()
    ));
    out.finish(json!({ "out": args.out, "layer": args.layer, "heads": heads, "tokens": t }));
    Ok(())
}

#[derive(Args)]
pub struct BenchGpt {
    #[arg(long, default_value = "shakespeare-cpu")]
    pub preset: String,
    /// Timed training iterations (after 10 untimed warm-up iterations).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Also time generation of this many tokens with the KV cache.
    #[arg(long, default_value_t = 500)]
    pub generate: usize,
    #[arg(long)]
    pub threads: Option<usize>,
    #[arg(long)]
    pub json: bool,
}

pub fn bench(args: BenchGpt) -> CliResult<()> {
    if args.iters == 0 {
        return Err("--iters must be at least 1".into());
    }
    set_threads(args.threads)?;
    let opts = GptTrainOptions::preset(&args.preset).map_err(|e| e.to_string())?;
    let text = kindling_train::corpus::load(&opts.data).map_err(|e| e.to_string())?;
    let (model, ms_per_iter) =
        gpt_run::bench(&opts, &text, 10, args.iters).map_err(|e| e.to_string())?;
    let sampling = Sampling {
        temperature: 1.0,
        top_k: None,
        top_p: None,
    };
    let t1 = Instant::now();
    let n = sample(
        &model,
        &|_| String::new(),
        &[0],
        args.generate,
        &sampling,
        1,
        &mut |_| true,
    )?
    .len();
    let tokens_per_sec = n as f64 / t1.elapsed().as_secs_f64().max(1e-9);
    let out = Report::new(args.json);
    out.line(format!(
        "kindling gpt ({}), {} params, {} threads: {ms_per_iter:.2} ms/iter training; {tokens_per_sec:.0} tokens/s generating with KV cache",
        args.preset,
        model.num_parameters(),
        kindling_tensor::num_threads()
    ));
    out.finish(json!({
        "framework": "kindling",
        "preset": args.preset,
        "threads": kindling_tensor::num_threads(),
        "simd": kindling_tensor::simd_level(),
        "params": model.num_parameters(),
        "iters": args.iters,
        "ms_per_iter": ms_per_iter,
        "tokens_per_sec": tokens_per_sec,
        "peak_rss_mb": kindling_train::lenet5_run::peak_rss_mb(),
    }));
    Ok(())
}
