//! Pretrained language models from the files people share: `next-token`,
//! `chat`, and `generate --model`. `--model` is a GGUF file, a Hugging Face
//! folder, or a Kindling language-model run directory (which is one).

use crate::common::{CliResult, JsonArg, SamplingArgs, ThreadsArg};
use crate::report::Report;
use anyhow::{bail, Context};
use clap::Args;
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message, CHATML};
use kindling_models::generate::{CausalLm, GenerateOptions, Generation, Generator};
use kindling_models::{gpt2_files, llama_files};
use kindling_tensor::gguf::GgufFile;
use kindling_tensor::{no_grad, Tensor};
use serde_json::json;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A model with its tokenizer and chat template.
pub struct LoadedLm {
    /// A LLaMA or a GPT-2.
    pub model: Box<dyn CausalLm>,
    pub num_parameters: usize,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// Ids that end a turn: the tokenizer's EOS and, for ChatML, `<|im_end|>`.
    pub stop_ids: Vec<u32>,
}

/// A path as given, or the name of a fetched model dataset
/// (`smollm2-135m-instruct`), which resolves to its GGUF in the data root.
pub fn resolve(path: &Path) -> CliResult<PathBuf> {
    // A `train lm` run directory keeps its Hugging Face folder in `hf/`.
    if path.join("hf").join("config.json").is_file() {
        return Ok(path.join("hf"));
    }
    if path.exists() {
        return Ok(path.to_path_buf());
    }
    let name = path.to_string_lossy();
    if let Ok(ds) = kindling_data::registry::find(&name) {
        if let Some(f) = ds.files.iter().find(|f| f.file_name.ends_with(".gguf")) {
            return Ok(kindling_data::registry::dataset_dir(&name)?.join(f.file_name));
        }
    }
    bail!(
        "--model {}: no such file or directory (nor a fetched model such as smollm2-135m-instruct)",
        path.display()
    )
}

/// The chat template a tokenizer ships (ChatML when none) and the ids that
/// end a turn: the tokenizer's EOS, the config's, and ChatML's `<|im_end|>`.
pub fn chat_parts(
    tokenizer: &Tokenizer,
    config_eos: Option<u32>,
) -> CliResult<(ChatTemplate, Vec<u32>)> {
    let piece = |id: Option<u32>| {
        id.and_then(|i| tokenizer.id_to_token(i))
            .unwrap_or_default()
    };
    let (bos, eos) = (
        piece(tokenizer.bos_token_id()),
        piece(tokenizer.eos_token_id()),
    );
    let template = ChatTemplate::new(tokenizer.chat_template().unwrap_or(CHATML), &bos, &eos)?;
    let mut stop_ids: Vec<u32> = tokenizer
        .eos_token_id()
        .into_iter()
        .chain(config_eos)
        .chain(tokenizer.token_to_id("<|im_end|>"))
        .collect();
    stop_ids.sort_unstable();
    stop_ids.dedup();
    Ok((template, stop_ids))
}

/// `model_type` of a Hugging Face folder's `config.json`.
pub(crate) fn hf_model_type(dir: &Path) -> CliResult<String> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| path.display().to_string())?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    Ok(v.get("model_type")
        .and_then(|m| m.as_str())
        .unwrap_or("?")
        .to_string())
}

/// How `--model` is loaded: `--adapter DIR` (a LoRA adapter on top of a
/// LLaMA-family model) and `--quantized` (compute on a GGUF's blocks).
#[derive(Args, Clone, Debug, Default)]
pub struct AdapterArg {
    /// A LoRA adapter folder in PEFT's format (adapter_config.json + adapter_model.safetensors)
    /// to run on top of --model [default: none].
    #[arg(long, value_name = "DIR")]
    pub adapter: Option<PathBuf>,
    /// Multiply by a GGUF file's quantized blocks as llama.cpp does (8-bit activations,
    /// integer dot products, its order of operations: on Q8_0/Q4_0/Q4_1 files the same
    /// logits and tokens as llama.cpp's CPU backend) instead of dequantizing the weights to f32.
    #[arg(long)]
    pub quantized: bool,
}

pub fn load(path: &Path) -> CliResult<LoadedLm> {
    load_with(path, None, false)
}

