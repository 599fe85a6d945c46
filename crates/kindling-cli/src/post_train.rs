//! After pretraining: `finetune sft|dpo|ppo|grpo`, `train reward`,
//! `reward`, `lora merge` and `memory consolidate`, each a thin layer over
//! its task in kindling-train (the one training loop) on a LLaMA-family
//! model loaded from a GGUF file, a Hugging Face folder or a Kindling run.

use crate::common::{CliResult, JsonArg, RunDirArgs, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message};
use kindling_models::generate::{GenerateOptions, Generator};
use kindling_models::llama::Llama;
use kindling_models::llama_files;
use kindling_models::lora_files;
use kindling_models::reward::{reward_from_hf_dir, save_reward_dir, RewardModel};
use kindling_nn::lora::{self, LoraConfig};
use kindling_nn::Module;
use kindling_tensor::gguf::GgufFile;
use kindling_tensor::Rng;
use kindling_train::preference::{self, EncodedPair, Split};
use kindling_train::sft_data::{self, Conversation};
use kindling_train::{dpo_run, grpo_run, memory, ppo_run, reward_run, sft_run};
use serde_json::json;
use std::path::{Path, PathBuf};

/// A LLaMA-family chat model with what talking to it needs.
pub struct ChatLlama {
    pub model: Llama,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    pub stop_ids: Vec<u32>,
    /// Where it came from (resolved).
    pub path: PathBuf,
}

/// Loads a LLaMA (GGUF file, Hugging Face folder, or a run holding `hf/`),
/// with an optional PEFT adapter on top.
pub fn load_chat_llama(model: &Path, adapter: Option<&Path>) -> CliResult<ChatLlama> {
    let path = crate::lm::resolve(model)?;
    let (mut m, tokenizer) = if path.is_dir() {
        (
            llama_files::llama_from_hf_dir(&path)?,
            Tokenizer::from_dir(&path)?,
        )
    } else {
        let g = GgufFile::open(&path)?;
        (llama_files::llama_from_gguf(&g)?, Tokenizer::from_gguf(&g)?)
    };
    let (template, stop_ids) = crate::lm::chat_parts(&tokenizer, m.config.eos_token_id)?;
    if let Some(a) = adapter {
        let cfg = lora_files::load_peft(a, &mut m)
            .with_context(|| format!("--adapter {}", a.display()))?;
        eprintln!(
            "adapter {} (LoRA rank {}, {} layers)",
            a.display(),
            cfg.rank,
            lora::adapter_parameters(&m).len() / 2
        );
    }
    Ok(ChatLlama {
        model: m,
        tokenizer,
        template,
        stop_ids,
        path,
    })
}

/// `--lora-rank` and its companions: train low-rank adapters instead of
/// every weight.
#[derive(Args, Clone, Debug)]
pub struct LoraArgs {
    /// Train LoRA adapters of this rank on a frozen base (0: full fine-tuning).
    #[arg(long, default_value_t = 0, value_name = "R")]
    pub lora_rank: usize,
    /// LoRA scale numerator: the update is multiplied by alpha / rank.
    #[arg(long, default_value_t = 16.0, value_name = "A")]
    pub lora_alpha: f32,
    /// Projections that get adapters (q, k, v, o, gate, up, down, or full layer names).
    #[arg(long, value_delimiter = ',', default_value = "q,k,v,o,gate,up,down")]
    pub lora_targets: Vec<String>,
    /// Scale by alpha / sqrt(rank) (rsLoRA) instead of alpha / rank.
    #[arg(long)]
    pub rslora: bool,
}

impl LoraArgs {
    pub fn config(&self) -> Option<LoraConfig> {
        (self.lora_rank > 0).then(|| LoraConfig {
            rank: self.lora_rank,
            alpha: self.lora_alpha,
            targets: self.lora_targets.clone(),
            rslora: self.rslora,
        })
    }

    /// Installs adapters when asked (the base frozen), else makes every
    /// weight trainable (a loaded model's tensors start frozen); returns
    /// the adapters' config.
    pub fn install(&self, model: &mut dyn Module, seed: u64) -> CliResult<Option<LoraConfig>> {
        let Some(cfg) = self.config() else {
            model.set_trainable(&|_| true, true);
            return Ok(None);
        };
        let layers = lora::install(model, &cfg, &mut Rng::new(seed)).context("--lora-targets")?;
        eprintln!(
            "LoRA rank {} on {} layers; the base is frozen",
            cfg.rank,
            layers.len()
        );
        Ok(Some(cfg))
    }
}

/// A `--data` SFT source: `alpaca`, `alpaca-zh` or a file.
fn sft_data_path(data: &str) -> CliResult<PathBuf> {
    let file = match data {
        "alpaca" => "alpaca_data.json.gz",
        "alpaca-zh" => "alpaca_zh_carbonz0.json.gz",
        path => {
            let p = PathBuf::from(path);
            if !p.is_file() {
                bail!("--data {path}: file not found (or use alpaca, alpaca-zh)");
            }
            return Ok(p);
        }
    };
    Ok(kindling_data::registry::dataset_dir(data)?.join(file))
}

