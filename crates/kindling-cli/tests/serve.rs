//! `kindling serve` end to end: the OpenAI-shaped API over real sockets,
//! streaming, bad requests, vanishing clients, concurrent requests batched
//! together, and the web page driven in headless Chromium.

mod common;

use common::{json_of, kindling};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn model() -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tiny-chat")
        .to_str()
        .unwrap()
        .to_string()
}

/// A running `kindling serve`, killed when dropped.
struct Server {
    child: Child,
    addr: String,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let m = model();
        let mut args = vec!["serve", "--model", &m, "--port", "0", "--threads", "1"];
        args.extend_from_slice(extra);
        let mut child = Command::new(env!("CARGO_BIN_EXE_kindling"))
            .args(&args)
            .env_remove("KINDLING_API_KEY")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("binary runs");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let mut addr = None;
        for line in lines.by_ref() {
            let line = line.unwrap();
            log.lock().unwrap().push_str(&format!("{line}\n"));
            if let Some(rest) = line.split("http://").nth(1) {
                addr = Some(rest.split_whitespace().next().unwrap().to_string());
                break;
            }
        }
        let addr = addr.unwrap_or_else(|| panic!("no address in: {}", log.lock().unwrap()));
        let l2 = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                l2.lock().unwrap().push_str(&format!("{line}\n"));
            }
        });
        Server { child, addr, log }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

/// Undoes HTTP/1.1 chunked transfer encoding.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = raw.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..eol]).unwrap().trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[eol + 2..eol + 2 + size]);
        raw = &raw[eol + 2 + size + 2..];
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
fn http(addr: &str, method: &str, path: &str, headers: &[&str], body: &[u8]) -> Reply {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    // Read the head, then as much body as it announces (WebDriver servers
    // keep the connection open whatever the request asks).
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let split = loop {
        if let Some(p) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "connection closed before the response head");
        raw.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut rest = raw[split + 4..].to_vec();
    let length = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse::<usize>().unwrap());
    let body = if let Some(len) = length {
        while rest.len() < len {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "connection closed inside the body");
            rest.extend_from_slice(&buf[..n]);
        }
        rest.truncate(len);
        rest
    } else if head.contains("transfer-encoding: chunked") {
        while !rest.ends_with(b"0\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            rest.extend_from_slice(&buf[..n]);
        }
        dechunk(&rest)
    } else {
        s.read_to_end(&mut rest).unwrap();
        rest
    };
    Reply {
        status,
        body: String::from_utf8_lossy(&body).to_string(),
    }
}

fn post(addr: &str, path: &str, body: &Value) -> Reply {
    http(addr, "POST", path, &[], body.to_string().as_bytes())
}

/// The `data:` payloads of a server-sent-event body.
fn events(body: &str) -> Vec<String> {
    body.lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .map(str::to_string)
        .collect()
}