/// [`load`] with an optional LoRA adapter installed on the model, and a
/// GGUF's linear layers kept in their blocks when `quantized`.
pub fn load_with(path: &Path, adapter: Option<&Path>, quantized: bool) -> CliResult<LoadedLm> {
    let t0 = Instant::now();
    let resolved = resolve(path)?;
    let path = resolved.as_path();
    // (model, parameters, layers, width, the config's end-of-sequence id)
    type Described = (Box<dyn CausalLm>, usize, usize, usize, Option<u32>);
    let gpt2 = |m: kindling_models::gpt::Gpt| -> Described {
        let (n, l, c) = (
            kindling_nn::Module::num_parameters(&m),
            m.config.n_layer,
            m.config.n_embd,
        );
        (Box::new(m), n, l, c, None)
    };
    let llama = |mut m: kindling_models::llama::Llama| -> CliResult<Described> {
        if let Some(a) = adapter {
            kindling_models::lora_files::load_peft(a, &mut m)
                .with_context(|| format!("--adapter {}", a.display()))?;
        }
        let (n, l, c) = (
            kindling_nn::Module::num_parameters(&m),
            m.config.num_hidden_layers,
            m.config.hidden_size,
        );
        let eos = m.config.eos_token_id;
        Ok((Box::new(m), n, l, c, eos))
    };
    let ((model, num_parameters, layers, width, config_eos), tokenizer) = if path.is_dir() {
        let model = match hf_model_type(path)?.as_str() {
            _ if quantized => bail!(
                "--quantized: {} is a folder of f32 weights; give a GGUF file (`kindling quantize` writes one)",
                path.display()
            ),
            "gpt2" if adapter.is_some() => bail!(
                "--adapter: LoRA adapters run on LLaMA-family models; {} is a GPT-2",
                path.display()
            ),
            "gpt2" => gpt2(gpt2_files::gpt_from_hf_dir(path)?),
            "llama" => llama(llama_files::llama_from_hf_dir(path)?)?,
            other => {
                bail!(
                    "{}: model_type `{other}` is not supported (llama and gpt2 are)",
                    path.join("config.json").display()
                )
            }
        };
        (model, Tokenizer::from_dir(path)?)
    } else if path.is_file() {
        let g = GgufFile::open(path)?;
        let m = if quantized {
            llama_files::llama_from_gguf_quantized(&g)?
        } else {
            llama_files::llama_from_gguf(&g)?
        };
        (llama(m)?, Tokenizer::from_gguf(&g)?)
    } else {
        bail!("--model {}: no such file or directory", path.display());
    };
    let (template, stop_ids) = chat_parts(&tokenizer, config_eos)?;
    eprintln!(
        "loaded {} ({} layers, {} wide, {:.1}M parameters) in {:.1} s",
        path.display(),
        layers,
        width,
        num_parameters as f64 / 1e6,
        t0.elapsed().as_secs_f64()
    );
    Ok(LoadedLm {
        model,
        num_parameters,
        tokenizer,
        template,
        stop_ids,
    })
}

