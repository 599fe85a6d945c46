//! `kindling serve`: the library server (`kindling-serve`) on a model
//! loaded as `chat` loads it.

use crate::common::{flag_of, CliResult, ThreadsArg};
use crate::lm::{load_with, AdapterArg};
use anyhow::bail;
use clap::Args;
use kindling_serve::{is_loopback, serve, Error, ServeOptions, ServedModel};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args)]
pub struct Serve {
    /// A GGUF file, a Hugging Face model folder, a Kindling run directory, or smollm2-135m-instruct.
    #[arg(long)]
    pub model: PathBuf,
    #[command(flatten)]
    pub adapter: AdapterArg,
    /// The name clients give as `model` [default: the file or folder name].
    #[arg(long)]
    pub name: Option<String>,
    /// Address to listen on; anything but loopback without --api-key gets a warning.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to listen on (0: any free port; the address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Require `Authorization: Bearer KEY` on /v1/* [default: no key].
    #[arg(
        long,
        value_name = "KEY",
        env = "KINDLING_API_KEY",
        hide_env_values = true
    )]
    pub api_key: Option<String>,
    /// Requests decoded together (continuous batching); more wait for a slot.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Requests waiting for a slot at most; more are answered 503.
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Tokens of prompt plus answer per request at most [default: the model's context].
    #[arg(long)]
    pub ctx: Option<usize>,
    /// The largest `max_tokens` a request may ask, and the answer length when it asks none.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Request bodies larger than this many bytes are refused (413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// A request still running after this many seconds is ended (504, or an error event).
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    #[command(flatten)]
    pub threads: ThreadsArg,
}

fn model_name(path: &Path) -> String {
    let p = if path.file_name().is_some_and(|n| n == "hf") {
        path.parent().unwrap_or(path)
    } else {
        path
    };
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "model".into());
    name.strip_suffix(".gguf").unwrap_or(&name).to_string()
}

pub fn run(a: Serve) -> CliResult<()> {
    a.threads.apply()?;
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        bail!("--timeout must be more than 0 seconds, got {}", a.timeout);
    }
    if a.api_key.as_deref() == Some("") {
        bail!("--api-key is empty");
    }
    let options = ServeOptions {
        host: a.host.clone(),
        port: a.port,
        api_key: a.api_key.clone(),
        max_batch: a.max_batch,
        max_queue: a.max_queue,
        ctx: a.ctx.unwrap_or(0),
        max_tokens: a.max_tokens,
        max_body_bytes: a.max_body_bytes,
        timeout: Duration::from_secs_f64(a.timeout),
    };
    if a.ctx == Some(0) {
        bail!("--ctx must be at least 1");
    }
    let lm = load_with(&a.model, a.adapter.adapter.as_deref(), a.adapter.quantized)?;
    let id = a.name.clone().unwrap_or_else(|| model_name(&a.model));
    let model = ServedModel {
        id: id.clone(),
        model: lm.model,
        tokenizer: lm.tokenizer,
        template: lm.template,
        stop_ids: lm.stop_ids,
    };
    if !is_loopback(&a.host) && a.api_key.is_none() {
        eprintln!(
            "warning: listening on {} without --api-key: anyone who can reach this address can use the model",
            a.host
        );
    }
    let max_batch = a.max_batch;
    serve(model, options, |addr| {
        eprintln!("serving {id} on http://{addr} (chat page at /, OpenAI API at /v1, up to {max_batch} requests decoded together); Ctrl-C stops");
    })
    .map_err(|e| match e {
        Error::Option { field, problem } => anyhow::anyhow!("{} {problem}", flag_of(field)),
        other => anyhow::anyhow!(other),
    })
}
