//! What several commands share: the options declared once (`--threads`,
//! `--json`, a run directory's `--out`/`--resume`/`--force`, MNIST's
//! `--data`, sampling) as `clap::Args` structs flattened into each command,
//! and the helpers behind them (threads, MNIST, checkpoints, run modes, the
//! flag a library's option error is about).

use anyhow::{bail, Context};
use clap::Args;
use kindling_data::{DigitSet, Mnist};
use kindling_models::generate::GenerateOptions;
use kindling_models::sampling::Sampling;
use kindling_train::run_dir::RunMode;
use std::path::{Path, PathBuf};

/// Errors the CLI reports in one line (`main` prints the chain with `: `).
pub type CliResult<T> = anyhow::Result<T>;

/// `--threads N`, the same on every command that computes.
#[derive(Args, Clone, Copy, Debug)]
pub struct ThreadsArg {
    /// CPU threads to compute with (training gives each a shard of every batch) [default: all cores].
    #[arg(long = "threads", id = "threads", value_name = "N")]
    pub count: Option<usize>,
}

impl ThreadsArg {
    /// Sets the thread count when `--threads` was given.
    pub fn apply(&self) -> CliResult<()> {
        set_threads(self.count)
    }
}

/// `--json`, the same on every command.
#[derive(Args, Clone, Copy, Debug)]
pub struct JsonArg {
    /// Print one JSON object with the results as the last line of stdout (the human report goes to stderr).
    #[arg(long = "json", id = "json")]
    pub enabled: bool,
}

/// A training run's directory. Each command sets the default of `--out`
/// (`runs/lenet5`, `runs/gpt`, `runs/lm`) with `mut_arg`.
#[derive(Args, Clone, Debug)]
pub struct RunDirArgs {
    /// Run directory: config.json, metrics.jsonl, model.safetensors, curves.png.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Continue the run in --out from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Start over in an --out that holds a run: the old run is moved aside (DIR.1, DIR.2, ...), not deleted.
    #[arg(long, conflicts_with = "resume")]
    pub force: bool,
}

impl RunDirArgs {
    pub fn mode(&self) -> RunMode {
        run_mode(self.resume, self.force)
    }
}

/// The directory a one-shot experiment (fine-tuning, a sweep, an attack)
/// writes its results to; `--out`'s default is set per command.
#[derive(Args, Clone, Debug)]
pub struct ResultsDirArgs {
    /// Run directory for config.json, results.json and what the command draws or saves.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Start over in an --out that holds results: the old ones are moved aside (DIR.1, ...), not deleted.
    #[arg(long)]
    pub force: bool,
}

impl ResultsDirArgs {
    pub fn mode(&self) -> RunMode {
        run_mode(false, self.force)
    }
}

/// `--data DIR` for the commands that read MNIST.
#[derive(Args, Clone, Debug)]
pub struct MnistDirArg {
    /// Directory holding the four MNIST .gz files [default: the data root's mnist/, see `kindling data list`].
    #[arg(long = "data", value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

/// Sampling options of the language-model commands (`chat`, `generate`).
/// `generate` sets its own defaults for a character GPT with `mut_arg`.
#[derive(Args, Clone, Debug)]
pub struct SamplingArgs {
    /// Most new tokens to generate (per answer in chat).
    #[arg(long, default_value_t = 256)]
    pub max_new_tokens: usize,
    /// 0 = greedy (always the most likely token, as transformers' default
    /// do_sample=False); higher = more varied.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    pub temperature: f32,
    /// Sample among the K most likely tokens only [default: all].
    #[arg(long, value_name = "K")]
    pub top_k: Option<usize>,
    /// Sample from the smallest set of tokens whose probability reaches P [default: off].
    #[arg(long, value_name = "P")]
    pub top_p: Option<f32>,
    /// Divide the logits of tokens already present by this (1 = off; 1.1-1.3 curbs loops; pretrained models only).
    #[arg(long, default_value_t = 1.0)]
    pub repetition_penalty: f32,
    /// Stop when the text contains this string (repeatable; pretrained models only) [default: none].
    #[arg(long = "stop", value_name = "TEXT")]
    pub stop: Vec<String>,
    /// Seed for sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl SamplingArgs {
    pub fn sampling(&self) -> Sampling {
        Sampling {
            temperature: self.temperature,
            top_k: self.top_k,
            top_p: self.top_p,
        }
    }