#[derive(Args)]
pub struct NextToken {
    /// A GGUF file, a Hugging Face model folder or a Kindling run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// The text whose next token is predicted (special tokens such as
    /// `<|im_start|>` are recognised).
    #[arg(long)]
    pub text: String,
    /// How many of the most likely tokens to show.
    #[arg(long, default_value_t = 10)]
    pub top: usize,
    #[command(flatten)]
    pub adapter: AdapterArg,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

pub fn next_token(args: NextToken) -> CliResult<()> {
    args.threads.apply()?;
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let lm = load_with(
        &args.model,
        args.adapter.adapter.as_deref(),
        args.adapter.quantized,
    )?;
    let ids = lm.tokenizer.encode(&args.text)?;
    if ids.is_empty() {
        bail!("--text must not be empty");
    }
    let ctx = lm.model.context_len();
    if ids.len() > ctx {
        bail!(
            "--text is {} tokens, longer than the model's context of {ctx}",
            ids.len()
        );
    }
    let _g = no_grad();
    let x = Tensor::from_vec_i64(ids.iter().map(|&i| i as i64).collect(), &[1, ids.len()])?;
    let logits = lm
        .model
        .forward_last(&x, &mut lm.model.new_cache())?
        .to_vec_f32()?;
    let max = logits.iter().fold(f32::NEG_INFINITY, |m, &l| m.max(l));
    let total: f64 = logits.iter().map(|&l| ((l - max) as f64).exp()).sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_unstable_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    let report = Report::new(args.json.enabled);
    report.line(format!("{} prompt tokens; the next token:", ids.len()));
    let mut top = Vec::new();
    for &i in order.iter().take(args.top) {
        // A model's vocabulary may be padded beyond the tokenizer's (nanoGPT's 50304).
        let token = if i < lm.tokenizer.vocab_size() {
            lm.tokenizer.decode(&[i as u32])?
        } else {
            format!("<unused id {i}>")
        };
        let prob = ((logits[i] - max) as f64).exp() / total;
        report.line(format!(
            "{:>8}  {:<20} logit {:>8.3}  p {:.4}",
            i,
            format!("{token:?}"),
            logits[i],
            prob
        ));
        top.push(json!({"id": i, "token": token, "logit": logits[i], "prob": prob}));
    }
    report.finish(json!({"ids": ids, "top": top}));
    Ok(())
}

#[derive(Args)]
pub struct Chat {
    /// A GGUF file, a Hugging Face model folder or a Kindling run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// A system message that opens the conversation [default: the template's own, if any].
    #[arg(long)]
    pub system: Option<String>,
    /// Answer this one message and exit; without it, an interactive session
    /// (empty line or Ctrl-D ends it, /reset forgets the history) [default: interactive].
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    pub adapter: AdapterArg,
    /// A memory directory: every turn is stored there, and the adapter `kindling memory
    /// consolidate` made from earlier turns is loaded (unless --adapter is given) [default: none].
    #[arg(long, value_name = "DIR")]
    pub memory: Option<PathBuf>,
    /// With --memory, in an interactive session: after this many idle seconds, consolidate
    /// what was said into the memory's next adapter in the background (as `memory consolidate`
    /// does; the next session loads it); 0 never.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub idle_consolidate: f64,
    #[command(flatten)]
    pub sampling: SamplingArgs,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

fn answer(
    lm: &LoadedLm,
    gen: &mut Generator,
    history: &[Message],
    stream: bool,
) -> CliResult<(Generation, usize)> {
    let prompt = lm.template.render(history, true)?;
    let ids = lm.tokenizer.encode(&prompt)?;
    let decode = |ids: &[u32]| lm.tokenizer.decode(ids).unwrap_or_default();
    let mut out = std::io::stdout();
    let g = gen.generate(&ids, &decode, &mut |piece| {
        if stream {
            // A closed pipe (`| head`) ends the answer quietly.
            return write!(out, "{piece}").and_then(|_| out.flush()).is_ok();
        }
        true
    })?;
    Ok((g, ids.len()))
}

pub fn chat(args: Chat) -> CliResult<()> {
    args.threads.apply()?;
    let memory = args
        .memory
        .as_deref()
        .map(kindling_train::memory::Memory::open)
        .transpose()?;
    let mut adapter = args.adapter.adapter.clone();
    if let (Some(m), None) = (&memory, &adapter) {
        if let Some(n) = m.current()? {
            eprintln!(
                "memory {}: loading consolidated adapter {n:04}",
                m.dir.display()
            );
            adapter = Some(m.adapter_dir(n));
        }
    }
    let session = memory
        .as_ref()
        .map(|m| m.next_session())
        .transpose()?
        .unwrap_or(0);
    let remember = |role: &str, content: &str| -> CliResult<()> {
        if let Some(m) = &memory {
            m.append(&kindling_train::memory::Turn {
                session,
                role: role.into(),
                content: content.into(),
            })?;
        }
        Ok(())
    };
    let lm = load_with(&args.model, adapter.as_deref(), args.adapter.quantized)?;
    let options = args.sampling.options(&lm.stop_ids)?;
    let mut gen = Generator::new(lm.model.as_ref(), options)?;
    let mut history = Vec::new();
    if let Some(s) = &args.system {
        history.push(Message::new("system", s.clone())?);
    }
    if let Some(m) = &args.message {
        history.push(Message::new("user", m.clone())?);
        let (g, prompt_tokens) = answer(&lm, &mut gen, &history, !args.json.enabled)?;
        remember("user", m)?;
        remember("assistant", &g.text)?;
        if !args.json.enabled {
            println!();
        }
        let secs = g.decode_secs.max(1e-9);
        eprintln!(
            "{} prompt tokens in {:.2} s, {} new tokens at {:.1} tokens/s (stop: {})",
            prompt_tokens,
            g.prefill_secs,
            g.ids.len(),
            g.ids.len() as f64 / (g.prefill_secs + secs),
            g.stop.name()
        );
        Report::new(args.json.enabled).finish(json!({
            "answer": g.text,
            "ids": g.ids,
            "prompt_tokens": prompt_tokens,
            "new_tokens": g.ids.len(),
            "stop": g.stop.name(),
            "prefill_secs": g.prefill_secs,
            "decode_secs": g.decode_secs,
        }));
        return Ok(());
    }
    if args.json.enabled {
        bail!("--json needs --message (the interactive session is for people)");
    }
    eprintln!(
        "chat with {} — empty line or Ctrl-D to end, /reset to forget the history",
        args.model.display()
    );
    if !(args.idle_consolidate.is_finite() && args.idle_consolidate >= 0.0) {
        bail!(
            "--idle-consolidate must be 0 or more seconds, got {}",
            args.idle_consolidate
        );
    }
    // Lines arrive from a reader thread, so that sitting idle can be noticed.
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let Ok(l) = line else { break };
            if lines_tx.send(l).is_err() {
                break;
            }
        }
    });
    let idle = (args.memory.is_some() && args.idle_consolidate > 0.0)
        .then(|| std::time::Duration::from_secs_f64(args.idle_consolidate));
    let mut background = Background::default();
    let mut prompted = false;
    loop {
        if !prompted {
            eprint!("> ");
            prompted = true;
        }
        let line = match idle {
            Some(wait) => match lines.recv_timeout(wait) {
                Ok(l) => l,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                    background.poll();
                    if let Some(dir) = &args.memory {
                        background.start_if_new(dir, &args.model, args.threads);
                    }
                    continue;
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            },
            None => match lines.recv() {
                Ok(l) => l,
                Err(_) => break,
            },
        };
        prompted = false;
        background.poll();
        let line = line.trim_end_matches(['\n', '\r']);
        if line.is_empty() {
            break;
        }
        if line == "/reset" {
            history.truncate(usize::from(args.system.is_some()));
            gen.reset();
            continue;
        }
        history.push(Message::new("user", line)?);
        remember("user", line)?;
        background.said_something();
        let (g, _) = answer(&lm, &mut gen, &history, true)?;
        println!();
        // The whole history is the next turn's prompt, as the model saw it.
        remember("assistant", &g.text)?;
        history.push(Message::new("assistant", g.text)?);
    }
    background.finish();
    Ok(())
}