fn chat_body(text: &str, max_tokens: usize, stream: bool) -> Value {
    json!({
        "model": "tiny-chat",
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
}

#[test]
fn chat_answers_equal_the_chat_command_whole_and_streamed() {
    let s = Server::start(&[]);
    let health = http(&s.addr, "GET", "/health", &[], b"").json();
    assert_eq!(health["status"], "ok");
    let models = http(&s.addr, "GET", "/v1/models", &[], b"").json();
    assert_eq!(models["data"][0]["id"], "tiny-chat");

    let whole = post(
        &s.addr,
        "/v1/chat/completions",
        &chat_body("hello there", 12, false),
    );
    assert_eq!(whole.status, 200, "{}", whole.body);
    let whole = whole.json();
    assert_eq!(whole["object"], "chat.completion");
    let answer = whole["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(whole["choices"][0]["message"]["role"], "assistant");
    // The same greedy answer as `kindling chat`: one template, one generator.
    let m = model();
    let chat = json_of(&kindling(&[
        "chat",
        "--model",
        &m,
        "--message",
        "hello there",
        "--max-new-tokens",
        "12",
        "--temperature",
        "0",
        "--json",
    ]));
    assert_eq!(answer, chat["answer"].as_str().unwrap());
    let usage = &whole["usage"];
    assert_eq!(usage["prompt_tokens"], chat["prompt_tokens"]);
    assert_eq!(usage["completion_tokens"], chat["new_tokens"]);
    let finish = whole["choices"][0]["finish_reason"].as_str().unwrap();
    assert_eq!(
        finish,
        if chat["stop"] == "max_tokens" {
            "length"
        } else {
            "stop"
        }
    );

    // Streamed: a role chunk, pieces that add up to the same answer, a
    // finish chunk, usage when asked, then [DONE].
    let mut body = chat_body("hello there", 12, true);
    body["stream_options"] = json!({"include_usage": true});
    let r = post(&s.addr, "/v1/chat/completions", &body);
    assert_eq!(r.status, 200);
    let ev = events(&r.body);
    assert_eq!(ev.last().unwrap(), "[DONE]");
    let chunks: Vec<Value> = ev[..ev.len() - 1]
        .iter()
        .map(|e| serde_json::from_str(e).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, answer);
    let finishes: Vec<&Value> = chunks
        .iter()
        .map(|c| &c["choices"][0]["finish_reason"])
        .filter(|f| !f.is_null())
        .collect();
    assert_eq!(finishes, [&json!(finish)]);
    assert_eq!(chunks.last().unwrap()["usage"], *usage);
    assert!(chunks
        .iter()
        .all(|c| c["object"] == "chat.completion.chunk"));
}

#[test]
fn completions_equal_the_generate_command() {
    let s = Server::start(&[]);
    let r = post(
        &s.addr,
        "/v1/completions",
        &json!({"prompt": "The cat", "max_tokens": 9, "temperature": 0}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = r.json();
    assert_eq!(r["object"], "text_completion");
    let m = model();
    let g = json_of(&kindling(&[
        "generate",
        "--model",
        &m,
        "--prompt",
        "The cat",
        "--max-new-tokens",
        "9",
        "--temperature",
        "0",
        "--json",
    ]));
    assert_eq!(r["choices"][0]["text"], g["text"]);
    // The same request streamed.
    let st = post(
        &s.addr,
        "/v1/completions",
        &json!({"prompt": "The cat", "max_tokens": 9, "temperature": 0, "stream": true}),
    );
    let text: String = events(&st.body)
        .iter()
        .filter(|e| *e != "[DONE]")
        .map(|e| serde_json::from_str::<Value>(e).unwrap())
        .filter_map(|c| c["choices"][0]["text"].as_str().map(str::to_string))
        .collect();
    assert_eq!(text, g["text"].as_str().unwrap());
}

#[test]
fn concurrent_requests_are_batched_and_each_gets_its_own_answer() {
    let s = Server::start(&["--max-batch", "4"]);
    let prompts: Vec<String> = (0..6)
        .map(|i| format!("question number {i}{}", "?".repeat(i)))
        .collect();
    // Each alone first.
    let alone: Vec<String> = prompts
        .iter()
        .map(|p| {
            post(
                &s.addr,
                "/v1/completions",
                &json!({"prompt": p, "max_tokens": 20, "temperature": 0}),
            )
            .json()["choices"][0]["text"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    // Then all at once: six clients, four slots.
    let addr = s.addr.clone();
    let handles: Vec<_> = prompts
        .iter()
        .cloned()
        .map(|p| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                post(
                    &addr,
                    "/v1/completions",
                    &json!({"prompt": p, "max_tokens": 20, "temperature": 0}),
                )
                .json()["choices"][0]["text"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
        })
        .collect();
    let together: Vec<String> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(together, alone);
    // The scheduler counts a request as finished before its answer's last
    // chunk goes out, so once every client has read its answer /health
    // already says so (no waiting).
    let health = http(&s.addr, "GET", "/health", &[], b"").json();
    assert_eq!(health["finished"], 12, "{health}");
    assert_eq!(health["active"], 0, "{health}");
}

#[test]
fn bad_requests_get_openai_errors_and_the_server_keeps_serving() {
    let s = Server::start(&["--max-body-bytes", "2000", "--max-tokens", "64"]);
    let a = &s.addr;
    let check = |r: Reply, status: u16, param: Option<&str>, words: &str| {
        assert_eq!(r.status, status, "{}", r.body);
        let e = r.json();
        let msg = e["error"]["message"].as_str().unwrap();
        assert!(msg.contains(words), "{msg}");
        assert!(e["error"]["type"].is_string());
        if let Some(p) = param {
            assert_eq!(e["error"]["param"], p);
        }
    };
    let raw = |body: &str| http(a, "POST", "/v1/chat/completions", &[], body.as_bytes());
    check(raw("{\"messages\": ["), 400, None, "not valid JSON");
    check(raw("[1, 2]"), 400, None, "must be a JSON object");
    check(raw("{}"), 400, Some("messages"), "`messages` is missing");
    check(
        raw("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"max_tokens\": \"ten\"}"),
        400,
        Some("max_tokens"),
        "must be an integer, got a string",
    );
    check(
        raw("{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}], \"temperature\": true}"),
        400,
        Some("temperature"),
        "must be a number",
    );
    check(
        raw("{\"messages\": [{\"role\": \"wizard\", \"content\": \"hi\"}]}"),
        400,
        Some("messages[0].role"),
        "unknown chat role `wizard`",
    );
    check(
        raw("{\"messages\": [{\"role\": \"user\", \"content\": 5}]}"),
        400,
        Some("messages[0].content"),
        "must be a string",
    );
    check(
        post(
            a,
            "/v1/chat/completions",
            &json!({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}),
        ),
        404,
        None,
        "`gpt-4o` does not exist",
    );
    check(
        post(a, "/v1/chat/completions", &chat_body("hi", 0, false)),
        400,
        Some("max_tokens"),
        "at least 1",
    );
    check(
        post(
            a,
            "/v1/chat/completions",
            &chat_body("hi", 1_000_000, false),
        ),
        400,
        Some("max_tokens"),
        "more than this server allows (64)",
    );
    check(
        post(
            a,
            "/v1/completions",
            &json!({"prompt": "x ".repeat(600), "max_tokens": 8}),
        ),
        400,
        None,
        "context is 512 tokens",
    );
    check(
        post(
            a,
            "/v1/chat/completions",
            &json!({"messages": [{"role": "user", "content": "y".repeat(3000)}]}),
        ),
        413,
        None,
        "limit of 2000 bytes",
    );
    check(
        post(a, "/v1/completions", &json!({"prompt": "hi", "n": 3})),
        400,
        Some("n"),
        "`n` must be 1",
    );
    check(
        post(a, "/v1/completions", &json!({"prompt": "hi", "stop": [1]})),
        400,
        Some("stop"),
        "string or an array of strings",
    );
    check(
        http(a, "GET", "/v1/nothing", &[], b""),
        404,
        None,
        "no route",
    );
    // Still serving.
    let ok = post(a, "/v1/chat/completions", &chat_body("hi", 3, false));
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn an_api_key_is_required_when_set() {
    let s = Server::start(&["--api-key", "sesame"]);
    let body = chat_body("hi", 2, false).to_string();
    let none = http(
        &s.addr,
        "POST",
        "/v1/chat/completions",
        &[],
        body.as_bytes(),
    );
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["code"], "invalid_api_key");
    let wrong = http(
        &s.addr,
        "POST",
        "/v1/chat/completions",
        &["Authorization: Bearer nope"],
        body.as_bytes(),
    );
    assert_eq!(wrong.status, 401);
    let right = http(
        &s.addr,
        "POST",
        "/v1/chat/completions",
        &["Authorization: Bearer sesame"],
        body.as_bytes(),
    );
    assert_eq!(right.status, 200, "{}", right.body);
    assert_eq!(http(&s.addr, "GET", "/v1/models", &[], b"").status, 401);
    // The page and the health check stay open.
    assert_eq!(http(&s.addr, "GET", "/health", &[], b"").status, 200);
}

#[test]
fn a_client_that_vanishes_mid_stream_frees_its_slot() {
    let s = Server::start(&["--max-batch", "1"]);
    let body = chat_body("tell me a long story", 400, true).to_string();
    let mut c = TcpStream::connect(&s.addr).unwrap();
    write!(
        c,
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    // Wait for the first streamed bytes, then hang up.
    let mut first = [0u8; 256];
    let n = c.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).contains("200"));
    drop(c);
    // The one slot comes free long before 400 tokens would have been made,
    // and the next request is answered.
    let t0 = Instant::now();
    loop {
        let h = http(&s.addr, "GET", "/health", &[], b"").json();
        if h["active"] == 0 && h["finished"] == 1 {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "slot never freed: {h}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = post(&s.addr, "/v1/chat/completions", &chat_body("hi", 3, false));
    assert_eq!(ok.status, 200);
}

#[test]
fn a_request_past_its_deadline_is_ended() {
    let s = Server::start(&["--timeout", "0.05", "--max-tokens", "500"]);
    let r = post(
        &s.addr,
        "/v1/chat/completions",
        &chat_body("go on", 480, false),
    );
    // The tiny model may end early by chance; otherwise the deadline ends it.
    if r.status != 200 {
        assert_eq!(r.status, 504, "{}", r.body);
        assert_eq!(r.json()["error"]["type"], "timeout_error");
    }
    let st = post(
        &s.addr,
        "/v1/chat/completions",
        &chat_body("go on", 480, true),
    );
    let ev = events(&st.body);
    assert_eq!(ev.last().unwrap(), "[DONE]");
}

#[test]
fn binding_beyond_loopback_without_a_key_warns_and_bad_flags_are_one_line() {
    let s = Server::start(&["--host", "0.0.0.0"]);
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        s.log
            .lock()
            .unwrap()
            .contains("warning: listening on 0.0.0.0 without --api-key"),
        "{}",
        s.log.lock().unwrap()
    );
    let m = model();
    let out = kindling(&["serve", "--model", &m, "--max-batch", "0", "--port", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("--max-batch must be at least 1"), "{err}");
    let out = kindling(&["serve", "--model", &m, "--ctx", "100000", "--port", "0"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--ctx is 100000, more than the model's context of 512"),
        "{err}"
    );
}

#[test]
fn the_page_is_served_and_works_offline() {
    let s = Server::start(&[]);
    let page = http(&s.addr, "GET", "/", &[], b"");
    assert_eq!(page.status, 200);
    assert!(page.body.contains("<title>Kindling chat</title>"));
    // Nothing fetched from elsewhere: no external scripts, styles or fonts.
    for bad in ["src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(!page.body.contains(bad), "the page loads {bad}");
    }
}

// ---- The web page in a real browser (WebDriver over HTTP) ----

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn webdriver(port: u16, method: &str, path: &str, body: &Value) -> Value {
    let r = http(
        &format!("127.0.0.1:{port}"),
        method,
        path,
        &[],
        body.to_string().as_bytes(),
    );
    let v: Value = serde_json::from_str(&r.body).unwrap_or(Value::Null);
    assert!(
        r.status < 300,
        "WebDriver {method} {path}: {} {}",
        r.status,
        r.body
    );
    v["value"].clone()
}

fn find(cmd: &str) -> Option<String> {
    std::env::var("PATH")
        .ok()?
        .split(':')
        .map(|d| Path::new(d).join(cmd))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().to_string())
}

#[test]
fn the_web_chat_answers_in_headless_chromium() {
    let (Some(driver), Some(browser)) = (
        find("chromedriver"),
        find("chromium").or_else(|| find("chromium-browser")),
    ) else {
        eprintln!("skipped: chromium and chromedriver are not installed (apt-get install chromium chromium-driver)");
        return;
    };
    let s = Server::start(&[]);
    // What the page should show: the API's greedy answer to the same request.
    let mut want_body = chat_body("hello from the browser", 40, false);
    want_body.as_object_mut().unwrap().remove("model");
    let want = post(&s.addr, "/v1/chat/completions", &want_body).json()["choices"][0]["message"]
        ["content"]
        .as_str()
        .unwrap()
        .to_string();

    let port = free_port();
    let mut drv = Command::new(driver)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill<'a>(&'a mut Child);
    impl Drop for Kill<'_> {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _kill = Kill(&mut drv);
    let t0 = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "chromedriver did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let session = webdriver(
        port,
        "POST",
        "/session",
        &json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": browser,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        }}}}),
    );
    let sid = session["sessionId"].as_str().unwrap().to_string();
    let at = |p: &str| format!("/session/{sid}{p}");
    webdriver(
        port,
        "POST",
        &at("/url"),
        &json!({"url": format!("http://{}/", s.addr)}),
    );
    let element = |css: &str| -> String {
        let e = webdriver(
            port,
            "POST",
            &at("/element"),
            &json!({"using": "css selector", "value": css}),
        );
        e.as_object()
            .unwrap()
            .values()
            .next()
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    };
    let script = |js: &str| {
        webdriver(
            port,
            "POST",
            &at("/execute/sync"),
            &json!({"script": js, "args": []}),
        )
    };
    // Open the settings and set them as the test's request: temperature 0, 40 tokens.
    let summary = element("details summary");
    webdriver(
        port,
        "POST",
        &at(&format!("/element/{summary}/click")),
        &json!({}),
    );
    for (id, value) in [("temperature", "0"), ("max_tokens", "40")] {
        let e = element(&format!("#{id}"));
        webdriver(
            port,
            "POST",
            &at(&format!("/element/{e}/clear")),
            &json!({}),
        );
        webdriver(
            port,
            "POST",
            &at(&format!("/element/{e}/value")),
            &json!({"text": value}),
        );
    }
    // Type the question and press Enter.
    let input = element("#input");
    webdriver(
        port,
        "POST",
        &at(&format!("/element/{input}/value")),
        &json!({"text": "hello from the browser\u{E007}"}),
    );
    let t0 = Instant::now();
    let shown = loop {
        let v = script("const d = document.querySelector('.msg.assistant.done .text'); return d ? d.textContent : null;");
        if let Some(t) = v.as_str() {
            break t.to_string();
        }
        let err = script(
            "const d = document.querySelector('.msg.error'); return d ? d.textContent : null;",
        );
        assert!(err.is_null(), "the page shows an error: {err}");
        assert!(t0.elapsed() < Duration::from_secs(60), "no answer appeared");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(shown, want, "the page shows the streamed answer");
    assert!(!shown.is_empty());
    let user = script("return document.querySelector('.msg.user .text').textContent;");
    assert_eq!(user, "hello from the browser");
    // Clear the conversation.
    let clear = element("#clear");
    webdriver(
        port,
        "POST",
        &at(&format!("/element/{clear}/click")),
        &json!({}),
    );
    assert_eq!(
        script("return document.querySelectorAll('.msg').length;"),
        0
    );
    webdriver(port, "DELETE", &at(""), &json!({}));
}

#[test]
fn an_adapter_is_served_on_top_of_its_base() {
    let dir = std::env::temp_dir().join(format!("kindling-serve-adapter-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let data = dir.join("sft.jsonl");
    let colours = ["Red.", "Blue.", "Green."];
    let lines: Vec<String> = (0..300)
        .map(|i| json!({"instruction": format!("Name colour {i}."), "input": "", "output": colours[i % 3]}).to_string())
        .collect();
    std::fs::write(&data, lines.join("\n")).unwrap();
    let run = dir.join("run");
    let m = model();
    json_of(&kindling(&[
        "finetune",
        "sft",
        "--model",
        &m,
        "--data",
        data.to_str().unwrap(),
        "--lora-rank",
        "4",
        "--steps",
        "8",
        "--seq-len",
        "128",
        "--lr",
        "0.01",
        "--eval-every",
        "8",
        "--eval-examples",
        "4",
        "--samples",
        "0",
        "--out",
        run.to_str().unwrap(),
        "--json",
    ]));
    let adapter = run.join("adapter");
    let adapter = adapter.to_str().unwrap();
    let s = Server::start(&["--adapter", adapter]);
    let served = post(
        &s.addr,
        "/v1/chat/completions",
        &chat_body("Name colour 7.", 6, false),
    )
    .json()["choices"][0]["message"]["content"]
        .clone();
    let chat = json_of(&kindling(&[
        "chat",
        "--model",
        &m,
        "--adapter",
        adapter,
        "--message",
        "Name colour 7.",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
        "--json",
    ]));
    assert_eq!(served, chat["answer"]);
    let base = json_of(&kindling(&[
        "chat",
        "--model",
        &m,
        "--message",
        "Name colour 7.",
        "--max-new-tokens",
        "6",
        "--temperature",
        "0",
        "--json",
    ]));
    assert_ne!(served, base["answer"], "the adapter changes the answer");
    let _ = std::fs::remove_dir_all(&dir);
}
