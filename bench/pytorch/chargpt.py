#!/usr/bin/env python3
"""PyTorch reference: character-level GPT on tiny-shakespeare (CPU).

Quality and speed reference for `kindling bench gpt --preset shakespeare-cpu`
(`ms_per_iter`) and `kindling generate` (`tokens_per_sec`). The model uses
the same parameter names as Kindling's GPT (wte, wpe, h.{i}.ln_1, .attn.c_attn,
.attn.c_proj, .ln_2, .mlp.c_fc, .mlp.c_proj, ln_f; lm_head tied to wte), so
checkpoints and tools/gen_fixtures.py line up with it.

Modes:
  default               train --max-iters iterations, eval every --eval-interval
  --bench-iters N       10 untimed warmup iterations, then N timed; no eval
  --generate N          afterwards, sample N tokens with a KV cache

Progress goes to stderr; the last stdout line is one JSON object.
"""

import argparse
import json
import math
import os
import sys
import time
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

WARMUP_BENCH_ITERS = 10


@dataclass
class GPTConfig:
    vocab_size: int
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg, sdpa=False):
        super().__init__()
        assert cfg.n_embd % cfg.n_head == 0
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.attn_dropout = nn.Dropout(cfg.dropout)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.dropout = cfg.dropout
        self.sdpa = sdpa
        # Non-persistent so it never shows up in a state dict / checkpoint.
        mask = torch.tril(torch.ones(cfg.block_size, cfg.block_size, dtype=torch.bool))
        self.register_buffer("mask", mask, persistent=False)

    def _qkv(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)
        shape = (B, T, self.n_head, C // self.n_head)
        return [t.view(shape).transpose(1, 2) for t in (q, k, v)]  # [B,H,T,D]

    def _merge(self, y):
        B, H, T, D = y.shape
        y = y.transpose(1, 2).reshape(B, T, H * D)
        return self.resid_dropout(self.c_proj(y))

    def _causal(self, q, k, v):
        T, D = q.size(-2), q.size(-1)
        if self.sdpa:
            return F.scaled_dot_product_attention(
                q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=True
            )
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(D))
        att = att.masked_fill(~self.mask[:T, :T], float("-inf"))
        att = self.attn_dropout(F.softmax(att, dim=-1))
        return att @ v

    def forward(self, x):
        q, k, v = self._qkv(x)
        return self._merge(self._causal(q, k, v))

    def prefill(self, x, cache):
        """Full causal pass over x (positions 0..T-1) that also fills cache."""
        q, k, v = self._qkv(x)
        T = x.size(1)
        cache["k"][:, :, :T] = k
        cache["v"][:, :, :T] = v
        return self._merge(self._causal(q, k, v))

    def step(self, x, cache, pos):
        """One new token at position pos: attend to cached k,v[0..pos]."""
        q, k, v = self._qkv(x)  # [B,H,1,D]
        cache["k"][:, :, pos : pos + 1] = k
        cache["v"][:, :, pos : pos + 1] = v
        K = cache["k"][:, :, : pos + 1]
        V = cache["v"][:, :, : pos + 1]
        if self.sdpa:
            # The single query is the last position, so nothing is masked.
            y = F.scaled_dot_product_attention(q, K, V)
        else:
            att = F.softmax((q @ K.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1))), dim=-1)
            y = att @ V
        return self._merge(y)


class MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()  # exact (erf) GELU
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, cfg, sdpa=False):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, eps=1e-5, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, sdpa)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, eps=1e-5, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

    def prefill(self, x, cache):
        x = x + self.attn.prefill(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))

    def step(self, x, cache, pos):
        x = x + self.attn.step(self.ln_1(x), cache, pos)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg, sdpa=False):
        super().__init__()
        self.cfg = cfg
        # Registration order fixes named_parameters() order and the init RNG
        # stream; wte comes before lm_head so the tied weight is `wte.weight`.
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        self.drop = nn.Dropout(cfg.dropout)
        self.h = nn.ModuleList([Block(cfg, sdpa) for _ in range(cfg.n_layer)])
        self.ln_f = nn.LayerNorm(cfg.n_embd, eps=1e-5, bias=cfg.bias)
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight
        self.apply(self._init_weights)
        # GPT-2's scaled init of the residual projections.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def num_params(self):
        return sum(p.numel() for p in self.parameters())  # tied weight counted once

    def forward(self, idx, targets=None):
        T = idx.size(1)
        assert T <= self.cfg.block_size
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1
            )
        return logits, loss

    # --- KV-cached inference -------------------------------------------------

    def new_cache(self, batch=1):
        c = self.cfg
        shape = (batch, c.n_head, c.block_size, c.n_embd // c.n_head)
        dtype = self.wte.weight.dtype
        return [{"k": torch.zeros(shape, dtype=dtype), "v": torch.zeros(shape, dtype=dtype)}
                for _ in range(c.n_layer)]

    def prefill(self, idx, cache):
        """Run idx [B,T] from position 0, fill cache; return last-position logits."""
        T = idx.size(1)
        x = self.wte(idx) + self.wpe(torch.arange(T))
        for block, c in zip(self.h, cache):
            x = block.prefill(x, c)
        return self.lm_head(self.ln_f(x[:, -1:, :]))[:, 0, :]

    def step(self, tok, cache, pos):
        """Run one token [B,1] at position pos through the cache; return logits [B,V]."""
        x = self.wte(tok) + self.wpe.weight[pos]
        for block, c in zip(self.h, cache):
            x = block.step(x, c, pos)
        return self.lm_head(self.ln_f(x))[:, 0, :]

    @torch.no_grad()
    def generate(self, prompt, n, generator, temperature=1.0):
        """Sample n tokens after prompt [1,P]. Each new token runs only its own
        position through the blocks. When the cache (block_size positions) is
        full, the context is cut to its last block_size//2 tokens and re-prefilled
        in one pass, so the cost stays amortised O(1) passes per token."""
        T = self.cfg.block_size
        keep = max(1, T // 2)
        ctx = prompt[:, -T:]
        cache = self.new_cache(prompt.size(0))
        logits = self.prefill(ctx, cache)
        pos = ctx.size(1)  # position the next token will occupy
        out = []
        for _ in range(n):
            probs = F.softmax(logits / temperature, dim=-1)
            tok = torch.multinomial(probs, 1, generator=generator)  # [B,1]
            out.append(tok)
            ctx = torch.cat([ctx, tok], dim=1)
            if pos == T:
                ctx = ctx[:, -keep:]
                cache = self.new_cache(prompt.size(0))
                logits = self.prefill(ctx, cache)
                pos = ctx.size(1)
            else:
                logits = self.step(tok, cache, pos)
                pos += 1
        return torch.cat(out, dim=1)


def configure_optimizer(model, lr, weight_decay, betas=(0.9, 0.99), eps=1e-8,
                        decay_embeddings=False):
    """AdamW with decay on 2-D weights except the embeddings (wte is also the
    tied head); biases, LayerNorm params and embeddings are not decayed.
    decay_embeddings=True decays every 2-D tensor, as nanoGPT does."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        embedding = name.startswith(("wte.", "wpe."))
        if p.dim() >= 2 and (decay_embeddings or not embedding):
            decay.append(p)
        else:
            no_decay.append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def lr_at(it, lr, min_lr, warmup, total):
    # Same as Kindling's LrSchedule::WarmupCosine.
    if it < warmup:
        return lr * (it + 1) / (warmup + 1)
    if it >= total:
        return min_lr
    progress = (it - warmup) / max(1, total - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


def default_data_path():
    primary = "/work/main/data/shakespeare/input.txt"
    if os.path.exists(primary):
        return primary
    return "/work/shared/data/shakespeare/input.txt"


def load_data(path):
    with open(path, "r", encoding="utf-8") as f:
        text = f.read()
    chars = sorted(set(text))
    stoi = {ch: i for i, ch in enumerate(chars)}
    data = torch.tensor([stoi[c] for c in text], dtype=torch.int64)
    n = int(0.9 * len(data))
    return chars, data[:n], data[n:]


def get_batch(data, block_size, batch_size, gen):
    ix = torch.randint(len(data) - block_size, (batch_size,), generator=gen)
    x = torch.stack([data[i : i + block_size] for i in ix.tolist()])
    y = torch.stack([data[i + 1 : i + 1 + block_size] for i in ix.tolist()])
    return x, y


@torch.no_grad()
def estimate_loss(model, splits, args, gen):
    model.eval()
    out = {}
    for name, data in splits.items():
        losses = [model(*get_batch(data, args.block_size, args.batch_size, gen))[1].item()
                  for _ in range(args.eval_iters)]
        out[name] = sum(losses) / len(losses)
    model.train()
    return out


def train_step(model, opt, x, y, lr, grad_clip):
    for g in opt.param_groups:
        g["lr"] = lr
    _, loss = model(x, y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    return loss


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="text file (default: tiny-shakespeare)")
    p.add_argument("--n-layer", type=int, default=4)
    p.add_argument("--n-head", type=int, default=4)
    p.add_argument("--n-embd", type=int, default=128)
    p.add_argument("--block-size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=12)
    p.add_argument("--max-iters", type=int, default=2000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-4)
    p.add_argument("--warmup-iters", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.0)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--grad-clip", type=float, default=1.0)
    p.add_argument("--eval-interval", type=int, default=250)
    p.add_argument("--eval-iters", type=int, default=20)
    p.add_argument("--seed", type=int, default=1337)
    p.add_argument("--no-bias", action="store_true",
                   help="no biases in Linear/LayerNorm (nanoGPT's default, bias=False)")
    p.add_argument("--decay-embeddings", action="store_true",
                   help="weight decay on the embeddings too (nanoGPT's rule: every 2-D tensor)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sdpa", action="store_true",
                   help="use F.scaled_dot_product_attention instead of explicit softmax attention")
    p.add_argument("--bench-iters", type=int, default=None,
                   help="benchmark: 10 warmup + N timed iterations, no eval (0: no training)")
    p.add_argument("--generate", type=int, default=0, help="sample N tokens after training")
    p.add_argument("--prompt", default="\n", help="one-character prompt for --generate")
    p.add_argument("--save", default=None, help="write the trained weights as .safetensors")
    return p.parse_args()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def main():
    args = parse_args()
    # Interop threads must be set before any parallel work starts.
    torch.set_num_interop_threads(1)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    chars, train_data, val_data = load_data(args.data or default_data_path())
    cfg = GPTConfig(vocab_size=len(chars), block_size=args.block_size, n_layer=args.n_layer,
                    n_head=args.n_head, n_embd=args.n_embd, dropout=args.dropout,
                    bias=not args.no_bias)
    model = GPT(cfg, sdpa=args.sdpa)
    attention = "sdpa" if args.sdpa else "explicit"
    log(f"torch {torch.__version__}, threads {torch.get_num_threads()}, vocab {len(chars)}, "
        f"params {model.num_params():,}, attention {attention}")
    opt = configure_optimizer(model, args.lr, args.weight_decay,
                              decay_embeddings=args.decay_embeddings)
    # Separate streams: eval batches must not shift the training batch sequence.
    batch_gen = torch.Generator().manual_seed(args.seed)
    eval_gen = torch.Generator().manual_seed(args.seed + 1)
    sample_gen = torch.Generator().manual_seed(args.seed + 2)

    result = {"framework": "pytorch", "torch_version": torch.__version__,
              "threads": torch.get_num_threads(), "params": model.num_params(),
              "iters": 0, "train_loss": None, "val_loss": None, "ms_per_iter": None,
              "tokens_per_sec": None, "attention": attention}
    splits = {"train": train_data, "val": val_data}
    model.train()

    if args.bench_iters is not None:
        n = args.bench_iters
        if n > 0:
            # Batches built up front: only forward + backward + clip + step is timed.
            batches = [get_batch(train_data, cfg.block_size, args.batch_size, batch_gen)
                       for _ in range(WARMUP_BENCH_ITERS + n)]
            total = WARMUP_BENCH_ITERS + n
            for it, (x, y) in enumerate(batches[:WARMUP_BENCH_ITERS]):
                train_step(model, opt, x, y, lr_at(it, args.lr, args.min_lr, args.warmup_iters, total),
                           args.grad_clip)
            t0 = time.perf_counter()
            for j, (x, y) in enumerate(batches[WARMUP_BENCH_ITERS:]):
                it = WARMUP_BENCH_ITERS + j
                loss = train_step(model, opt, x, y,
                                  lr_at(it, args.lr, args.min_lr, args.warmup_iters, total),
                                  args.grad_clip)
            dt = time.perf_counter() - t0
            result["iters"] = n
            result["ms_per_iter"] = dt * 1000.0 / n
            log(f"bench: {n} iters, {result['ms_per_iter']:.2f} ms/iter, last loss {loss.item():.4f}")
    else:
        train_time, t_last = 0.0, None
        for it in range(args.max_iters):
            x, y = get_batch(train_data, cfg.block_size, args.batch_size, batch_gen)
            lr = lr_at(it, args.lr, args.min_lr, args.warmup_iters, args.max_iters)
            t0 = time.perf_counter()
            loss = train_step(model, opt, x, y, lr, args.grad_clip)
            train_time += time.perf_counter() - t0
            if it % args.eval_interval == 0 and it > 0:
                est = estimate_loss(model, splits, args, eval_gen)
                log(f"iter {it}: train {est['train']:.4f}, val {est['val']:.4f}, "
                    f"lr {lr:.2e}, {train_time * 1000 / (it + 1):.2f} ms/iter")
            elif it % 50 == 0:
                log(f"iter {it}: loss {loss.item():.4f}")
        est = estimate_loss(model, splits, args, eval_gen)
        log(f"final: train {est['train']:.4f}, val {est['val']:.4f}")
        result.update(iters=args.max_iters, train_loss=est["train"], val_loss=est["val"],
                      ms_per_iter=train_time * 1000.0 / max(1, args.max_iters))

    if args.save:
        from safetensors.torch import save_model
        save_model(model, args.save)  # drops the tied lm_head duplicate
        log(f"saved {args.save}")

    if args.generate > 0:
        stoi = {c: i for i, c in enumerate(chars)}
        prompt = torch.tensor([[stoi[args.prompt[0]]]], dtype=torch.int64)
        model.eval()
        t0 = time.perf_counter()
        toks = model.generate(prompt, args.generate, sample_gen)
        dt = time.perf_counter() - t0
        result["tokens_per_sec"] = args.generate / dt
        log(f"generate: {args.generate} tokens in {dt:.3f} s, "
            f"{result['tokens_per_sec']:.1f} tokens/s\n---\n"
            + args.prompt[0] + "".join(chars[i] for i in toks[0].tolist()) + "\n---")

    print(json.dumps(result))


if __name__ == "__main__":
    main()
