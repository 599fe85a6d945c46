//! Training a character-level GPT (nanoGPT's recipe): random windows of the
//! corpus, AdamW with decoupled weight decay on matrices only, linear warmup
//! then cosine decay, gradient clipping at global norm 1, periodic loss
//! estimates on train and validation batches, atomic checkpoints, resume.

use crate::data_parallel::DataParallel;
use crate::plot::{save_panels, Panel, Series};
use crate::progress::bar;
use crate::run_dir::RunDir;
use crate::Result;
use kindling_data::char_tokenizer::CharTokenizer;
use kindling_models::gpt::{Gpt, GptConfig};
use kindling_nn::clip::clip_grad_norm;
use kindling_nn::optim::{Adam, AdamConfig, Optimizer, ParamGroup};
use kindling_nn::schedule::LrSchedule;
use kindling_nn::{checkpoint, Module};
use kindling_tensor::{no_grad, Rng, Tensor};
use plotters::style::{BLUE, RED};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

pub const CHECKPOINT: &str = "model.safetensors";

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GptTrainOptions {
    pub data: String,
    pub n_layer: usize,
    pub n_head: usize,
    pub n_embd: usize,
    pub block_size: usize,
    pub batch_size: usize,
    pub max_iters: usize,
    pub lr: f32,
    pub min_lr: f32,
    pub warmup_iters: usize,
    pub weight_decay: f32,
    pub grad_clip: f32,
    pub eval_interval: usize,
    pub eval_iters: usize,
    pub dropout: f32,
    pub seed: u64,
    pub tie_weights: bool,
    /// Biases in Linear and LayerNorm layers (runs from before this option
    /// had them).
    #[serde(default = "yes")]
    pub bias: bool,
}

fn yes() -> bool {
    true
}

impl GptTrainOptions {
    /// nanoGPT's CPU Shakespeare run (README, "I only have a macbook"),
    /// which reports val loss 1.88 after 2000 iterations.
    pub fn shakespeare_cpu() -> Self {
        GptTrainOptions {
            data: "shakespeare".into(),
            n_layer: 4,
            n_head: 4,
            n_embd: 128,
            block_size: 64,
            batch_size: 12,
            max_iters: 2000,
            lr: 1e-3,
            min_lr: 1e-4,
            warmup_iters: 100,
            weight_decay: 0.1,
            grad_clip: 1.0,
            eval_interval: 250,
            eval_iters: 20,
            dropout: 0.0,
            seed: 1337,
            tie_weights: true,
            bias: true,
        }
    }

    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "shakespeare-cpu" => Ok(Self::shakespeare_cpu()),
            "tang-cpu" => Ok(GptTrainOptions {
                data: "tang-poems".into(),
                ..Self::shakespeare_cpu()
            }),
            other => Err(
                format!("--preset `{other}`: unknown (known: shakespeare-cpu, tang-cpu)").into(),
            ),
        }
    }

    pub fn model_config(&self, vocab_size: usize) -> GptConfig {
        GptConfig {
            n_layer: self.n_layer,
            n_head: self.n_head,
            n_embd: self.n_embd,
            block_size: self.block_size,
            vocab_size,
            dropout: self.dropout,
            tie_weights: self.tie_weights,
            bias: self.bias,
            activation: Default::default(),
        }
    }

    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("--n-layer", self.n_layer),
            ("--n-head", self.n_head),
            ("--n-embd", self.n_embd),
            ("--block-size", self.block_size),
            ("--batch-size", self.batch_size),
            ("--max-iters", self.max_iters),
            ("--eval-interval", self.eval_interval),
            ("--eval-iters", self.eval_iters),
        ];
        for (flag, v) in positive {
            if v == 0 {
                return Err(format!("{flag} must be at least 1").into());
            }
        }
        for (flag, v) in [("--lr", self.lr), ("--grad-clip", self.grad_clip)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(format!("{flag} must be a positive number, got {v}").into());
            }
        }
        if !(self.min_lr.is_finite() && self.min_lr >= 0.0 && self.min_lr <= self.lr) {
            return Err(format!("--min-lr must be between 0 and --lr, got {}", self.min_lr).into());
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(format!("--weight-decay must be >= 0, got {}", self.weight_decay).into());
        }
        self.model_config(1).validate().map_err(|e| e.to_string())?;
        Ok(())
    }
}

/// The corpus as ids, split 90/10 into train and validation.
pub struct TokenData {
    pub tokenizer: CharTokenizer,
    pub train: Vec<u32>,
    pub val: Vec<u32>,
}

