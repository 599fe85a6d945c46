//! `kindling train gpt`, `kindling generate`, `kindling attention`,
//! `kindling bench gpt`.

use crate::common::{checkpoint_path, CliResult, JsonArg, RunDirArgs, SamplingArgs, ThreadsArg};
use crate::report::Report;
use crate::train_options::{self, LmLoopArgs, PresetArgs};
use anyhow::bail;
use clap::Args;
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::sampling::Sampling;
use kindling_nn::Module;
use kindling_tensor::Tensor;
use kindling_train::gpt_run::{self, GptTrainOptions, CHECKPOINT};
use serde::Serialize;
use serde_json::json;
use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

/// The preset `train gpt` starts from unless told otherwise.
const GPT_PRESET: &str = "shakespeare-cpu";

fn gpt_preset_values() -> serde_json::Value {
    serde_json::to_value(GptTrainOptions::shakespeare_cpu()).unwrap_or_default()
}

#[derive(Args)]
#[command(
    mut_arg("out", |a| a.required(false).default_value("runs/gpt")),
    mut_arg("preset", |a| a.help(
        "Start from a named preset: shakespeare-cpu (nanoGPT's CPU run: val loss 1.901 at seed 1337, \
         docs/gpt.md; nanoGPT's README reports 1.88) or tang-cpu (the same on Tang poems); \
         --config and flags override it [default: shakespeare-cpu]"
    )),
    mut_args(|a| train_options::show_preset_value(a, &gpt_preset_values(), GPT_PRESET))
)]
pub struct TrainGpt {
    #[command(flatten)]
    pub preset: PresetArgs,
    #[command(flatten)]
    pub common: LmLoopArgs,
    #[command(flatten)]
    pub gpt: GptOnlyArgs,
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

/// The options only the character GPT has.
#[derive(Args, Clone, Debug, Serialize)]
pub struct GptOnlyArgs {
    /// Dropout probability in training.
    #[arg(long)]
    pub dropout: Option<f32>,
    /// Biases in the Linear and LayerNorm layers: true or false.
    #[arg(long)]
    pub bias: Option<bool>,
    /// Give the output head its own weights instead of sharing the token embedding (tie_weights = false in a config file).
    #[arg(long)]
    #[serde(skip)]
    pub untied: bool,
}

impl TrainGpt {
    pub fn options(&self) -> CliResult<GptTrainOptions> {
        let mut config = match &self.preset.config {
            Some(path) => train_options::read_config(path)?,
            None => Default::default(),
        };
        let name = train_options::preset_name(&self.preset, &mut config, GPT_PRESET)?;
        // --resume starts from the run's own settings; the file and flags
        // given change them (only --max-iters may: the library names any
        // other difference).
        let preset = match crate::common::resumed_options(self.run.resume, &self.run.out)? {
            Some(o) => o,
            None => GptTrainOptions::preset(&name)?,
        };
        let mut flags = train_options::given(&self.common);
        flags.extend(train_options::given(&self.gpt));
        if self.gpt.untied {
            flags.insert("tie_weights".into(), false.into());
        }
        let (o, _) = train_options::layer(&preset, &config, self.preset.config.as_deref(), &flags)?;
        o.validate()?;
        Ok(o)
    }
}

pub fn train(args: TrainGpt) -> CliResult<()> {
    let opts = args.options()?;
    args.threads.apply()?;
    let out = Report::new(args.json.enabled);
    let text = kindling_train::corpus::load(&opts.data)?;
    eprintln!(
        "training GPT on `{}` with {} threads; run directory {}",
        opts.data,
        kindling_tensor::num_threads(),
        args.run.out.display()
    );
    let o = gpt_run::train(
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
        "GPT ({} parameters), {} iterations: train loss {:.4}, val loss {:.4}; {speed}",
        o.params, o.iters, o.train_loss, o.val_loss
    ));
    out.line(format!(
        "  checkpoint {}",
        args.run.out.join(CHECKPOINT).display()
    ));
    out.finish(json!({
        "params": o.params,
        "iters": o.iters,
        "train_loss": o.train_loss,
        "val_loss": o.val_loss,
        "ms_per_iter": o.ms_per_iter,
        "tokens_per_sec": o.tokens_per_sec,
        "run_dir": args.run.out,
    }));
    Ok(())
}

