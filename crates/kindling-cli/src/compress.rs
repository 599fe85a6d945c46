//! Making a language model smaller: `distill` (a small student trained on a
//! teacher's distributions) and `prune` (weights of the block linear layers
//! set to zero, then an optional recovery fine-tune that keeps them zero).
//! Both train on the one training loop through `kindling_train::compress_run`.

use crate::common::{CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use crate::train_options;
use anyhow::{bail, Context};
use clap::Args;
use kindling_data::tokenizer::Tokenizer;
use kindling_models::llama::LlamaConfig;
use kindling_models::{gpt2_files, llama_files};
use kindling_tensor::gguf::GgufFile;
use kindling_tensor::Rng;
use kindling_train::compress_run::{self, CompressOptions};
use kindling_train::lm_run::{LmModel, LmTrainOptions};
use kindling_train::prune::{self, PruneMethod};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// A LLaMA or GPT-2 from a GGUF file, a Hugging Face folder or a `train lm`
/// run, as a model that trains (every parameter trainable), with its
/// tokenizer and the path it was resolved to.
pub fn load_trainable(flag: &str, given: &Path) -> CliResult<(LmModel, Tokenizer, PathBuf)> {
    // `resolve` words its error for --model.
    let path = crate::lm::resolve(given)
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().replacen("--model", flag, 1)))?;
    let (model, tokenizer) = if path.is_dir() {
        let model = match crate::lm::hf_model_type(&path)?.as_str() {
            "llama" => LmModel::Llama(llama_files::llama_from_hf_dir(&path)?),
            "gpt2" => LmModel::Gpt(gpt2_files::gpt_from_hf_dir(&path)?),
            other => bail!(
                "{flag} {}: model_type `{other}` is not supported (llama and gpt2 are)",
                path.display()
            ),
        };
        (model, Tokenizer::from_dir(&path)?)
    } else {
        let g = GgufFile::open(&path).with_context(|| flag.to_string())?;
        (
            LmModel::Llama(llama_files::llama_from_gguf(&g)?),
            Tokenizer::from_gguf(&g)?,
        )
    };
    // A loaded model's tensors start frozen.
    model.module().set_trainable(&|_| true, true);
    Ok((model, tokenizer, path))
}

/// Writes `model` and its tokenizer as a Hugging Face folder.
fn save_hf(model: &LmModel, tokenizer: &Tokenizer, dir: &Path) -> CliResult<()> {
    model.save_hf(dir)?;
    tokenizer.save(dir)?;
    Ok(())
}

/// The text of `--data` in `tokenizer`'s ids.
fn corpus_tokens(data: &str, tokenizer: &Tokenizer) -> CliResult<Vec<u32>> {
    let text = kindling_train::corpus::load(data)?;
    Ok(tokenizer.encode(&text)?)
}

/// Stop at the next step boundary on SIGINT/SIGTERM, checkpointed.
fn stop(after: Option<usize>) -> kindling_train::trainer::StopWhen<'static> {
    kindling_train::trainer::StopWhen {
        after,
        flag: Some(crate::stop::on_signals()),
    }
}

