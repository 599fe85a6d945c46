//! `kindling serve`: a language model behind OpenAI's HTTP API, with a web
//! chat page at `/`.
//!
//! - `POST /v1/chat/completions` (the model's chat template; whole or
//!   streamed as server-sent events), `POST /v1/completions` (plain text),
//!   `GET /v1/models`, `GET /health`, and the page at `GET /`.
//! - One thread owns the model ([`scheduler`]): requests decode together,
//!   one token of each per step (continuous batching), joining and leaving
//!   between steps; HTTP runs on a small tokio runtime beside it.
//! - Bounds: request body size, prompt plus answer within the context,
//!   `max_tokens` up to a cap, a deadline per request, a queue length. A
//!   client that disconnects frees its slot at the next step.
//! - Errors are OpenAI's JSON shape with the status codes its API uses.

mod api;
mod scheduler;

use api::{content_text, finish_reason, object, ApiError, ApiResult, Fields};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use kindling_data::tokenizer::Tokenizer;
use kindling_models::chat::{ChatTemplate, Message};
use kindling_models::generate::{CausalLm, GenerateOptions, Generation};
use kindling_models::sampling::Sampling;
use scheduler::{Chunk, Job, Load};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc::UnboundedReceiver;

/// A model ready to serve, with what turns text into its ids and back.
pub struct ServedModel {
    /// The name clients give as `model` (and `/v1/models` lists).
    pub id: String,
    pub model: Box<dyn CausalLm>,
    pub tokenizer: Tokenizer,
    pub template: ChatTemplate,
    /// Ids that end an answer (end of sequence, end of turn).
    pub stop_ids: Vec<u32>,
}

#[derive(Clone, Debug)]
pub struct ServeOptions {
    pub host: String,
    /// 0: any free port (the address is passed to `on_ready`).
    pub port: u16,
    /// When set, `/v1/*` needs `Authorization: Bearer KEY`.
    pub api_key: Option<String>,
    /// Requests decoded together at most; more wait in the queue.
    pub max_batch: usize,
    /// Requests waiting for a slot at most; more are refused (503).
    pub max_queue: usize,
    /// Tokens of prompt plus answer at most (0: the model's context).
    pub ctx: usize,
    /// `max_tokens` at most, and the answer length when a request gives none.
    pub max_tokens: usize,
    pub max_body_bytes: usize,
    /// A request still running after this long is ended.
    pub timeout: Duration,
}