/// `--data` preference pairs: `hh-rlhf` (all four splits) or a JSONL file.
fn read_preference(data: &str) -> CliResult<preference::ReadPairs> {
    let files: Vec<PathBuf> = if data == "hh-rlhf" {
        let dir = kindling_data::registry::dataset_dir("hh-rlhf")?;
        [
            "helpful-base",
            "harmless-base",
            "helpful-online",
            "helpful-rejection-sampled",
        ]
        .iter()
        .map(|s| dir.join(format!("{s}-test.jsonl.gz")))
        .collect()
    } else {
        let p = PathBuf::from(data);
        if !p.is_file() {
            bail!("--data {data}: file not found (or use hh-rlhf)");
        }
        vec![p]
    };
    let mut all = preference::ReadPairs::default();
    for f in files {
        let r = preference::read_pairs(&f)?;
        all.pairs.extend(r.pairs);
        all.identical += r.identical;
        all.prompt_mismatch += r.prompt_mismatch;
    }
    Ok(all)
}

/// Pairs tokenized and split by the fixed rule.
struct Pairs {
    train: Vec<EncodedPair>,
    val: Vec<EncodedPair>,
    test: Vec<EncodedPair>,
    /// Held-out prompts (for sampling answers).
    val_prompts: Vec<Vec<Message>>,
    too_long: usize,
}

fn encode_pairs(lm: &ChatLlama, data: &str, max_len: usize, limit: usize) -> CliResult<Pairs> {
    let read = read_preference(data)?;
    let mut out = Pairs {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
        val_prompts: Vec::new(),
        too_long: 0,
    };
    for p in &read.pairs {
        let split = p.split();
        if split == Split::Train && limit > 0 && out.train.len() >= limit {
            continue;
        }
        match preference::encode_pair(&lm.tokenizer, &lm.template, p, max_len)? {
            None => out.too_long += 1,
            Some(e) => match split {
                Split::Train => out.train.push(e),
                Split::Validation => {
                    out.val.push(e);
                    out.val_prompts.push(p.prompt.clone());
                }
                Split::Test => out.test.push(e),
            },
        }
    }
    eprintln!(
        "{data}: {} pairs ({} skipped: same text on both sides; {} skipped: prompts differ; {} longer than {max_len} tokens left out) -> {} train / {} validation / {} test",
        read.pairs.len(),
        read.identical,
        read.prompt_mismatch,
        out.too_long,
        out.train.len(),
        out.val.len(),
        out.test.len()
    );
    Ok(out)
}

/// Greedy answers of `model` to `prompts`.
fn answers(
    lm: &ChatLlama,
    model: &Llama,
    prompts: &[Vec<Message>],
    max_new_tokens: usize,
) -> CliResult<Vec<String>> {
    let mut o = GenerateOptions::greedy(max_new_tokens);
    o.stop_ids = lm.stop_ids.clone();
    let mut g = Generator::new(model, o)?;
    let decode = |ids: &[u32]| lm.tokenizer.decode(ids).unwrap_or_default();
    prompts
        .iter()
        .map(|p| {
            g.reset();
            let ids = lm.tokenizer.encode(&lm.template.render(p, true)?)?;
            Ok(g.generate(&ids, &decode, &mut |_| true)?.text)
        })
        .collect()
}

/// Saves what was trained: the adapter alone (PEFT) or the whole model (a
/// Hugging Face folder with the tokenizer).
fn save_result(
    lm: &ChatLlama,
    lora_cfg: &Option<LoraConfig>,
    base: &Path,
    out: &Path,
) -> CliResult<PathBuf> {
    match lora_cfg {
        Some(cfg) => {
            let dir = out.join("adapter");
            lora_files::save_peft(&dir, &lm.model, cfg, &base.display().to_string())?;
            Ok(dir)
        }
        None => {
            let dir = out.join("hf");
            llama_files::save_hf_dir(&lm.model, &dir)?;
            lm.tokenizer.save(&dir)?;
            Ok(dir)
        }
    }
}

/// Stop at the next step boundary on SIGINT/SIGTERM, checkpointed.
fn stop() -> kindling_train::trainer::StopWhen<'static> {
    kindling_train::trainer::StopWhen {
        after: None,
        flag: Some(crate::stop::on_signals()),
    }
}

fn log(line: &str) {
    crate::common::log_line(line);
}