impl TokenData {
    pub fn from_text(text: &str, name: &str) -> Result<TokenData> {
        let tokenizer =
            CharTokenizer::from_text(text).map_err(|e| format!("--data {name}: {e}"))?;
        let ids = tokenizer.encode(text)?;
        let n = ids.len() * 9 / 10;
        Ok(TokenData {
            tokenizer,
            train: ids[..n].to_vec(),
            val: ids[n..].to_vec(),
        })
    }
}

/// `batch` random windows of `block + 1` tokens: inputs and next-token targets.
pub fn get_batch(
    data: &[u32],
    batch: usize,
    block: usize,
    rng: &mut Rng,
) -> Result<(Tensor, Tensor)> {
    if data.len() <= block + 1 {
        return Err(format!(
            "the split has {} tokens, too few for --block-size {block}",
            data.len()
        )
        .into());
    }
    let mut x = Vec::with_capacity(batch * block);
    let mut y = Vec::with_capacity(batch * block);
    for _ in 0..batch {
        let start = rng.below(data.len() - block - 1);
        x.extend(data[start..start + block].iter().map(|&t| t as i64));
        y.extend(data[start + 1..start + block + 1].iter().map(|&t| t as i64));
    }
    Ok((
        Tensor::from_vec_i64(x, &[batch, block])?,
        Tensor::from_vec_i64(y, &[batch, block])?,
    ))
}

/// Independent, reproducible random streams per (purpose, iteration), so a
/// resumed run draws exactly the batches the uninterrupted run would.
fn stream(seed: u64, purpose: u64, iter: usize) -> Rng {
    Rng::new(seed ^ Rng::new(purpose.wrapping_mul(0x9E37_79B9) ^ iter as u64).next_u64())
}

pub fn estimate_loss(
    model: &Gpt,
    data: &[u32],
    opts: &GptTrainOptions,
    rng: &mut Rng,
) -> Result<f32> {
    let _g = no_grad();
    let mut total = 0f64;
    for _ in 0..opts.eval_iters {
        let (x, y) = get_batch(data, opts.batch_size, opts.block_size, rng)?;
        total += model
            .forward_ids(&x, None)?
            .cross_entropy(&y, None)?
            .item()? as f64;
    }
    Ok((total / opts.eval_iters as f64) as f32)
}

pub fn make_optimizer(model: &Gpt, opts: &GptTrainOptions) -> Adam {
    let decay_names = model.decay_parameter_names();
    let (mut decay, mut no_decay) = (Vec::new(), Vec::new());
    for (name, p) in model.named_parameters() {
        if decay_names.contains(&name) {
            decay.push(p)
        } else {
            no_decay.push(p)
        }
    }
    let config = AdamConfig {
        beta2: 0.99,
        ..AdamConfig::adamw(opts.lr, opts.weight_decay)
    };
    Adam::with_groups(
        vec![
            ParamGroup {
                params: decay,
                weight_decay: opts.weight_decay,
            },
            ParamGroup {
                params: no_decay,
                weight_decay: 0.0,
            },
        ],
        config,
    )
}

pub fn schedule(opts: &GptTrainOptions) -> LrSchedule {
    LrSchedule::WarmupCosine {
        lr: opts.lr,
        min_lr: opts.min_lr,
        warmup: opts.warmup_iters,
        total: opts.max_iters,
    }
}

/// One optimization step; returns the loss.
/// One optimizer step on a fresh batch, its forward and backward spread
/// over `dp`'s shards. Returns the batch's training loss.
pub fn train_step(
    model: &Gpt,
    opt: &mut Adam,
    opts: &GptTrainOptions,
    data: &[u32],
    iter: usize,
    params: &[Tensor],
    dp: &DataParallel,
) -> Result<f32> {
    let (x, y) = get_batch(
        data,
        opts.batch_size,
        opts.block_size,
        &mut stream(opts.seed, 1, iter),
    )?;
    opt.set_lr(schedule(opts).lr_at(iter));
    opt.zero_grad();
    let loss = dp.backward(opts.batch_size, params, |shard, start, len| {
        // Dropout masks: one stream per shard (shard 0 keeps the
        // single-thread stream).
        let mut drop_rng = stream(opts.seed, 2 + 1000 * shard as u64, iter);
        model
            .forward_ids(&x.narrow(0, start, len)?, Some(&mut drop_rng))?
            .cross_entropy(&y.narrow(0, start, len)?, None)
    })?;
    clip_grad_norm(params, opts.grad_clip)?;
    opt.step()?;
    Ok(loss)
}

/// A GPT checkpoint: the model, its tokenizer and the stored metadata.
pub struct LoadedGpt {
    pub model: Gpt,
    pub tokenizer: CharTokenizer,
    pub checkpoint: checkpoint::Checkpoint,
}