/// The consolidation `chat --memory` runs in the background when idle.
#[derive(Default)]
struct Background {
    running: Option<std::thread::JoinHandle<CliResult<kindling_train::memory::Consolidation>>>,
    /// The user said something since the last consolidation began.
    news: bool,
}

impl Background {
    fn said_something(&mut self) {
        self.news = true;
    }

    fn start_if_new(&mut self, memory: &Path, model: &Path, threads: ThreadsArg) {
        if self.running.is_some() || !self.news {
            return;
        }
        self.news = false;
        let a = crate::post_train::Consolidate::background(memory, model, threads);
        eprintln!(
            "\n(idle: consolidating what you told me into an adapter in the background; the next session loads it)"
        );
        self.running = Some(std::thread::spawn(move || {
            crate::post_train::consolidate_memory(&a, &|_| {})
        }));
    }

    /// Reports a finished consolidation.
    fn poll(&mut self) {
        if self.running.as_ref().is_some_and(|h| h.is_finished()) {
            self.report();
        }
    }

    fn report(&mut self) {
        let Some(h) = self.running.take() else {
            return;
        };
        match h.join() {
            Ok(Ok(c)) => eprintln!(
                "(memory: adapter {:04} ready: recall of {} facts without them in context {:.2} -> {:.2}; the next session loads it)",
                c.adapter, c.facts, c.recall_before, c.recall_after
            ),
            Ok(Err(e)) => eprintln!(
                "(memory: the background consolidation failed: {})",
                crate::common::user_message(&e)
            ),
            Err(_) => eprintln!("(memory: the background consolidation panicked)"),
        }
    }

    /// Waits for a consolidation under way, so that leaving loses nothing.
    fn finish(&mut self) {
        if self.running.is_some() {
            eprintln!("waiting for the background consolidation to finish (Ctrl-C abandons it)");
            self.report();
        }
    }
}