#[derive(Args)]
pub struct FinetuneSft {
    /// The model to fine-tune: a GGUF file, a Hugging Face folder, a run directory, or smollm2-135m-instruct.
    #[arg(long)]
    pub model: PathBuf,
    /// Conversations: alpaca, alpaca-zh (fetched datasets) or a .json/.jsonl(.gz) file of
    /// {messages} / {instruction, input, output} / {prompt, response} records.
    #[arg(long)]
    pub data: String,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Optimizer steps.
    #[arg(long, default_value_t = 200)]
    pub steps: usize,
    /// Packed rows per micro-batch.
    #[arg(long, default_value_t = 2)]
    pub batch_size: usize,
    /// Micro-batches per step (gradient accumulation).
    #[arg(long, default_value_t = 4)]
    pub accum_steps: usize,
    /// Tokens per packed row; longer conversations are cut.
    #[arg(long, default_value_t = 512)]
    pub seq_len: usize,
    /// Peak learning rate [default: 5e-5, or 2e-4 with --lora-rank].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Evaluate the held-out answer loss (and checkpoint) every N steps.
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Held-out conversations scored (one in 50 is held out).
    #[arg(long, default_value_t = 100)]
    pub eval_examples: usize,
    /// Train on at most N conversations (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Before/after answers to show, from held-out prompts.
    #[arg(long, default_value_t = 3)]
    pub samples: usize,
    /// Seed for the data order, new weights (adapters, heads) and sampling.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn finetune_sft(a: FinetuneSft) -> CliResult<()> {
    a.threads.apply()?;
    let mut lm = load_chat_llama(&a.model, None)?;
    let lora_cfg = a.lora.install(&mut lm.model, a.seed)?;
    let opts = sft_run::SftOptions {
        steps: a.steps,
        batch_size: a.batch_size,
        accum_steps: a.accum_steps,
        seq_len: a.seq_len,
        lr: a.lr.unwrap_or(if lora_cfg.is_some() { 2e-4 } else { 5e-5 }),
        eval_every: a.eval_every,
        eval_examples: a.eval_examples,
        limit: a.limit,
        seed: a.seed,
        ..sft_run::SftOptions::defaults(&a.model.display().to_string(), &a.data)
    };
    let opts = sft_run::SftOptions {
        min_lr: opts.lr / 10.0,
        ..opts
    };
    let path = sft_data_path(&a.data)?;
    let (conversations, empty) = sft_data::read_conversations(&path)?;
    if empty > 0 {
        eprintln!(
            "{}: {empty} records with an empty answer left out",
            path.display()
        );
    }
    let data = sft_run::SftData::new(&conversations, &lm.tokenizer, &lm.template, &opts)?;
    let prompts: Vec<Vec<Message>> = data
        .val_conversations
        .iter()
        .take(a.samples)
        .map(|c: &Conversation| {
            let end = c
                .messages
                .iter()
                .position(|m| m.role == "assistant")
                .unwrap_or(c.messages.len());
            c.messages[..end].to_vec()
        })
        .collect();
    let before = answers(&lm, &lm.model, &prompts, 128)?;
    let out = sft_run::train(
        &lm.model,
        &data,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(),
        &log,
    )?;
    let after = answers(&lm, &lm.model, &prompts, 128)?;
    let saved = save_result(&lm, &lora_cfg, &lm.path, &a.run.out)?;
    let samples: Vec<_> = prompts
        .iter()
        .zip(before.iter().zip(&after))
        .map(|(p, (b, f))| json!({"prompt": p.last().map(|m| m.content.clone()), "before": b, "after": f}))
        .collect();
    let run = kindling_train::run_dir::RunDir::open(&a.run.out)?;
    run.write_json("samples.json", &json!(samples))?;
    for s in &samples {
        eprintln!(
            "\nprompt: {}\n  before: {}\n  after:  {}",
            s["prompt"].as_str().unwrap_or(""),
            s["before"].as_str().unwrap_or(""),
            s["after"].as_str().unwrap_or("")
        );
    }
    eprintln!(
        "held-out answer loss {} -> {:.4}; {:.0} tokens/s; saved {}",
        out.val_loss_before
            .map_or("?".into(), |v| format!("{v:.4}")),
        out.val_loss_after,
        out.tokens_per_sec,
        saved.display()
    );
    Report::new(a.json.enabled).finish(json!({
        "val_loss_before": out.val_loss_before,
        "val_loss_after": out.val_loss_after,
        "train_conversations": out.train_conversations,
        "val_conversations": out.val_conversations,
        "trainable_parameters": out.trainable_parameters,
        "epochs": out.epochs,
        "tokens_per_sec": out.tokens_per_sec,
        "seconds": out.seconds,
        "saved": saved,
        "samples": samples,
    }));
    Ok(())
}

/// Options of the preference commands (reward model, DPO).
#[derive(Args, Clone, Debug)]
pub struct PreferenceArgs {
    /// Preference pairs: hh-rlhf (fetched; split 80/10/10 by a fixed hash of the prompt) or a
    /// .jsonl(.gz) of {chosen, rejected} HH-style transcripts or {prompt, chosen, rejected}.
    #[arg(long, default_value = "hh-rlhf")]
    pub data: String,
    /// Optimizer steps.
    #[arg(long, default_value_t = 300)]
    pub steps: usize,
    /// Pairs per micro-batch.
    #[arg(long, default_value_t = 4)]
    pub batch_size: usize,
    /// Micro-batches per step.
    #[arg(long, default_value_t = 2)]
    pub accum_steps: usize,
    /// Pairs with a side longer than this many tokens are left out.
    #[arg(long, default_value_t = 384)]
    pub max_len: usize,
    /// Evaluate (and checkpoint) every N steps.
    #[arg(long, default_value_t = 50)]
    pub eval_every: usize,
    /// Validation pairs scored at each evaluation (0: all).
    #[arg(long, default_value_t = 200)]
    pub eval_pairs: usize,
    /// Train on at most N pairs (0: all).
    #[arg(long, default_value_t = 0)]
    pub limit: usize,
    /// Seed for the data order, new weights (adapters, heads) and sampling.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
}