    /// The generator's options, with the model's stop ids.
    pub fn options(&self, stop_ids: &[u32]) -> CliResult<GenerateOptions> {
        let o = GenerateOptions {
            max_new_tokens: self.max_new_tokens,
            sampling: self.sampling(),
            repetition_penalty: self.repetition_penalty,
            stop_ids: stop_ids.to_vec(),
            stop_strings: self.stop.clone(),
            seed: self.seed,
            slide: false,
        };
        o.validate()
            .map_err(|e| anyhow::anyhow!(flag_names(&e.to_string())))?;
        Ok(o)
    }
}

pub fn set_threads(threads: Option<usize>) -> CliResult<()> {
    if let Some(n) = threads {
        if n == 0 {
            bail!("--threads must be at least 1");
        }
        let cores = std::thread::available_parallelism().map_or(1, |c| c.get());
        if n > cores {
            eprintln!(
                "warning: --threads {n} is more than this machine's {cores} cores; the extra threads only wait for each other"
            );
        }
        kindling_tensor::set_num_threads(n)?;
    }
    Ok(())
}

/// MNIST from `dir`, or from the data root's `mnist/`.
pub fn load_mnist(dir: Option<&Path>) -> CliResult<Mnist> {
    let dir = dir
        .map(Path::to_path_buf)
        .unwrap_or_else(Mnist::default_dir);
    Ok(Mnist::load(&dir)?)
}

/// MNIST's 55,000 / 5,000 / 10,000 split, or with `--limit N` the first N
/// training images and N/10 of validation and test (quick runs and tests).
pub fn mnist_splits(
    data: Option<&Path>,
    limit: Option<usize>,
) -> CliResult<(DigitSet, DigitSet, DigitSet)> {
    let (mut train, mut val, mut test) = load_mnist(data)?.split();
    if let Some(n) = limit {
        if n < 10 {
            bail!("--limit must be at least 10");
        }
        train = train.slice(0..n.min(train.len()))?;
        val = val.slice(0..(n / 10).min(val.len()))?;
        test = test.slice(0..(n / 10).min(test.len()))?;
    }
    Ok((train, val, test))
}

/// A run directory or a checkpoint file given to `flag`, resolved to the
/// checkpoint file `name` inside a directory.
pub fn checkpoint_path(flag: &str, given: &Path, name: &str) -> CliResult<PathBuf> {
    let path = if given.is_dir() {
        given.join(name)
    } else {
        given.to_path_buf()
    };
    if !path.exists() {
        bail!(
            "{flag} {}: no checkpoint found (expected a run directory or a .safetensors file)",
            given.display()
        );
    }
    Ok(path)
}

/// `--resume` / `--force` as the run directory's mode.
pub fn run_mode(resume: bool, force: bool) -> RunMode {
    match (resume, force) {
        (true, _) => RunMode::Resume,
        (false, true) => RunMode::Force,
        (false, false) => RunMode::Fresh,
    }
}

/// With `--resume`, the options the run in `out` was started with (so
/// `--out DIR --resume` alone continues it); `None` for a new run or a
/// directory that stored none.
pub fn resumed_options<T: serde::de::DeserializeOwned>(
    resume: bool,
    out: &Path,
) -> CliResult<Option<T>> {
    if !resume {
        return Ok(None);
    }
    let Some(stored) = kindling_train::trainer::stored_options(out)? else {
        return Ok(None);
    };
    let options = serde_json::from_value(stored).with_context(|| {
        format!(
            "--resume: {}: the stored options are not this command's",
            out.display()
        )
    })?;
    Ok(Some(options))
}

/// Options whose flag is not their field name in kebab case.
const FLAG_OF_FIELD: &[(&str, &str)] =
    &[("adversarial_eps", "--adversarial"), ("pooling", "--pool")];

/// The flag that sets the option `field` (`n_layer` → `--n-layer`).
pub fn flag_of(field: &str) -> String {
    FLAG_OF_FIELD
        .iter()
        .find(|(f, _)| *f == field)
        .map(|(_, flag)| flag.to_string())
        .unwrap_or_else(|| format!("--{}", field.replace('_', "-")))
}

/// A library message about option fields, with the fields named in
/// backquotes or at the start (`repetition_penalty must be ...`) said as
/// flags.
fn flag_names(message: &str) -> String {
    let (head, rest) = message.split_once(' ').unwrap_or((message, ""));
    if head.chars().all(|c| c.is_ascii_lowercase() || c == '_') && head.contains('_')
        || matches!(head, "temperature" | "seed")
    {
        format!("{} {rest}", flag_of(head))
    } else {
        message.to_string()
    }
}

/// A library's words about options, with each option it names in
/// backquotes (`` `lr` ``, `` `qk_norm` ``) said as its flag; other quoted
/// words (values such as `` `linear` ``) are kept.
fn flags_in(problem: &str) -> String {
    let is_field = |w: &str| OPTION_FIELDS.contains(&w);
    let parts: Vec<&str> = problem.split('`').collect();
    let mut out = String::new();
    for (i, part) in parts.iter().enumerate() {
        if i % 2 == 1 && i + 1 < parts.len() {
            if is_field(part) {
                out.push_str(&flag_of(part));
            } else {
                out.push('`');
                out.push_str(part);
                out.push('`');
            }
        } else {
            out.push_str(part);
        }
    }
    out
}

/// The options libraries name (in backquotes) in their messages and notes;
/// a backquoted word not listed here (a value such as `gpt_neo`) is kept.
const OPTION_FIELDS: &[&str] = &[
    "arch",
    "tokenizer",
    "schedule",
    "qk_norm",
    "lr",
    "min_lr",
    "n_head",
    "n_embd",
    "n_layer",
    "batch_size",
    "block_size",
    "optimizer",
    "data",
    "out",
    "resume",
    "force",
    "preset",
    "dropout",
    "samples",
    "freeze",
    "threads",
    "pool",
    "pooling",
    "epochs",
    "seed",
    "limit",
    "steps",
    "beta",
    "temperature",
    "warmup",
    "top_k",
    "top_p",
    "repetition_penalty",
    "adversarial_eps",
    "vocab_size",
    "accum_steps",
    "eval_every",
    "eval_examples",
    "eval_interval",
    "eval_iters",
    "eval_problems",
    "eval_pairs",
    "group_size",
    "max_iters",
    "max_len",
    "max_new_tokens",
    "minibatch_size",
    "ppo_epochs",
    "prompts_per_step",
    "rollout_size",
    "rollouts",
    "seq_len",
    "lora_alpha",
    "cooldown_frac",
    "grad_clip",
    "weight_decay",
    "max_length",
    "stride",
    "shots",
    "n",
    "corpus",
    "teacher",
    "student",
    "alpha",
    "sparsity",
    "method",
    "eval_windows",
    "warmup_steps",
    "min_count",
    "mask_prob",
    "heldout_percent",
    "eval_sentences",
];

/// A library's progress note on stderr, its option names said as flags.
pub fn log_line(line: &str) {
    eprintln!("{}", flags_in(line));
}

/// The error in one line as the user should read it: the context each
/// layer added (a flag, a file), then the cause; a cause whose words its
/// parent already quotes (thiserror's `"{path}: {source}"`) is not repeated.
/// A training library's option error names the flag that sets the option.
pub fn user_message(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut parent = String::new();
    for cause in e.chain() {
        // Libraries name options by field in backquotes; say them as flags.
        // The CLI's own words (a config file's `key`) are kept as written.
        let from_library = cause.is::<kindling_train::Error>()
            || cause.is::<kindling_data::Error>()
            || cause.is::<kindling_tensor::Error>();
        let text = match cause.downcast_ref::<kindling_train::Error>() {
            Some(kindling_train::Error::Option { field, problem }) => {
                format!("{} {}", flag_of(field), flags_in(problem))
            }
            _ if from_library => flags_in(&cause.to_string()),
            _ => cause.to_string(),
        };
        if !parent.contains(&text) {
            parts.push(text.clone());
        }
        parent = text;
    }
    parts.join(": ")
}