/// Options of the training both commands do.
#[derive(Args, Clone, Debug)]
pub struct CompressLoopArgs {
    /// Tokens per training window (and per held-out window).
    #[arg(long, default_value_t = 64)]
    pub block_size: usize,
    /// Windows per step.
    #[arg(long, default_value_t = 12)]
    pub batch_size: usize,
    /// Peak learning rate (AdamW, warmup then cosine to --min-lr).
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Learning rate at the end of the cosine.
    #[arg(long, default_value_t = 1e-4)]
    pub min_lr: f32,
    /// Steps of linear warmup.
    #[arg(long, default_value_t = 50)]
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay on matrices.
    #[arg(long, default_value_t = 0.1)]
    pub weight_decay: f32,
    /// Clip the global gradient norm to this (0 = off).
    #[arg(long, default_value_t = 1.0)]
    pub grad_clip: f32,
    /// Held-out windows scored at each evaluation (from the last 10% of --data, never trained on).
    #[arg(long, default_value_t = 200)]
    pub eval_windows: usize,
    /// Seed for the student's initialization and the batches.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

#[derive(Args)]
#[command(mut_arg("out", |a| a.required(false).default_value("runs/distill")))]
pub struct Distill {
    /// The teacher: a GGUF file, a Hugging Face folder, a `train lm` run directory (BPE) or a fetched model's name.
    #[arg(long)]
    pub teacher: PathBuf,
    /// The student: a `train lm` preset name, a TOML/JSON file of `train lm` options (n_layer, n_head,
    /// n_embd, ...), a Hugging Face LLaMA config.json, or an existing model (as --teacher).
    #[arg(long, value_name = "CONFIG|MODEL")]
    pub student: String,
    /// Corpus: shakespeare, tang-poems, or the path of a UTF-8 text file (cut by the teacher's tokenizer).
    #[arg(long, default_value = "shakespeare")]
    pub data: String,
    /// Weight of the soft term α·T²·KL(teacher ‖ student); 1 − α goes to the next-token cross-entropy
    /// (0 trains the student alone, on the same batches).
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// Softmax temperature T of the soft term.
    #[arg(long, default_value_t = 2.0)]
    pub temperature: f32,
    /// Optimizer steps.
    #[arg(long, default_value_t = 1000)]
    pub steps: usize,
    /// Evaluate on the held-out windows (and checkpoint) every N steps.
    #[arg(long, default_value_t = 250)]
    pub eval_every: usize,
    #[command(flatten)]
    pub train: CompressLoopArgs,
    #[command(flatten)]
    pub run: RunDirArgs,
    /// Stop after N steps of this invocation, resumable (a stand-in for an interruption).
    #[arg(long, hide = true)]
    pub interrupt_after: Option<usize>,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// A student built from a configuration: LmTrainOptions (a preset, or a
/// TOML/JSON file of them over the default preset) or a LLaMA config.json.
fn student_from_config(
    spec: &str,
    vocab_size: usize,
    block_size: usize,
    seed: u64,
) -> CliResult<Option<LmModel>> {
    let path = Path::new(spec);
    let options = if let Ok(preset) = LmTrainOptions::preset(spec) {
        preset
    } else if path.is_file() && spec.ends_with(".toml") {
        let mut config = train_options::read_config(path)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--config", "--student")))?;
        let preset = match config.remove("preset") {
            Some(Value::String(name)) => name,
            _ => "shakespeare-cpu-modern".into(),
        };
        let base = LmTrainOptions::preset(&preset).with_context(|| format!("--student {spec}"))?;
        train_options::layer(&base, &config, Some(path), &Default::default())
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--config", "--student")))?
            .0
    } else if path.is_file() && spec.ends_with(".json") {
        let text = std::fs::read_to_string(path).with_context(|| format!("--student {spec}"))?;
        let mut v: Value = serde_json::from_str(&text)
            .with_context(|| format!("--student {spec}: not valid JSON"))?;
        if v.get("hidden_size").is_some() {
            // A Hugging Face LLaMA config: the vocabulary is the teacher's.
            if v.get("vocab_size").is_none() {
                v["vocab_size"] = json!(vocab_size);
            }
            let mut config: LlamaConfig = serde_json::from_value(v)
                .with_context(|| format!("--student {spec}: not a LLaMA config"))?;
            config.max_position_embeddings = config.max_position_embeddings.max(block_size);
            let model = kindling_models::llama::Llama::new(config, &mut Rng::new(seed))?;
            return Ok(Some(LmModel::Llama(model)));
        }
        let Value::Object(map) = v else {
            bail!("--student {spec}: expected a JSON object of options");
        };
        let base = LmTrainOptions::shakespeare_cpu_modern();
        train_options::layer(&base, &map, Some(path), &Default::default())
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().replace("--config", "--student")))?
            .0
    } else {
        return Ok(None);
    };
    // A run's hf/ folder is a transformers LLaMA, which has no QK-norm.
    let options = LmTrainOptions {
        block_size,
        seed,
        qk_norm: false,
        tokenizer: "student".into(),
        ..options
    };
    options.validate()?;
    Ok(Some(LmModel::new(&options, vocab_size)?))
}