#[derive(Args)]
pub struct TrainReward {
    /// The backbone: a GGUF file, a Hugging Face folder, a run directory, or smollm2-135m-instruct.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub pairs: PreferenceArgs,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Peak learning rate [default: 2e-5, or 2e-4 with --lora-rank].
    #[arg(long)]
    pub lr: Option<f32>,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn train_reward(a: TrainReward) -> CliResult<()> {
    a.threads.apply()?;
    let lm = load_chat_llama(&a.model, None)?;
    let p = &a.pairs;
    let pairs = encode_pairs(&lm, &p.data, p.max_len, p.limit)?;
    let ChatLlama {
        model, tokenizer, ..
    } = lm;
    let mut rm = RewardModel::from_backbone(model, &mut Rng::new(p.seed));
    let lora_cfg = a.lora.install(&mut rm, p.seed)?;
    if lora_cfg.is_some() {
        // The score head is new: it always trains.
        rm.set_trainable(&|n| n.starts_with("score."), true);
    }
    let lr = a.lr.unwrap_or(if lora_cfg.is_some() { 2e-4 } else { 2e-5 });
    let opts = reward_run::RewardOptions {
        steps: p.steps,
        batch_size: p.batch_size,
        accum_steps: p.accum_steps,
        max_len: p.max_len,
        lr,
        min_lr: lr / 10.0,
        eval_every: p.eval_every,
        eval_pairs: p.eval_pairs,
        limit: p.limit,
        seed: p.seed,
        ..reward_run::RewardOptions::defaults(&a.model.display().to_string(), &p.data)
    };
    let out = reward_run::train(
        &rm,
        &pairs.train,
        &pairs.val,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(),
        &log,
    )?;
    // The test split, scored once, at the end.
    let (test_accuracy, test_loss) = reward_run::score_pairs(&rm, &pairs.test)?;
    lora::merge(&mut rm)?;
    let dir = a.run.out.join("hf");
    save_reward_dir(&rm, &dir, tokenizer.eos_token_id())?;
    tokenizer.save(&dir)?;
    eprintln!(
        "held-out accuracy {} -> {:.3} (validation), {test_accuracy:.3} on {} test pairs (chance 0.5); saved {}",
        out.val_accuracy_before.map_or("?".into(), |v| format!("{v:.3}")),
        out.val_accuracy,
        pairs.test.len(),
        dir.display()
    );
    Report::new(a.json.enabled).finish(json!({
        "train_pairs": out.train_pairs,
        "val_pairs": out.val_pairs,
        "test_pairs": pairs.test.len(),
        "val_accuracy_before": out.val_accuracy_before,
        "val_accuracy": out.val_accuracy,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "pairs_per_sec": out.pairs_per_sec,
        "seconds": out.seconds,
        "saved": dir,
    }));
    Ok(())
}

#[derive(Args)]
pub struct Reward {
    /// A reward model folder (`train reward` writes DIR/hf; a run directory works too).
    #[arg(long)]
    pub model: PathBuf,
    /// The user's message.
    #[arg(long)]
    pub prompt: String,
    /// The answer to score.
    #[arg(long)]
    pub response: String,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// A reward model folder with its tokenizer and chat template.
fn load_reward(path: &Path) -> CliResult<(RewardModel, Tokenizer, ChatTemplate)> {
    if !path.exists() {
        bail!(
            "{}: no such file or directory (a reward model folder, as `train reward` writes)",
            path.display()
        );
    }
    let dir = crate::lm::resolve(path)?;
    let rm = reward_from_hf_dir(&dir)?;
    let tokenizer = Tokenizer::from_dir(&dir)?;
    let (template, _) = crate::lm::chat_parts(&tokenizer, None)?;
    Ok((rm, tokenizer, template))
}

pub fn reward(a: Reward) -> CliResult<()> {
    a.threads.apply()?;
    let (rm, tokenizer, template) = load_reward(&a.model)?;
    let messages = [
        Message::new("user", a.prompt.clone())?,
        Message::new("assistant", a.response.clone())?,
    ];
    let ids = tokenizer.encode(&template.render(&messages, false)?)?;
    let r = rm.reward(&ids)?;
    if !a.json.enabled {
        println!("{r:.4}");
    }
    Report::new(a.json.enabled).finish(json!({"reward": r, "tokens": ids.len()}));
    Ok(())
}

#[derive(Args)]
pub struct FinetuneDpo {
    /// The policy to fine-tune (and, as it starts, the reference).
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub pairs: PreferenceArgs,
    /// DPO's beta: how far the policy may move from the reference.
    #[arg(long, default_value_t = 0.1)]
    pub beta: f32,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Peak learning rate [default: 5e-6, or 5e-5 with --lora-rank].
    #[arg(long)]
    pub lr: Option<f32>,
    /// A reward model (`train reward`) that judges answers to held-out prompts, the
    /// starting model's against the fine-tuned one's [default: no judging].
    #[arg(long, value_name = "DIR")]
    pub judge: Option<PathBuf>,
    /// Held-out prompts judged.
    #[arg(long, default_value_t = 50)]
    pub judge_prompts: usize,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn finetune_dpo(a: FinetuneDpo) -> CliResult<()> {
    a.threads.apply()?;
    let mut lm = load_chat_llama(&a.model, None)?;
    let p = &a.pairs;
    let pairs = encode_pairs(&lm, &p.data, p.max_len, p.limit)?;
    let judge = a.judge.as_deref().map(load_reward).transpose()?;
    if let Some((_, jt, _)) = &judge {
        if jt.vocab_size() != lm.tokenizer.vocab_size() {
            bail!("--judge: its tokenizer has {} tokens, the policy's {}; a judge must share the policy's tokenizer", jt.vocab_size(), lm.tokenizer.vocab_size());
        }
    }
    let prompts: Vec<Vec<Message>> = pairs
        .val_prompts
        .iter()
        .take(a.judge_prompts)
        .cloned()
        .collect();
    let before = match judge {
        Some(_) => answers(&lm, &lm.model, &prompts, 96)?,
        None => Vec::new(),
    };
    let lora_cfg = a.lora.install(&mut lm.model, p.seed)?;
    let lr = a.lr.unwrap_or(if lora_cfg.is_some() { 5e-5 } else { 5e-6 });
    let opts = dpo_run::DpoOptions {
        beta: a.beta,
        steps: p.steps,
        batch_size: p.batch_size,
        accum_steps: p.accum_steps,
        max_len: p.max_len,
        lr,
        min_lr: lr / 10.0,
        eval_every: p.eval_every,
        eval_pairs: p.eval_pairs,
        limit: p.limit,
        seed: p.seed,
        ..dpo_run::DpoOptions::defaults(&a.model.display().to_string(), &p.data)
    };
    let out = dpo_run::train(
        &lm.model,
        &pairs.train,
        &pairs.val,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(),
        &log,
    )?;
    let mut win_rate = None;
    if let Some((rm, _, _)) = &judge {
        let after = answers(&lm, &lm.model, &prompts, 96)?;
        let mut wins = 0f32;
        for ((p, b), f) in prompts.iter().zip(&before).zip(&after) {
            let score = |answer: &str| -> CliResult<f32> {
                let mut m = p.clone();
                m.push(Message::new("assistant", answer)?);
                Ok(rm.reward(&lm.tokenizer.encode(&lm.template.render(&m, false)?)?)?)
            };
            let (sb, sa) = (score(b)?, score(f)?);
            wins += if sa > sb {
                1.0
            } else if sa == sb {
                0.5
            } else {
                0.0
            };
        }
        win_rate = Some(wins / prompts.len().max(1) as f32);
    }
    let saved = save_result(&lm, &lora_cfg, &lm.path, &a.run.out)?;
    eprintln!(
        "held-out implicit-reward accuracy {:.3}, DPO loss {:.4}{}; saved {}",
        out.val_reward_accuracy,
        out.val_loss,
        win_rate.map_or(String::new(), |w| format!(
            "; judge prefers the fine-tuned answers {:.1}% of the time",
            100.0 * w
        )),
        saved.display()
    );
    Report::new(a.json.enabled).finish(json!({
        "train_pairs": out.train_pairs,
        "val_pairs": out.val_pairs,
        "val_reward_accuracy": out.val_reward_accuracy,
        "val_loss": out.val_loss,
        "win_rate": win_rate,
        "judged_prompts": win_rate.map(|_| prompts.len()),
        "pairs_per_sec": out.pairs_per_sec,
        "seconds": out.seconds,
        "saved": saved,
    }));
    Ok(())
}

#[derive(Args)]
pub struct FinetunePpo {
    /// The policy to fine-tune (and, as it starts, the frozen reference).
    #[arg(long)]
    pub model: PathBuf,
    /// The reward model (`train reward`'s folder); it must share the policy's tokenizer.
    #[arg(long)]
    pub reward: PathBuf,
    /// Prompts: hh-rlhf (the training split's prompts) or a .jsonl of {prompt} records.
    #[arg(long, default_value = "hh-rlhf")]
    pub data: String,
    /// Rollouts (each samples one answer per prompt for --rollout-size prompts).
    #[arg(long, default_value_t = 40)]
    pub rollouts: usize,
    /// Prompts per rollout.
    #[arg(long, default_value_t = 8)]
    pub rollout_size: usize,
    /// Passes over each rollout.
    #[arg(long, default_value_t = 2)]
    pub ppo_epochs: usize,
    /// Answers per update.
    #[arg(long, default_value_t = 4)]
    pub minibatch_size: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 48)]
    pub max_new_tokens: usize,
    /// KL penalty per token against the reference.
    #[arg(long, default_value_t = 0.05)]
    pub kl_coef: f32,
    /// Prompts longer than this many tokens are left out.
    #[arg(long, default_value_t = 256)]
    pub max_prompt_len: usize,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Learning rate [default: 1e-5, or 1e-4 with --lora-rank].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Seed for the data order, new weights (adapters, heads) and sampling.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn finetune_ppo(a: FinetunePpo) -> CliResult<()> {
    a.threads.apply()?;
    let lm = load_chat_llama(&a.model, None)?;
    let reference = load_chat_llama(&a.model, None)?.model;
    let (rm, rt, _) = load_reward(&a.reward)?;
    if rt.vocab_size() != lm.tokenizer.vocab_size() {
        bail!(
            "--reward {}: its tokenizer has {} tokens, the policy's {}; the reward model must share the policy's tokenizer",
            a.reward.display(),
            rt.vocab_size(),
            lm.tokenizer.vocab_size()
        );
    }
    let prompts: Vec<Vec<u32>> = if a.data == "hh-rlhf" {
        read_preference("hh-rlhf")?
            .pairs
            .iter()
            .filter(|p| p.split() == Split::Train)
            .map(|p| Ok(lm.tokenizer.encode(&lm.template.render(&p.prompt, true)?)?))
            .collect::<CliResult<Vec<_>>>()?
    } else {
        let text = sft_data::read_text_maybe_gz(Path::new(&a.data))
            .with_context(|| format!("--data {}", a.data))?;
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .enumerate()
            .map(|(i, l)| {
                let v: serde_json::Value = serde_json::from_str(l)
                    .with_context(|| format!("{}:{}: not JSON", a.data, i + 1))?;
                let p = v["prompt"]
                    .as_str()
                    .with_context(|| format!("{}:{}: no string field `prompt`", a.data, i + 1))?;
                Ok(lm
                    .tokenizer
                    .encode(&lm.template.render(&[Message::new("user", p)?], true)?)?)
            })
            .collect::<CliResult<Vec<_>>>()?
    };
    let prompts: Vec<Vec<u32>> = prompts
        .into_iter()
        .filter(|p| p.len() <= a.max_prompt_len)
        .collect();
    let ChatLlama {
        model,
        stop_ids,
        path,
        tokenizer,
        template,
        ..
    } = lm;
    let mut ac = ppo_run::ActorCritic::new(model);
    let lora_cfg = a.lora.install(&mut ac.policy, a.seed)?;
    let lr = a.lr.unwrap_or(if lora_cfg.is_some() { 1e-4 } else { 1e-5 });
    let opts = ppo_run::PpoOptions {
        rollouts: a.rollouts,
        rollout_size: a.rollout_size,
        ppo_epochs: a.ppo_epochs,
        minibatch_size: a.minibatch_size,
        max_new_tokens: a.max_new_tokens,
        kl_coef: a.kl_coef,
        lr,
        seed: a.seed,
        ..ppo_run::PpoOptions::defaults(
            &a.model.display().to_string(),
            &a.reward.display().to_string(),
            &a.data,
        )
    };
    let out = ppo_run::train(
        &ac,
        &reference,
        &rm,
        &prompts,
        &stop_ids,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(),
        &log,
    )?;
    let lm = ChatLlama {
        model: ac.policy,
        tokenizer,
        template,
        stop_ids,
        path,
    };
    let saved = save_result(&lm, &lora_cfg, &lm.path, &a.run.out)?;
    let show = |s: &Option<ppo_run::RolloutStats>| {
        s.map_or("?".to_string(), |s| {
            format!(
                "reward {:.3}, KL {:.3}, entropy {:.3}",
                s.reward, s.kl, s.entropy
            )
        })
    };
    eprintln!(
        "first rollout: {}\nlast rollout:  {}\ncurves: {}; saved {}",
        show(&out.first),
        show(&out.last),
        a.run.out.join("curves.png").display(),
        saved.display()
    );
    Report::new(a.json.enabled).finish(json!({
        "prompts": prompts.len(),
        "first": out.first,
        "last": out.last,
        "rollouts": out.rollouts,
        "seconds": out.seconds,
        "saved": saved,
    }));
    Ok(())
}

#[derive(Args)]
pub struct FinetuneGrpo {
    /// The policy to fine-tune (and, as it starts, the frozen reference).
    #[arg(long)]
    pub model: PathBuf,
    /// arithmetic (3-digit sums and 9.11-vs-9.3 comparisons, generated from the seed)
    /// or a .jsonl of {question, answer} records (one in ten held out).
    #[arg(long, default_value = "arithmetic")]
    pub task: String,
    /// Optimizer steps (one per group of prompts).
    #[arg(long, default_value_t = 60)]
    pub steps: usize,
    /// Prompts per step.
    #[arg(long, default_value_t = 4)]
    pub prompts_per_step: usize,
    /// Answers sampled per prompt.
    #[arg(long, default_value_t = 8)]
    pub group_size: usize,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 24)]
    pub max_new_tokens: usize,
    /// KL coefficient against the reference.
    #[arg(long, default_value_t = 0.04)]
    pub beta: f32,
    /// Held-out problems scored (greedy) at each evaluation.
    #[arg(long, default_value_t = 100)]
    pub eval_problems: usize,
    /// Evaluate every N steps.
    #[arg(long, default_value_t = 20)]
    pub eval_every: usize,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Learning rate [default: 1e-5, or 1e-4 with --lora-rank].
    #[arg(long)]
    pub lr: Option<f32>,
    /// Seed for the data order, new weights (adapters, heads) and sampling.
    #[arg(long, default_value_t = 1337)]
    pub seed: u64,
    #[command(flatten)]
    pub run: RunDirArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn finetune_grpo(a: FinetuneGrpo) -> CliResult<()> {
    a.threads.apply()?;
    let mut lm = load_chat_llama(&a.model, None)?;
    let reference = load_chat_llama(&a.model, None)?.model;
    let (train, held_out) = if a.task == "arithmetic" {
        grpo_run::arithmetic_problems(2000, a.eval_problems, a.seed)
    } else {
        let all = grpo_run::read_problems(Path::new(&a.task))
            .with_context(|| format!("--task {}", a.task))?;
        let (mut train, mut held) = (Vec::new(), Vec::new());
        for (i, p) in all.into_iter().enumerate() {
            if i % 10 == 0 {
                held.push(p)
            } else {
                train.push(p)
            }
        }
        (train, held)
    };
    if train.is_empty() || held_out.is_empty() {
        bail!(
            "--task {}: {} training and {} held-out problems; both must be non-empty",
            a.task,
            train.len(),
            held_out.len()
        );
    }
    let lora_cfg = a.lora.install(&mut lm.model, a.seed)?;
    let lr = a.lr.unwrap_or(if lora_cfg.is_some() { 1e-4 } else { 1e-5 });
    let opts = grpo_run::GrpoOptions {
        steps: a.steps,
        prompts_per_step: a.prompts_per_step,
        group_size: a.group_size,
        max_new_tokens: a.max_new_tokens,
        beta: a.beta,
        lr,
        eval_every: a.eval_every,
        eval_problems: a.eval_problems,
        seed: a.seed,
        ..grpo_run::GrpoOptions::defaults(&a.model.display().to_string(), &a.task)
    };
    let out = grpo_run::train(
        &lm.model,
        &reference,
        &lm.tokenizer,
        &lm.template,
        &lm.stop_ids,
        &train,
        &held_out,
        &opts,
        &a.run.out,
        a.run.mode(),
        stop(),
        &log,
    )?;
    let saved = save_result(&lm, &lora_cfg, &lm.path, &a.run.out)?;
    eprintln!(
        "held-out exact-match accuracy {} -> {:.3} after {} steps; saved {}",
        out.accuracy_before
            .map_or("?".into(), |v| format!("{v:.3}")),
        out.accuracy_after,
        out.steps,
        saved.display()
    );
    Report::new(a.json.enabled).finish(json!({
        "accuracy_before": out.accuracy_before,
        "accuracy_after": out.accuracy_after,
        "steps": out.steps,
        "held_out": held_out.len(),
        "seconds": out.seconds,
        "saved": saved,
    }));
    Ok(())
}

#[derive(Subcommand)]
pub enum LoraCmd {
    /// Fold a LoRA adapter into the base weights and save the merged model as a Hugging Face folder.
    Merge(LoraMerge),
}

#[derive(Args)]
pub struct LoraMerge {
    /// The base model the adapter was trained on.
    #[arg(long)]
    pub model: PathBuf,
    /// The adapter folder (adapter_config.json + adapter_model.safetensors).
    #[arg(long)]
    pub adapter: PathBuf,
    /// Where to write the merged model (must not exist unless --force).
    #[arg(long)]
    pub out: PathBuf,
    /// Replace an existing --out.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn lora(cmd: LoraCmd) -> CliResult<()> {
    let LoraCmd::Merge(a) = cmd;
    if a.out.exists() && !a.force {
        bail!(
            "--out {}: already exists; give another directory or --force",
            a.out.display()
        );
    }
    let mut lm = load_chat_llama(&a.model, Some(&a.adapter))?;
    let merged = lora::merge(&mut lm.model)?;
    llama_files::save_hf_dir(&lm.model, &a.out)?;
    lm.tokenizer.save(&a.out)?;
    eprintln!(
        "merged {merged} adapters into {}; saved {}",
        lm.path.display(),
        a.out.display()
    );
    Report::new(a.json.enabled).finish(json!({"merged_layers": merged, "saved": a.out}));
    Ok(())
}

#[derive(Subcommand)]
pub enum MemoryCmd {
    /// Turn what the user told `chat --memory DIR` into a LoRA adapter the next chat loads.
    Consolidate(Consolidate),
    /// Point the memory at an earlier adapter (undo a bad consolidation).
    Rollback(Rollback),
}

#[derive(Args)]
pub struct Consolidate {
    /// The memory directory `chat --memory` writes.
    #[arg(long)]
    pub memory: PathBuf,
    /// The base model (the one `chat` runs).
    #[arg(long)]
    pub model: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 120)]
    pub steps: usize,
    /// LoRA rank of the adapter.
    #[arg(long, default_value_t = 16)]
    pub lora_rank: usize,
    /// Learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f32,
    /// Measure forgetting on held-out Alpaca answers (needs `data fetch alpaca`) [default: off].
    #[arg(long)]
    pub forgetting: bool,
    /// Replay the base model's own answers to this many everyday prompts beside the facts
    /// (pseudo-rehearsal: less forgetting), at most 32; 0 trains on the facts alone.
    #[arg(long, default_value_t = 32)]
    pub replay: usize,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