/// `generate --model`: a plain continuation of `--prompt` (no chat template).
pub fn generate(
    model_path: &Path,
    adapter: &AdapterArg,
    prompt: &str,
    sampling: &SamplingArgs,
    threads: ThreadsArg,
    json_out: bool,
) -> CliResult<()> {
    threads.apply()?;
    let lm = load_with(model_path, adapter.adapter.as_deref(), adapter.quantized)?;
    let ids = lm.tokenizer.encode(prompt)?;
    let mut gen = Generator::new(lm.model.as_ref(), sampling.options(&lm.stop_ids)?)?;
    let decode = |ids: &[u32]| lm.tokenizer.decode(ids).unwrap_or_default();
    let mut out = std::io::stdout();
    if !json_out {
        print!("{prompt}");
    }
    let g = gen.generate(&ids, &decode, &mut |piece| {
        json_out || write!(out, "{piece}").and_then(|_| out.flush()).is_ok()
    })?;
    if !json_out {
        println!();
    }
    let tps = g.ids.len() as f64 / g.decode_secs.max(1e-9);
    eprintln!(
        "{} prompt tokens ({:.0} tokens/s), {} new tokens ({:.1} tokens/s), stop: {}",
        ids.len(),
        ids.len() as f64 / g.prefill_secs.max(1e-9),
        g.ids.len(),
        tps,
        g.stop.name()
    );
    Report::new(json_out).finish(json!({
        "text": g.text,
        "ids": g.ids,
        "prompt_tokens": ids.len(),
        "stop": g.stop.name(),
        "prefill_tokens_per_sec": ids.len() as f64 / g.prefill_secs.max(1e-9),
        "generate_tokens_per_sec": tps,
    }));
    Ok(())
}

#[derive(Args)]
pub struct BenchLm {
    /// A GGUF file, a Hugging Face model folder or a Kindling run directory.
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt length in tokens (a fixed English text, repeated as needed).
    #[arg(long, default_value_t = 128)]
    pub prompt_tokens: usize,
    /// Tokens generated greedily through the KV cache (0 = prefill only).
    #[arg(long, default_value_t = 64)]
    pub new_tokens: usize,
    /// Repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    #[command(flatten)]
    pub threads: ThreadsArg,
    #[command(flatten)]
    pub json: JsonArg,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Prefill and KV-cached generation speed (compare with
/// `tools/gen_smollm2_bench.py` on the same machine, in the same run).
pub fn bench(args: BenchLm) -> CliResult<()> {
    args.threads.apply()?;
    if args.prompt_tokens == 0 || args.runs == 0 {
        bail!("--prompt-tokens and --runs must be at least 1");
    }
    let lm = load(&args.model)?;
    let text = "The quick brown fox jumps over the lazy dog. Language models read text as tokens, one after another, and predict what comes next. ";
    let mut ids = Vec::new();
    while ids.len() < args.prompt_tokens {
        ids.extend(lm.tokenizer.encode(text)?);
    }
    ids.truncate(args.prompt_tokens);
    let mut prefill = Vec::new();
    let mut decode = Vec::new();
    for _ in 0..args.runs {
        let mut opts = GenerateOptions::greedy(args.new_tokens.max(1));
        opts.stop_ids.clear();
        let mut gen = Generator::new(lm.model.as_ref(), opts)?;
        let g = gen.generate(&ids, &|_| String::new(), &mut |_| true)?;
        prefill.push(ids.len() as f64 / g.prefill_secs);
        // The first new token comes from the prefill's logits; the others
        // each cost one cached forward.
        if args.new_tokens > 1 {
            decode.push((g.ids.len() - 1) as f64 / g.decode_secs);
        }
    }
    let (p, d) = (
        median(prefill),
        if decode.is_empty() {
            0.0
        } else {
            median(decode)
        },
    );
    let weight_bytes = lm.num_parameters as f64 * 4.0;
    let report = Report::new(args.json.enabled);
    report.line(format!(
        "prefill {p:.1} tokens/s ({} tokens), generation {d:.1} tokens/s ({} tokens), {} threads, {} kernels; {:.0} MB of f32 weights read per generated token",
        ids.len(),
        args.new_tokens,
        kindling_tensor::num_threads(),
        kindling_tensor::simd_level(),
        weight_bytes / 1e6
    ));
    report.finish(json!({
        "prefill_tokens_per_sec": p,
        "generate_tokens_per_sec": d,
        "prompt_tokens": ids.len(),
        "new_tokens": args.new_tokens,
        "threads": kindling_tensor::num_threads(),
        "simd": kindling_tensor::simd_level(),
        "weight_bytes_per_token": weight_bytes,
    }));
    Ok(())
}