impl Default for ServeOptions {
    fn default() -> ServeOptions {
        ServeOptions {
            host: "127.0.0.1".into(),
            port: 8080,
            api_key: None,
            max_batch: 8,
            max_queue: 64,
            ctx: 0,
            max_tokens: 512,
            max_body_bytes: 1 << 20,
            timeout: Duration::from_secs(300),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("`{field}` {problem}")]
    Option {
        field: &'static str,
        problem: String,
    },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

struct AppState {
    model: Arc<ServedModel>,
    options: ServeOptions,
    /// The context a request must fit in.
    ctx: usize,
    jobs: Mutex<mpsc::Sender<Job>>,
    load: Arc<Load>,
    next_id: AtomicU64,
    started: u64,
}

type Shared = Arc<AppState>;

const PAGE: &str = include_str!("web/index.html");

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Loopback addresses need no key; anything else gets a warning without one.
pub fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Serves until Ctrl-C or SIGTERM. `on_ready` gets the bound address once
/// the server accepts connections.
pub fn serve(
    model: ServedModel,
    options: ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> Result<(), Error> {
    let check = |field: &'static str, ok: bool, problem: &str| -> Result<(), Error> {
        match ok {
            true => Ok(()),
            false => Err(Error::Option {
                field,
                problem: problem.into(),
            }),
        }
    };
    check("max_batch", options.max_batch >= 1, "must be at least 1")?;
    check("max_tokens", options.max_tokens >= 1, "must be at least 1")?;
    check(
        "max_body_bytes",
        options.max_body_bytes >= 64,
        "must be at least 64",
    )?;
    check(
        "timeout",
        !options.timeout.is_zero(),
        "must be more than 0 seconds",
    )?;
    let model_ctx = model.model.context_len();
    let ctx = match options.ctx {
        0 => model_ctx,
        n if n > model_ctx => {
            return Err(Error::Option {
                field: "ctx",
                problem: format!("is {n}, more than the model's context of {model_ctx}"),
            })
        }
        n => n,
    };
    let model = Arc::new(model);
    let load = Arc::new(Load::default());
    let (tx, rx) = mpsc::channel();
    {
        let (model, load, max_batch) = (model.clone(), load.clone(), options.max_batch);
        std::thread::Builder::new()
            .name("kindling-model".into())
            .spawn(move || scheduler::run(model, rx, max_batch, load))?;
    }
    let state = Arc::new(AppState {
        model,
        ctx,
        jobs: Mutex::new(tx),
        load,
        next_id: AtomicU64::new(1),
        started: now_secs(),
        options: options.clone(),
    });
    let app = router(state);
    // Two I/O threads are plenty: the model runs on its own thread.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let addr = format!("{}:{}", options.host, options.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.clone(),
                source,
            })?;
        on_ready(listener.local_addr()?);
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown_signal())
            .await?;
        Ok(())
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let term = async {
            match term.as_mut() {
                Some(t) => {
                    t.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! { _ = ctrl_c => {}, _ = term => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn router(state: Shared) -> Router {
    Router::new()
        .route("/", get(|| async { Html(PAGE) }))
        .route("/health", get(health))
        .route("/v1/models", get(models))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/completions", post(completions))
        .fallback(|req: Request| async move {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!("no route for {} {}", req.method(), req.uri().path()),
            )
        })
        .with_state(state)
}

async fn health(State(s): State<Shared>) -> Json<Value> {
    Json(json!({
        "status": "ok",
        "model": s.model.id,
        "active": s.load.active.load(Ordering::Relaxed),
        "queued": s.load.queued.load(Ordering::Relaxed),
        "finished": s.load.finished.load(Ordering::Relaxed),
    }))
}

fn authorize(s: &AppState, headers: &HeaderMap) -> ApiResult<()> {
    let Some(key) = &s.options.api_key else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(g) if g == key => Ok(()),
        Some(_) => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "incorrect API key provided",
        )
        .with_code("invalid_api_key")),
        None => Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "this server needs an API key: send `Authorization: Bearer KEY`",
        )
        .with_code("invalid_api_key")),
    }
}

async fn models(State(s): State<Shared>, headers: HeaderMap) -> Response {
    if let Err(e) = authorize(&s, &headers) {
        return e.into_response();
    }
    Json(json!({
        "object": "list",
        "data": [{"id": s.model.id, "object": "model", "created": s.started, "owned_by": "kindling"}],
    }))
    .into_response()
}

/// Reads the body, at most `max_body_bytes` of it.
async fn read_body(s: &AppState, body: Body) -> ApiResult<Vec<u8>> {
    axum::body::to_bytes(body, s.options.max_body_bytes)
        .await
        .map(|b| b.to_vec())
        .map_err(|_| {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                format!(
                    "the request body is larger than this server's limit of {} bytes",
                    s.options.max_body_bytes
                ),
            )
        })
}

/// What both endpoints ask of the model.
struct Parsed {
    prompt: Vec<u32>,
    options: GenerateOptions,
    stream: bool,
    include_usage: bool,
}