#[derive(Args)]
pub struct Rollback {
    /// The memory directory `chat --memory` writes.
    #[arg(long)]
    pub memory: PathBuf,
    /// The adapter number to make current (see the memory's adapters/ folder).
    #[arg(long)]
    pub to: u32,
}

/// `memory consolidate`: the stored statements into the memory's next
/// adapter (also what `chat --memory` runs in the background when idle).
pub fn consolidate_memory(a: &Consolidate, log: &dyn Fn(&str)) -> CliResult<memory::Consolidation> {
    let m = memory::Memory::open(&a.memory)?;
    let lm = load_chat_llama(&a.model, None)?;
    let general = if a.forgetting {
        let (convs, _) = sft_data::read_conversations(&sft_data_path("alpaca")?)?;
        let mut out = Vec::new();
        for c in convs
            .iter()
            .filter(|c| sft_data::is_held_out(c, 50))
            .take(50)
        {
            if let Some(e) = sft_data::encode(&lm.tokenizer, &lm.template, c, 512)? {
                out.push(e);
            }
        }
        Some(out)
    } else {
        None
    };
    let opts = memory::ConsolidateOptions {
        lora: LoraConfig {
            rank: a.lora_rank,
            alpha: 2.0 * a.lora_rank as f32,
            targets: ["q", "k", "v", "o", "gate", "up", "down"]
                .map(String::from)
                .to_vec(),
            rslora: false,
        },
        sft: sft_run::SftOptions {
            steps: a.steps,
            batch_size: 2,
            accum_steps: 1,
            seq_len: 256,
            lr: a.lr,
            min_lr: a.lr / 10.0,
            warmup_steps: 5,
            eval_every: a.steps,
            ..sft_run::SftOptions::defaults(&a.model.display().to_string(), "memory")
        },
        max_new_tokens: 32,
        base_name: lm.path.display().to_string(),
        replay: a.replay,
    };
    let load = || -> kindling_train::Result<Llama> {
        Ok(load_chat_llama(&a.model, None)
            .map_err(|e| e.to_string())?
            .model)
    };
    memory::consolidate(
        &m,
        &load,
        &lm.tokenizer,
        &lm.template,
        &lm.stop_ids,
        general.as_deref(),
        &opts,
        log,
    )
    .map_err(Into::into)
}