pub fn distill(a: Distill) -> CliResult<()> {
    a.threads.apply()?;
    let teacher = crate::lm::load_with(&a.teacher, None, false).context("--teacher")?;
    let vocab = teacher.model.vocab_size();
    let (student, described) = match student_from_config(
        &a.student,
        vocab,
        a.train.block_size,
        a.train.seed,
    )? {
        Some(m) => (m, "built from its configuration"),
        None => {
            let (m, tokenizer, _) = load_trainable("--student", Path::new(&a.student))?;
            if tokenizer.vocab_size() != teacher.tokenizer.vocab_size() {
                bail!(
                        "--student {} has a tokenizer of {} tokens and --teacher {} one of {}: they must share the tokenizer",
                        a.student,
                        tokenizer.vocab_size(),
                        a.teacher.display(),
                        teacher.tokenizer.vocab_size()
                    );
            }
            (m, "loaded")
        }
    };
    let opts = CompressOptions {
        teacher: Some(a.teacher.display().to_string()),
        student: a.student.clone(),
        data: a.data.clone(),
        pruned: None,
        alpha: a.alpha,
        temperature: a.temperature,
        steps: a.steps,
        batch_size: a.train.batch_size,
        block_size: a.train.block_size,
        lr: a.train.lr,
        min_lr: a.train.min_lr,
        warmup_steps: a.train.warmup_steps,
        weight_decay: a.train.weight_decay,
        grad_clip: a.train.grad_clip,
        eval_every: a.eval_every,
        eval_windows: a.train.eval_windows,
        seed: a.train.seed,
    };
    opts.validate()?;
    let tokens = corpus_tokens(&a.data, &teacher.tokenizer)?;
    eprintln!(
        "distilling {} ({:.2}M parameters) into a student {described} ({:.2}M parameters): alpha {}, temperature {}, {} tokens of `{}`",
        a.teacher.display(),
        teacher.num_parameters as f64 / 1e6,
        student.module().num_parameters() as f64 / 1e6,
        a.alpha,
        a.temperature,
        tokens.len(),
        a.data
    );
    let out = compress_run::train(
        &student,
        Some(teacher.model.as_ref()),
        None,
        &tokens,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(a.interrupt_after),
        &crate::common::log_line,
    )?;
    let hf = a.run.out.join("hf");
    save_hf(&student, &teacher.tokenizer, &hf)?;
    let report = Report::new(a.json.enabled);
    let kl = |v: Option<f32>| v.map_or("?".into(), |v| format!("{v:.4}"));
    report.line(format!(
        "held-out loss {} -> {:.4}, KL to the teacher {} -> {} in {} steps ({:.0} s, {:.0} tokens/s); student saved to {} (--model {} loads it)",
        out.val_loss_before.map_or("?".into(), |v| format!("{v:.4}")),
        out.val_loss_after,
        kl(out.kl_before),
        kl(out.kl_after),
        a.steps,
        out.seconds,
        out.tokens_per_sec,
        hf.display(),
        a.run.out.display()
    ));
    report.finish(json!({
        "val_loss_before": out.val_loss_before,
        "val_loss_after": out.val_loss_after,
        "kl_before": out.kl_before,
        "kl_after": out.kl_after,
        "steps": a.steps,
        "steps_trained": out.steps_trained,
        "seconds": out.seconds,
        "tokens_per_sec": out.tokens_per_sec,
        "student_params": student.module().num_parameters(),
        "teacher_params": teacher.num_parameters,
        "train_tokens": out.train_tokens,
        "val_tokens": out.val_tokens,
        "run_dir": a.run.out,
        "hf_dir": hf,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Prune {
    /// The model to prune: a GGUF file, a Hugging Face folder, a `train lm` run directory or a fetched model's name.
    #[arg(long)]
    pub model: PathBuf,
    /// magnitude (the smallest |w| of each block linear weight, unstructured) or 2:4 (2 of every 4
    /// consecutive input weights of a row).
    #[arg(long, default_value = "magnitude")]
    pub method: String,
    /// Fraction of each matrix set to zero, in [0, 1) (--method magnitude; 2:4 is 0.5) [default: 0.5 for magnitude].
    #[arg(long)]
    pub sparsity: Option<f32>,
    /// Recovery fine-tune steps after pruning, the pruned weights kept at zero (0 = none).
    #[arg(long, default_value_t = 0)]
    pub recover_steps: usize,
    /// Text for the held-out loss (last 10%) and the recovery (first 90%): shakespeare, a corpus name or a
    /// UTF-8 file [default: none: no loss is measured and --recover-steps must be 0].
    #[arg(long)]
    pub data: Option<String>,
    /// Evaluate (and checkpoint) the recovery every N steps [default: --recover-steps].
    #[arg(long)]
    pub eval_every: Option<usize>,
    #[command(flatten)]
    pub train: CompressLoopArgs,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn prune(a: Prune) -> CliResult<()> {
    a.threads.apply()?;
    let sparsity = match (a.method.as_str(), a.sparsity) {
        ("magnitude", None) => Some(0.5),
        (_, s) => s,
    };
    let method = PruneMethod::parse(&a.method, sparsity)?;
    if a.recover_steps > 0 && a.data.is_none() {
        bail!(
            "--recover-steps {} needs --data (the text to fine-tune on)",
            a.recover_steps
        );
    }
    if a.run.resume && a.recover_steps == 0 {
        bail!("--resume continues a recovery fine-tune; give --recover-steps");
    }
    let (model, tokenizer, path) = load_trainable("--model", &a.model)?;
    let tokens = a
        .data
        .as_deref()
        .map(|d| corpus_tokens(d, &tokenizer))
        .transpose()?;
    let heldout = |m: &LmModel| -> CliResult<Option<f32>> {
        let Some(tokens) = &tokens else {
            return Ok(None);
        };
        Ok(Some(compress_run::heldout_loss(
            m,
            tokens,
            a.train.block_size,
            a.train.eval_windows,
            a.train.batch_size,
        )?))
    };
    let dense_loss = heldout(&model)?;
    let masks = prune::prune(model.module(), method)?;
    let pruned_loss = heldout(&model)?;
    eprintln!(
        "pruned {} ({}): {} matrices, {} of {} block linear weights zero ({:.2}%)",
        path.display(),
        method.describe(),
        masks.matrices.len(),
        masks.matrices.iter().map(|m| m.zeros).sum::<usize>(),
        masks.pruned_parameters(),
        100.0 * masks.sparsity()
    );
    let mut recovered = None;
    let run = if a.recover_steps > 0 {
        let opts = CompressOptions {
            teacher: None,
            student: a.model.display().to_string(),
            data: a.data.clone().unwrap_or_default(),
            pruned: Some(method.describe()),
            alpha: 0.0,
            temperature: 1.0,
            steps: a.recover_steps,
            batch_size: a.train.batch_size,
            block_size: a.train.block_size,
            lr: a.train.lr,
            min_lr: a.train.min_lr,
            warmup_steps: a.train.warmup_steps,
            weight_decay: a.train.weight_decay,
            grad_clip: a.train.grad_clip,
            eval_every: a.eval_every.unwrap_or(a.recover_steps),
            eval_windows: a.train.eval_windows,
            seed: a.train.seed,
        };
        recovered = Some(compress_run::train(
            &model,
            None,
            Some(&masks),
            tokens.as_deref().unwrap_or_default(),
            &opts,
            &a.run.out,
            a.run.mode(),
            stop(None),
            &crate::common::log_line,
        )?);
        kindling_train::run_dir::RunDir::open(&a.run.out)?
    } else {
        kindling_train::run_dir::RunDir::start(&a.run.out, a.run.mode())?
    };
    let after = masks.sparsity();
    let matrices: Vec<Value> = masks
        .matrices
        .iter()
        .map(|m| json!({"name": m.name, "shape": m.shape, "zeros": m.zeros, "sparsity": m.sparsity()}))
        .collect();
    let summary = json!({
        "model": path,
        "method": a.method,
        "sparsity": after,
        "pruned_parameters": masks.pruned_parameters(),
        "total_parameters": model.module().num_parameters(),
        "matrices": matrices,
    });
    run.write_json("prune.json", &summary)?;
    let hf = a.run.out.join("hf");
    save_hf(&model, &tokenizer, &hf)?;
    let fmt = |v: Option<f32>| v.map_or("-".into(), |v| format!("{v:.4}"));
    let report = Report::new(a.json.enabled);
    report.line(format!(
        "{}: sparsity {:.4} of the block linear weights; held-out loss dense {}, pruned {}, recovered {}; saved {}",
        method.describe(),
        after,
        fmt(dense_loss),
        fmt(pruned_loss),
        fmt(recovered.as_ref().map(|r| r.val_loss_after)),
        hf.display()
    ));
    report.finish(json!({
        "method": a.method,
        "sparsity": after,
        "pruned_matrices": masks.matrices.len(),
        "pruned_parameters": masks.pruned_parameters(),
        "val_loss_dense": dense_loss,
        "val_loss_pruned": pruned_loss,
        "val_loss_recovered": recovered.as_ref().map(|r| r.val_loss_after),
        "recover_steps": a.recover_steps,
        "recover_seconds": recovered.as_ref().map(|r| r.seconds),
        "hf_dir": hf,
    }));
    Ok(())
}