/// The fields both endpoints share: `model`, `max_tokens`, sampling, `stop`,
/// `seed`, `stream`; `prompt` is the request's rendered prompt.
fn parse_common(s: &AppState, f: &Fields, prompt: &str) -> ApiResult<Parsed> {
    if let Some(m) = f.string("model")? {
        if m != s.model.id {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                format!(
                    "the model `{m}` does not exist here; this server serves `{}`",
                    s.model.id
                ),
            )
            .with_code("model_not_found"));
        }
    }
    if let Some(n) = f.integer("n")? {
        if n != 1 {
            return Err(ApiError::invalid(
                "n",
                format!("`n` must be 1 here, got {n}"),
            ));
        }
    }
    for p in ["presence_penalty", "frequency_penalty"] {
        if f.number(p)?.is_some_and(|v| v != 0.0) {
            return Err(ApiError::invalid(
                p,
                format!("`{p}` is not supported (only 0)"),
            ));
        }
    }
    if f.bool("logprobs")? == Some(true) {
        return Err(ApiError::invalid("logprobs", "`logprobs` is not supported"));
    }
    let temperature = f.number("temperature")?.unwrap_or(1.0);
    if !(0.0..=2.0).contains(&temperature) {
        return Err(ApiError::invalid(
            "temperature",
            format!("`temperature` must be between 0 and 2, got {temperature}"),
        ));
    }
    let top_p = f.number("top_p")?.unwrap_or(1.0);
    if !(top_p > 0.0 && top_p <= 1.0) {
        return Err(ApiError::invalid(
            "top_p",
            format!("`top_p` must be in (0, 1], got {top_p}"),
        ));
    }
    let top_k = match f.integer("top_k")? {
        None => None,
        Some(k) if k >= 1 => Some(k as usize),
        Some(k) => {
            return Err(ApiError::invalid(
                "top_k",
                format!("`top_k` must be at least 1, got {k}"),
            ))
        }
    };
    let seed = match f.integer("seed")? {
        Some(v) => v as u64,
        None => s
            .next_id
            .load(Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15),
    };
    let stop_strings = f.stop()?;
    let stream = f.bool("stream")?.unwrap_or(false);
    let include_usage = match f.0.get("stream_options") {
        Some(Value::Object(o)) => o.get("include_usage").and_then(Value::as_bool) == Some(true),
        _ => false,
    };
    let ids = s.model.tokenizer.encode(prompt).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            e.to_string(),
        )
    })?;
    if ids.is_empty() {
        return Err(ApiError::invalid("prompt", "the prompt is empty"));
    }
    let room = s.ctx.saturating_sub(ids.len());
    let too_long = |asked: usize| {
        ApiError::invalid(
            "messages",
            format!(
                "this server's context is {} tokens, but the request asks for {} ({} in the prompt, {asked} in the answer)",
                s.ctx,
                ids.len() + asked,
                ids.len()
            ),
        )
        .with_code("context_length_exceeded")
    };
    let asked = match (
        f.integer("max_completion_tokens")?,
        f.integer("max_tokens")?,
    ) {
        (Some(v), _) => Some(("max_completion_tokens", v)),
        (None, Some(v)) => Some(("max_tokens", v)),
        _ => None,
    };
    let max_new_tokens = match asked {
        Some((name, v)) if v < 1 => {
            return Err(ApiError::invalid(
                name,
                format!("`{name}` must be at least 1, got {v}"),
            ))
        }
        Some((name, v)) if v as u64 > s.options.max_tokens as u64 => {
            return Err(ApiError::invalid(
                name,
                format!(
                    "`{name}` is {v}, more than this server allows ({})",
                    s.options.max_tokens
                ),
            ))
        }
        Some((_, v)) if v as usize > room => return Err(too_long(v as usize)),
        Some((_, v)) => v as usize,
        None if room == 0 => return Err(too_long(1)),
        None => room.min(s.options.max_tokens),
    };
    let options = GenerateOptions {
        max_new_tokens,
        sampling: Sampling {
            temperature: temperature as f32,
            top_k,
            top_p: (top_p < 1.0).then_some(top_p as f32),
        },
        repetition_penalty: 1.0,
        stop_ids: s.model.stop_ids.clone(),
        stop_strings,
        seed,
        slide: false,
    };
    Ok(Parsed {
        prompt: ids,
        options,
        stream,
        include_usage,
    })
}