pub fn load(path: &Path) -> Result<LoadedGpt> {
    let ck = checkpoint::read(path)?;
    ck.expect_model(path, "gpt", "GPT")?;
    let config: GptConfig = serde_json::from_value(ck.config["gpt"].clone())
        .map_err(|e| format!("{}: bad `gpt` config: {e}", path.display()))?;
    let vocab = ck.config["vocab"]
        .as_str()
        .ok_or_else(|| format!("{}: no `vocab` in metadata", path.display()))?;
    let tokenizer =
        CharTokenizer::from_vocab_string(vocab).map_err(|e| format!("{}: {e}", path.display()))?;
    let model = Gpt::new(config, &mut Rng::new(0))?;
    ck.load_into(&model, path)?;
    Ok(LoadedGpt {
        model,
        tokenizer,
        checkpoint: ck,
    })
}

pub struct Outcome {
    pub params: usize,
    pub iters: usize,
    pub train_loss: f32,
    pub val_loss: f32,
    pub ms_per_iter: f32,
    pub tokens_per_sec: f32,
}

/// Trains (or resumes) a run in `dir`. `stop_after` ends this call after that
/// many iterations (resumable), standing in for an interruption in tests.
pub fn train(
    opts: &GptTrainOptions,
    text: &str,
    dir: &Path,
    resume: bool,
    stop_after: Option<usize>,
    log: &dyn Fn(&str),
) -> Result<Outcome> {
    opts.validate()?;
    let data = TokenData::from_text(text, &opts.data)?;
    // Checked before the model is built: a typo like --block-size 1000000000
    // should be an error, not an allocation failure.
    let shortest = data.train.len().min(data.val.len());
    if opts.block_size + 1 >= shortest {
        return Err(format!(
            "--block-size {} needs more text: the validation split of `{}` has {} characters",
            opts.block_size,
            opts.data,
            data.val.len()
        )
        .into());
    }
    let run = RunDir::create(dir)?;
    let model = Gpt::new(
        opts.model_config(data.tokenizer.vocab_size()),
        &mut Rng::new(opts.seed),
    )?;
    let params = model.parameters();
    let dp = DataParallel::new(kindling_tensor::num_threads())?;
    let mut opt = make_optimizer(&model, opts);
    let ckpt_path = run.file(CHECKPOINT);
    let mut start = 0;
    let mut metrics: Vec<Value> = Vec::new();
    if resume && ckpt_path.exists() {
        // Compare with the options stored in the checkpoint itself: config.json
        // may already belong to a newer run that never saved a checkpoint.
        let loaded = load(&ckpt_path)?;
        let stored: Option<GptTrainOptions> =
            serde_json::from_value(loaded.checkpoint.config["options"].clone()).ok();
        if stored.as_ref() != Some(opts) {
            // Name the settings that differ, as the flags spell them.
            let (was, now) = (json!(stored), json!(opts));
            let show = |v: Option<&Value>| match v {
                Some(Value::Number(n)) if n.is_f64() => {
                    format!("{}", n.as_f64().unwrap_or(0.0) as f32)
                }
                Some(v) => v.to_string(),
                None => "?".into(),
            };
            let differ: Vec<String> = now
                .as_object()
                .map(|o| {
                    o.iter()
                        .filter(|(k, v)| was.get(k.as_str()) != Some(*v))
                        .map(|(k, v)| {
                            format!(
                                "--{} {} (run: {})",
                                k.replace('_', "-"),
                                show(Some(v)),
                                show(was.get(k.as_str()))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Err(format!(
                "--resume: {} was started with different options ({}); use the same flags or a new --out",
                dir.display(),
                differ.join(", ")
            )
            .into());
        }
        if loaded.tokenizer != data.tokenizer {
            return Err(format!(
                "--resume: the corpus vocabulary differs from the checkpoint's in {}",
                dir.display()
            )
            .into());
        }
        loaded.checkpoint.load_into(&model, &ckpt_path)?;
        let state: HashMap<String, Tensor> = loaded
            .checkpoint
            .tensors
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("optim.").map(|s| (s.to_string(), v.clone())))
            .collect();
        opt.load_state(&state)?;
        start = loaded.checkpoint.config["iters_done"].as_u64().unwrap_or(0) as usize;
        metrics = run
            .read_metrics()?
            .into_iter()
            .filter(|m| m["iter"].as_u64().is_some_and(|i| i as usize <= start))
            .collect();
        log(&format!("resuming {} at iteration {start}", dir.display()));
    }
    run.write_json("config.json", &serde_json::to_value(opts)?)?;
    log(&format!(
        "GPT: {} parameters, vocabulary {} characters, {} train / {} validation tokens",
        model.num_parameters(),
        data.tokenizer.vocab_size(),
        data.train.len(),
        data.val.len()
    ));

    let save = |iters_done: usize, opt: &Adam, metrics: &[Value]| -> Result<()> {
        let mut extra: Vec<(String, Tensor)> = opt
            .state()
            .into_iter()
            .map(|(k, v)| (format!("optim.{k}"), v))
            .collect();
        extra.sort_by(|a, b| a.0.cmp(&b.0));
        let meta = json!({
            "model": "gpt",
            "gpt": model.config,
            "vocab": data.tokenizer.to_vocab_string(),
            "options": opts,
            "iters_done": iters_done,
        });
        // Metrics first: a crash between the two leaves extra lines, which a
        // resume drops, never a checkpoint ahead of its metrics.
        run.write_metrics(metrics)?;
        checkpoint::save(&ckpt_path, &model, &meta, &extra)?;
        draw_curves(&run, metrics)
    };

    let end = stop_after.map_or(opts.max_iters, |k| (start + k).min(opts.max_iters));
    let pb = bar((opts.max_iters - start) as u64, "train gpt".into(), "it");
    let (mut train_secs, mut train_iters) = (0f64, 0usize);
    let (mut last_train, mut last_val) = (f32::NAN, f32::NAN);
    for iter in start..=end {
        let is_last = iter == opts.max_iters;
        if iter % opts.eval_interval == 0 || is_last {
            let tl = estimate_loss(&model, &data.train, opts, &mut stream(opts.seed, 3, iter))?;
            let vl = estimate_loss(&model, &data.val, opts, &mut stream(opts.seed, 4, iter))?;
            (last_train, last_val) = (tl, vl);
            pb.suspend(|| {
                log(&format!(
                    "iter {iter:>5}: train loss {tl:.4}, val loss {vl:.4}"
                ))
            });
            metrics.push(json!({ "iter": iter, "train_loss": tl, "val_loss": vl, "lr": schedule(opts).lr_at(iter) }));
            if iter > start || is_last {
                save(iter, &opt, &metrics)?;
            }
        }
        if iter == end {
            break;
        }
        let t0 = Instant::now();
        let loss = train_step(&model, &mut opt, opts, &data.train, iter, &params, &dp)?;
        let dt = t0.elapsed().as_secs_f64();
        train_secs += dt;
        train_iters += 1;
        pb.inc(1);
        if iter % 10 == 0 {
            let tps = (train_iters * opts.batch_size * opts.block_size) as f64 / train_secs;
            pb.set_message(format!("loss {loss:.4}, {tps:.0} tok/s"));
            metrics.push(json!({ "iter": iter, "loss": loss }));
            // Without a terminal the bar is hidden: log a line now and then instead.
            if iter % 100 == 0 && !std::io::stderr().is_terminal() {
                log(&format!(
                    "iter {iter:>5}: loss {loss:.4}, {tps:.0} tokens/s"
                ));
            }
        }
    }
    pb.finish_and_clear();
    if end < opts.max_iters {
        save(end, &opt, &metrics)?;
        return Err(format!(
            "stopped after iteration {end} of {} as asked; continue with --resume",
            opts.max_iters
        )
        .into());
    }
    let ms = if train_iters > 0 {
        train_secs * 1000.0 / train_iters as f64
    } else {
        0.0
    };
    Ok(Outcome {
        params: model.num_parameters(),
        iters: opts.max_iters,
        train_loss: last_train,
        val_loss: last_val,
        ms_per_iter: ms as f32,
        tokens_per_sec: if ms > 0.0 {
            (opts.batch_size * opts.block_size) as f32 / (ms as f32 / 1000.0)
        } else {
            0.0
        },
    })
}

fn draw_curves(run: &RunDir, metrics: &[Value]) -> Result<()> {
    let pts = |key: &str| crate::plot::points(metrics, "iter", key);
    let panel = Panel {
        title: "GPT loss",
        x_label: "iteration",
        y_label: "cross-entropy (nats/char)",
        series: vec![
            Series {
                label: "train (batch)",
                points: pts("loss"),
                color: plotters::style::RGBColor(150, 150, 220),
                dots: false,
            },
            Series {
                label: "train (estimate)",
                points: pts("train_loss"),
                color: BLUE,
                dots: false,
            },
            Series {
                label: "validation",
                points: pts("val_loss"),
                color: RED,
                dots: false,
            },
        ],
        log_y: false,
    };
    save_panels(&run.file("curves.png"), &[panel]).map_err(|e| format!("curves.png: {e}"))?;
    Ok(())
}