#[derive(Args)]
#[command(
    // A character GPT writes until told to stop: more tokens, some warmth.
    mut_arg("max_new_tokens", |a| a.default_value("500")),
    mut_arg("temperature", |a| a.default_value("0.8"))
)]
pub struct Generate {
    /// Run directory (or model.safetensors) of a trained character GPT (this or --model is required).
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub ckpt: Option<PathBuf>,
    /// A pretrained language model instead: a GGUF file, a Hugging Face
    /// folder or a Kindling language-model run directory (this or --ckpt is required).
    #[arg(long)]
    pub model: Option<PathBuf>,
    #[command(flatten)]
    pub adapter: crate::lm::AdapterArg,
    /// Text to continue [default: a newline].
    #[arg(long, default_value = "\n", hide_default_value = true)]
    pub prompt: String,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
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
    if args.adapter.quantized && args.model.is_none() {
        anyhow::bail!("--quantized needs --model (a GGUF file); a --ckpt holds f32 weights");
    }
    if args.adapter.adapter.is_some() && args.model.is_none() {
        anyhow::bail!("--adapter needs --model (a LoRA adapter runs on a pretrained LLaMA-family model, not a --ckpt)");
    }
    if let Some(model) = &args.model {
        return crate::lm::generate(
            model,
            &args.adapter,
            &args.prompt,
            &args.sampling,
            args.threads,
            args.json.enabled,
        );
    }
    args.threads.apply()?;
    let sampling = args.sampling.sampling();
    sampling.validate()?;
    let path = checkpoint_path(
        "--ckpt",
        args.ckpt
            .as_deref()
            .expect("clap requires --ckpt or --model"),
        CHECKPOINT,
    )?;
    let loaded = gpt_run::load(&path)?;
    let prompt = loaded
        .tokenizer
        .encode(&args.prompt)
        .map_err(|e| anyhow::anyhow!("--prompt: {e}"))?;
    if prompt.is_empty() {
        bail!("--prompt must not be empty");
    }
    let mut stdout = std::io::stdout();
    if !args.json.enabled {
        print!("{}", args.prompt);
    }
    let t0 = Instant::now();
    let decode = |ids: &[u32]| loaded.tokenizer.decode(ids);
    let ids = sample(
        &loaded.model,
        &decode,
        &prompt,
        args.sampling.max_new_tokens,
        &sampling,
        args.sampling.seed,
        // A closed pipe (`| head`) ends the text quietly.
        &mut |text| {
            args.json.enabled
                || write!(stdout, "{text}")
                    .and_then(|_| stdout.flush())
                    .is_ok()
        },
    )?;
    let secs = t0.elapsed().as_secs_f64();
    let tokens_per_sec = ids.len() as f64 / secs.max(1e-9);
    let text = loaded.tokenizer.decode(&ids);
    if !args.json.enabled {
        println!();
    }
    eprintln!(
        "{} tokens in {:.2} s: {:.0} tokens/s",
        ids.len(),
        secs,
        tokens_per_sec
    );
    Report::new(args.json.enabled)
        .finish(json!({ "prompt": args.prompt, "text": text, "tokens_per_sec": tokens_per_sec }));
    Ok(())
}

#[derive(Args)]
pub struct Attention {
    /// Run directory (or model.safetensors) of a trained character GPT.
    #[arg(long)]
    pub ckpt: PathBuf,
    /// The text whose attention is drawn (at most the model's block size).
    #[arg(long)]
    pub text: String,
    /// Layer (0 = first).
    #[arg(long, default_value_t = 0)]
    pub layer: usize,
    /// One head [default: all heads, as a grid].
    #[arg(long)]
    pub head: Option<usize>,
    /// The PNG to write.
    #[arg(long, value_name = "FILE.png")]
    pub out: PathBuf,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn attention(args: Attention) -> CliResult<()> {
    let path = checkpoint_path("--ckpt", &args.ckpt, CHECKPOINT)?;
    let loaded = gpt_run::load(&path)?;
    let cfg = &loaded.model.config;
    let ids = loaded
        .tokenizer
        .encode(&args.text)
        .map_err(|e| anyhow::anyhow!("--text: {e}"))?;
    if ids.is_empty() || ids.len() > cfg.block_size {
        bail!(
            "--text has {} characters; it must have 1 to {} (the model's block size)",
            ids.len(),
            cfg.block_size
        );
    }
    if args.layer >= cfg.n_layer {
        bail!(
            "--layer {} out of range: the model has {} layers (0..{})",
            args.layer,
            cfg.n_layer,
            cfg.n_layer - 1
        );
    }
    if let Some(h) = args.head {
        if h >= cfg.n_head {
            bail!(
                "--head {h} out of range: the model has {} heads (0..{})",
                cfg.n_head,
                cfg.n_head - 1
            );
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
    kindling_train::plot::attention::draw(&args.out, &chars, &matrices)
        .map_err(|e| anyhow::anyhow!("{}: {e}", args.out.display()))?;
    let out = Report::new(args.json.enabled);
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
    /// The preset whose model and batch are timed (as `train gpt --preset`).
    #[arg(long, default_value = "shakespeare-cpu")]
    pub preset: String,
    /// Timed training iterations (after 10 untimed warm-up iterations).
    #[arg(long, default_value_t = 50)]
    pub iters: usize,
    /// Also time generation of this many tokens with the KV cache.
    #[arg(long, default_value_t = 500)]
    pub generate: usize,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn bench(args: BenchGpt) -> CliResult<()> {
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    args.threads.apply()?;
    let opts = GptTrainOptions::preset(&args.preset)?;
    let text = kindling_train::corpus::load(&opts.data)?;
    let (model, ms_per_iter) = gpt_run::bench(&opts, &text, 10, args.iters)?;
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
    let out = Report::new(args.json.enabled);
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