fn parse_chat(s: &AppState, body: &[u8]) -> ApiResult<Parsed> {
    let obj = object(body)?;
    let f = Fields(&obj);
    let messages = match obj.get("messages") {
        Some(Value::Array(a)) if !a.is_empty() => a,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "messages",
                "`messages` must not be empty",
            ))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("messages", "`messages` is missing"))
        }
        Some(other) => {
            return Err(ApiError::invalid(
                "messages",
                format!("`messages` must be an array, got {}", api::type_name(other)),
            ))
        }
    };
    let mut history = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = m.get("role").and_then(Value::as_str).ok_or_else(|| {
            ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("`messages[{i}].role` must be a string"),
            )
        })?;
        // OpenAI's newer name for the system role.
        let role = if role == "developer" { "system" } else { role };
        let text = content_text(m.get("content"), i)?;
        history.push(Message::new(role, text).map_err(|e| {
            ApiError::invalid(
                &format!("messages[{i}].role"),
                format!("`messages[{i}].role`: {e}"),
            )
        })?);
    }
    let prompt = s.model.template.render(&history, true).map_err(|e| {
        ApiError::invalid(
            "messages",
            format!("the chat template cannot render these messages: {e}"),
        )
    })?;
    parse_common(s, &f, &prompt)
}

fn parse_completion(s: &AppState, body: &[u8]) -> ApiResult<Parsed> {
    let obj = object(body)?;
    let f = Fields(&obj);
    let prompt = match obj.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        None | Some(Value::Null) => return Err(ApiError::invalid("prompt", "`prompt` is missing")),
        Some(other) => {
            return Err(ApiError::invalid(
                "prompt",
                format!(
                    "`prompt` must be a string (or an array of one string), got {}",
                    api::type_name(other)
                ),
            ))
        }
    };
    if f.bool("echo")? == Some(true) {
        return Err(ApiError::invalid("echo", "`echo` is not supported"));
    }
    parse_common(s, &f, &prompt)
}

/// Hands a request to the model thread; its chunks come back on the receiver.
fn submit(s: &AppState, p: &Parsed) -> ApiResult<UnboundedReceiver<Chunk>> {
    if s.load.queued.load(Ordering::Relaxed) >= s.options.max_queue {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            format!(
                "the server is busy ({} requests waiting); try again shortly",
                s.options.max_queue
            ),
        ));
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    s.load.queued.fetch_add(1, Ordering::Relaxed);
    let job = Job {
        prompt: p.prompt.clone(),
        options: p.options.clone(),
        deadline: Instant::now() + s.options.timeout,
        tx,
    };
    let sent = s.jobs.lock().map(|j| j.send(job).is_ok()).unwrap_or(false);
    if !sent {
        s.load.queued.fetch_sub(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_error",
            "the model thread has stopped",
        ));
    }
    Ok(rx)
}

fn timed_out(s: &AppState) -> ApiError {
    ApiError::new(
        StatusCode::GATEWAY_TIMEOUT,
        "timeout_error",
        format!(
            "the request took longer than this server's limit of {} s",
            s.options.timeout.as_secs_f64()
        ),
    )
}

fn failed(message: String) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "server_error", message)
}