impl Consolidate {
    /// `memory consolidate`'s defaults for `memory` and `model`: parsed from
    /// the command's own options, so the defaults are said in one place.
    pub fn background(memory: &Path, model: &Path, threads: ThreadsArg) -> Consolidate {
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            c: Consolidate,
        }
        let mut d = <Defaults as clap::Parser>::parse_from([
            "consolidate".as_ref(),
            "--memory".as_ref(),
            memory.as_os_str(),
            "--model".as_ref(),
            model.as_os_str(),
        ])
        .c;
        d.threads = threads;
        d
    }
}

pub fn memory_cmd(cmd: MemoryCmd) -> CliResult<()> {
    match cmd {
        MemoryCmd::Rollback(a) => {
            if !a.memory.is_dir() {
                bail!("--memory {}: no such memory directory", a.memory.display());
            }
            let m = memory::Memory::open(&a.memory)?;
            m.set_current(a.to)?;
            eprintln!("{}: current adapter is now {:04}", a.memory.display(), a.to);
            Ok(())
        }
        MemoryCmd::Consolidate(a) => {
            a.threads.apply()?;
            let c = consolidate_memory(&a, &log)?;
            eprintln!(
                "adapter {:04}: recall of {} facts without them in context {:.2} -> {:.2}{}",
                c.adapter,
                c.facts,
                c.recall_before,
                c.recall_after,
                match (c.general_loss_before, c.general_loss_after) {
                    (Some(b), Some(f)) => format!("; held-out Alpaca answer loss {b:.4} -> {f:.4}"),
                    _ => String::new(),
                }
            );
            Report::new(a.json.enabled).finish(json!(c));
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct BenchSft {
    /// The model: a GGUF file, a Hugging Face folder, or smollm2-135m-instruct.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub lora: LoraArgs,
    /// Rows per step.
    #[arg(long, default_value_t = 2)]
    pub batch: usize,
    /// Tokens per row.
    #[arg(long, default_value_t = 256)]
    pub seq: usize,
    /// Timed steps (after one untimed).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

/// Fine-tuning speed: forward, backward and an AdamW step on random rows
/// (bench/sft_pytorch.py does the same in PyTorch + PEFT).
pub fn bench_sft(a: BenchSft) -> CliResult<()> {
    use kindling_tensor::Tensor;
    for (flag, v) in [("--batch", a.batch), ("--seq", a.seq), ("--steps", a.steps)] {
        if v == 0 {
            bail!("{flag} must be at least 1");
        }
    }
    a.threads.apply()?;
    let mut lm = load_chat_llama(&a.model, None)?;
    a.lora.install(&mut lm.model, 0)?;
    let model = &lm.model;
    let mut opt = kindling_train::optimizer::adamw_groups(model, 1e-5, 0.0, 0.999, &|_, _| false);
    let trainable: usize = model.trainable_parameters().iter().map(|t| t.numel()).sum();
    let mut rng = Rng::new(0);
    let v = model.config.vocab_size;
    let mut times = Vec::new();
    for step in 0..=a.steps {
        let ids: Vec<i64> = (0..a.batch * a.seq).map(|_| rng.below(v) as i64).collect();
        let t0 = std::time::Instant::now();
        let x = Tensor::from_vec_i64(ids.clone(), &[a.batch, a.seq])?;
        let logits = model.forward(&x, None)?;
        let rows = a.batch * a.seq;
        let loss = logits
            .reshape(&[rows, v])?
            .cross_entropy(&Tensor::from_vec_i64(ids, &[rows])?, None)?;
        kindling_nn::optim::Optimizer::zero_grad(&opt);
        loss.backward()?;
        kindling_nn::optim::Optimizer::step(&mut opt)?;
        if step > 0 {
            times.push(t0.elapsed().as_secs_f64());
        }
    }
    times.sort_by(|x, y| x.total_cmp(y));
    let med = times[times.len() / 2];
    let tps = (a.batch * a.seq) as f64 / med;
    let rss = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0);
    eprintln!(
        "{} trainable parameters; median step {med:.3} s, {tps:.1} tokens/s",
        trainable
    );
    Report::new(a.json.enabled).finish(json!({
        "impl": if a.lora.lora_rank > 0 { "kindling+lora" } else { "kindling" },
        "lora_rank": a.lora.lora_rank, "batch": a.batch, "seq": a.seq,
        "trainable_parameters": trainable,
        "median_step_seconds": med,
        "tokens_per_sec": tps,
        "peak_rss_mb": rss,
    }));
    Ok(())
}
