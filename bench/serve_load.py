#!/usr/bin/env python3
"""Load test for `kindling serve` on loopback (standard library only).

Starts the server (or uses --url), then for each concurrency level runs
--requests streaming chat requests from that many client threads, each
asking --max-tokens tokens at temperature 0.7 with its own seed, and
reports requests/s, generated tokens/s, p50/p99 time to first token and
total latency, and failures. Then --soak requests (default 1000) at the
highest concurrency with the server's resident memory sampled before and
after (VmRSS from /proc), to show it stays flat.

    .venv/bin/python bench/serve_load.py --model SmolLM2-135M-Instruct.Q4_1.gguf
"""
import argparse
import http.client
import json
import re
import statistics
import subprocess
import threading
import time

PROMPTS = [
    "Tell me about the moon.", "Give me a tip for cooking rice.", "What is a prime number?",
    "Write a line about rain.", "Name a river in Europe.", "Why do cats purr?",
    "How do bicycles stay upright?", "What is an atom?",
]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def one(host, port, i, max_tokens):
    body = json.dumps({"messages": [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}],
                       "max_tokens": max_tokens, "temperature": 0.7, "seed": i, "stream": True})
    t0 = time.perf_counter()
    c = http.client.HTTPConnection(host, port, timeout=600)
    c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
    r = c.getresponse()
    if r.status != 200:
        return None
    ttft, tokens, buf = None, 0, b""
    while True:
        chunk = r.read1(65536)
        if not chunk:
            break
        buf += chunk
        while b"\n\n" in buf:
            ev, buf = buf.split(b"\n\n", 1)
            data = ev.decode().removeprefix("data: ")
            if data == "[DONE]":
                continue
            j = json.loads(data)
            if "error" in j:
                return None
            d = j["choices"][0]["delta"] if j["choices"] else {}
            if d.get("content"):
                tokens += 1
                if ttft is None:
                    ttft = time.perf_counter() - t0
    c.close()
    return ttft if ttft is not None else time.perf_counter() - t0, time.perf_counter() - t0, tokens


def run(host, port, concurrency, n, max_tokens):
    results, lock, next_i = [], threading.Lock(), [0]

    def worker():
        while True:
            with lock:
                i = next_i[0]
                next_i[0] += 1
            if i >= n:
                return
            res = one(host, port, i, max_tokens)
            with lock:
                results.append(res)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=worker) for _ in range(concurrency)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    wall = time.perf_counter() - t0
    ok = [r for r in results if r is not None]
    q = lambda xs, p: statistics.quantiles(xs, n=100)[p - 1] if len(xs) >= 2 else xs[0]
    ttft = [r[0] for r in ok]
    total = [r[1] for r in ok]
    return {
        "concurrency": concurrency, "requests": n, "failed": n - len(ok),
        "requests_per_s": len(ok) / wall, "pieces_per_s": sum(r[2] for r in ok) / wall,
        "ttft_p50": q(ttft, 50), "ttft_p99": q(ttft, 99),
        "latency_p50": q(total, 50), "latency_p99": q(total, 99), "wall_s": wall,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--kindling", default="target/release/kindling")
    ap.add_argument("--threads", default="2")
    ap.add_argument("--max-batch", default="8")
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--requests", type=int, default=64, help="requests per level (at least the level)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--soak", type=int, default=1000)
    ap.add_argument("--soak-tokens", type=int, default=8)
    ap.add_argument("--quantized", action="store_true", help="serve a GGUF file on its quantized blocks")
    a = ap.parse_args()
    p = subprocess.Popen([a.kindling, "serve", "--model", a.model, "--port", "0", "--threads", a.threads,
                          "--max-batch", a.max_batch] + (["--quantized"] if a.quantized else []),
                         stderr=subprocess.PIPE, text=True)
    for line in p.stderr:
        m = re.search(r"http://([\d.]+):(\d+)", line)
        if m:
            host, port = m.group(1), int(m.group(2))
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    try:
        one(host, port, 0, 4)  # warm up
        print(f"kindling serve --max-batch {a.max_batch} --threads {a.threads}, {a.max_tokens} tokens per answer")
        print("clients  requests  failed  req/s  pieces/s  TTFT p50  TTFT p99  total p50  total p99")
        rows = []
        for level in [int(x) for x in a.levels.split(",")]:
            r = run(host, port, level, max(a.requests, level), a.max_tokens)
            rows.append(r)
            print(f"{level:7d}  {r['requests']:8d}  {r['failed']:6d}  {r['requests_per_s']:5.2f}  {r['pieces_per_s']:8.1f}"
                  f"  {r['ttft_p50']:7.2f}s  {r['ttft_p99']:7.2f}s  {r['latency_p50']:8.2f}s  {r['latency_p99']:8.2f}s",
                  flush=True)
        if a.soak:
            level = max(int(x) for x in a.levels.split(","))
            before = rss_mb(p.pid)
            r = run(host, port, level, a.soak, a.soak_tokens)
            after = rss_mb(p.pid)
            print(f"soak: {a.soak} requests at {level} clients, {a.soak_tokens} tokens each: {r['failed']} failed, "
                  f"{r['requests_per_s']:.2f} req/s; server RSS {before:.0f} MB before, {after:.0f} MB after")
            rows.append({"soak": r, "rss_mb_before": before, "rss_mb_after": after})
        print(json.dumps(rows))
    finally:
        p.terminate()
        p.wait()


if __name__ == "__main__":
    main()