/// Waits for the whole answer.
async fn collect(s: &AppState, mut rx: UnboundedReceiver<Chunk>) -> ApiResult<Generation> {
    loop {
        match rx.recv().await {
            Some(Chunk::Text(_)) => {}
            Some(Chunk::Done(g)) => return Ok(g),
            Some(Chunk::Failed(m)) => return Err(failed(m)),
            Some(Chunk::TimedOut) => return Err(timed_out(s)),
            None => return Err(failed("the model thread dropped the request".into())),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Chat,
    Completion,
}

fn usage(prompt: usize, g: &Generation) -> Value {
    json!({"prompt_tokens": prompt, "completion_tokens": g.ids.len(), "total_tokens": prompt + g.ids.len()})
}

async fn chat_completions(State(s): State<Shared>, req: Request) -> Response {
    respond(s, req, Kind::Chat).await
}

async fn completions(State(s): State<Shared>, req: Request) -> Response {
    respond(s, req, Kind::Completion).await
}

async fn respond(s: Shared, req: Request, kind: Kind) -> Response {
    match respond_inner(s, req, kind).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn respond_inner(s: Shared, req: Request, kind: Kind) -> ApiResult<Response> {
    authorize(&s, req.headers())?;
    let body = read_body(&s, req.into_body()).await?;
    let parsed = match kind {
        Kind::Chat => parse_chat(&s, &body)?,
        Kind::Completion => parse_completion(&s, &body)?,
    };
    let rx = submit(&s, &parsed)?;
    let n = s.next_id.fetch_add(1, Ordering::Relaxed);
    let (id, object) = match kind {
        Kind::Chat => (format!("chatcmpl-{n:012x}"), "chat.completion"),
        Kind::Completion => (format!("cmpl-{n:012x}"), "text_completion"),
    };
    let created = now_secs();
    let model = s.model.id.clone();
    let prompt_tokens = parsed.prompt.len();
    if !parsed.stream {
        let g = collect(&s, rx).await?;
        let choice = match kind {
            Kind::Chat => json!({
                "index": 0,
                "message": {"role": "assistant", "content": g.text},
                "finish_reason": finish_reason(g.stop),
                "logprobs": null,
            }),
            Kind::Completion => json!({
                "index": 0,
                "text": g.text,
                "finish_reason": finish_reason(g.stop),
                "logprobs": null,
            }),
        };
        return Ok(Json(json!({
            "id": id,
            "object": object,
            "created": created,
            "model": model,
            "choices": [choice],
            "usage": usage(prompt_tokens, &g),
        }))
        .into_response());
    }
    // Streaming: a first chunk with the role, then the text as it settles,
    // a last chunk with the finish reason (and usage when asked), [DONE].
    let chunk_object = match kind {
        Kind::Chat => "chat.completion.chunk",
        Kind::Completion => "text_completion",
    };
    let frame = move |choice: Value, usage: Option<Value>| {
        let mut v = json!({
            "id": id,
            "object": chunk_object,
            "created": created,
            "model": model,
            "choices": if choice.is_null() { json!([]) } else { json!([choice]) },
        });
        if let Some(u) = usage {
            v["usage"] = u;
        }
        Event::default().data(v.to_string())
    };
    let piece = move |text: &str, finish: Option<&str>| match kind {
        Kind::Chat => {
            json!({"index": 0, "delta": if text.is_empty() && finish.is_some() { json!({}) } else { json!({"content": text}) }, "finish_reason": finish, "logprobs": null})
        }
        Kind::Completion => {
            json!({"index": 0, "text": text, "finish_reason": finish, "logprobs": null})
        }
    };
    let mut first: Vec<Event> = Vec::new();
    if kind == Kind::Chat {
        first.push(frame(
            json!({"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null, "logprobs": null}),
            None,
        ));
    }
    let include_usage = parsed.include_usage;
    let timeout_message = timed_out(&s).body();
    struct St<F, P> {
        rx: UnboundedReceiver<Chunk>,
        queue: std::collections::VecDeque<Event>,
        ended: bool,
        frame: F,
        piece: P,
    }
    let state = St {
        rx,
        queue: first.into(),
        ended: false,
        frame,
        piece,
    };
    let stream = futures_util::stream::unfold(state, move |mut st| {
        let timeout_message = timeout_message.clone();
        async move {
            loop {
                if let Some(e) = st.queue.pop_front() {
                    return Some((Ok::<Event, std::convert::Infallible>(e), st));
                }
                if st.ended {
                    return None;
                }
                match st.rx.recv().await {
                    Some(Chunk::Text(t)) => {
                        let e = (st.frame)((st.piece)(&t, None), None);
                        st.queue.push_back(e);
                    }
                    Some(Chunk::Done(g)) => {
                        let last = (st.piece)("", Some(finish_reason(g.stop)));
                        st.queue.push_back((st.frame)(last, None));
                        if include_usage {
                            st.queue
                                .push_back((st.frame)(Value::Null, Some(usage(prompt_tokens, &g))));
                        }
                        st.queue.push_back(Event::default().data("[DONE]"));
                        st.ended = true;
                    }
                    Some(Chunk::TimedOut) => {
                        st.queue
                            .push_back(Event::default().data(timeout_message.to_string()));
                        st.queue.push_back(Event::default().data("[DONE]"));
                        st.ended = true;
                    }
                    Some(Chunk::Failed(m)) => {
                        st.queue
                            .push_back(Event::default().data(failed(m).body().to_string()));
                        st.queue.push_back(Event::default().data("[DONE]"));
                        st.ended = true;
                    }
                    None => return None,
                }
            }
        }
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response())
}
