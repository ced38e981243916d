#!/usr/bin/env python3
"""The Mousse GPT (docs/architecture.md, "The model") in PyTorch, as a throughput reference for `mousse bench`.

Same model: no biases, RMSNorm without gain (eps 1e-6) before attention / MLP / lm_head,
QK-Norm (RMSNorm over the head dim) then RoPE ("rotate half", +angle, inv_freq = base^(-2i/hd)),
causal softmax attention with scores q·k/sqrt(hd) (F.scaled_dot_product_attention, is_causal),
MLP proj(relu(fc(x))²), untied lm_head, vocabulary padded to 50304 with the loss over the first
50257 logits. Training step: bf16 autocast, mean cross-entropy, backward, global-norm clipping
at 1.0, fused AdamW on every parameter (PyTorch has no Lion; mousse's bench config runs Lion on
wte / lm_head, which costs less than AdamW, so this favours neither side), torch.compile.

    scripts/torch_reference.py --preset 162m --batch 16 --seq 1024          # on a GPU
    scripts/torch_reference.py --smoke                                      # CPU, seconds

Prints one line for scripts/gpu-check.sh:
    BENCH torch tokens_per_s=... mfu=... step_ms=... mem_gib=...
--smoke runs a tiny model on the CPU without compile, checks its loss and gradients against the
independent float64 reference in tests/model/gpt_reference.py (itself checked against the C++
model), and takes a few optimizer steps.
"""
import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

PRESETS = {  # n_layer, n_head, d_model
    "tiny": (4, 4, 128),
    "162m": (12, 6, 768),
    "247m": (24, 6, 768),
    "494m": (12, 6, 1536),
    "834m": (24, 6, 1536),
}
PEAK_BF16 = [("H100 PCIe", 756e12), ("H100 NVL", 835e12), ("H100", 989e12), ("H200", 989e12),
             ("H800", 989e12), ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12)]


def up(x):  # half precisions to float32; float32/float64 unchanged
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def rmsnorm(x):
    # Computed in float32 whatever the autocast dtype, then cast back (as mousse's kernels do).
    xf = up(x)
    return (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-6)).type_as(x)


class Block(nn.Module):
    def __init__(self, C, H):
        super().__init__()
        self.H = H
        self.qkv = nn.Linear(C, 3 * C, bias=False)  # rows q | k | v, each [C, C]
        self.o = nn.Linear(C, C, bias=False)
        self.fc = nn.Linear(C, 4 * C, bias=False)
        self.proj = nn.Linear(4 * C, C, bias=False)

    def forward(self, x, cos, sin):
        B, T, C = x.shape
        H, hd = self.H, C // self.H
        q, k, v = self.qkv(rmsnorm(x)).view(B, T, 3, H, hd).permute(2, 0, 3, 1, 4)
        q, k = rope(rmsnorm(q), cos, sin), rope(rmsnorm(k), cos, sin)
        a = attention(q, k, v)
        x = x + self.o(a.transpose(1, 2).reshape(B, T, C))
        return x + self.proj(F.relu(self.fc(rmsnorm(x))).square())


def attention(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):  # torch >= 2.0 (flash / cuDNN kernels)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)  # scale 1/sqrt(hd)
    T = q.shape[-2]  # older torch (CPU smoke runs only)
    s = (q @ k.transpose(-1, -2)) / math.sqrt(q.shape[-1])
    s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool, device=q.device), 1),
                      float("-inf"))
    return torch.softmax(up(s), dim=-1).type_as(v) @ v


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).type_as(x)


class GPT(nn.Module):
    def __init__(self, n_layer, n_head, d_model, vocab=50257, padded_vocab=50304, max_T=1024,
                 rope_base=10000.0):
        super().__init__()
        self.V = vocab
        self.wte = nn.Embedding(padded_vocab, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_head) for _ in range(n_layer))
        self.lm_head = nn.Linear(d_model, padded_vocab, bias=False)
        hd = d_model // n_head
        inv_freq = rope_base ** (-torch.arange(0, hd // 2, dtype=torch.float64) * 2.0 / hd)
        ang = torch.arange(max_T, dtype=torch.float64)[:, None] * inv_freq[None, :]
        self.register_buffer("cos", torch.cos(ang), persistent=False)  # float64; cast per use
        self.register_buffer("sin", torch.sin(ang), persistent=False)
        # init (docs/architecture.md): N(0, σ²), σ = 1/sqrt(fan_in)·min(1, sqrt(fan_out/fan_in)); embeddings N(0, 1)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                out_f, in_f = m.weight.shape
                std = 1 / math.sqrt(in_f) * min(1.0, math.sqrt(out_f / in_f))
                nn.init.normal_(m.weight, 0.0, std)
        nn.init.normal_(self.wte.weight, 0.0, 1.0)

    def forward(self, tokens, targets):
        T = tokens.shape[1]
        dt = torch.float64 if self.wte.weight.dtype == torch.float64 else torch.float32
        cos, sin = self.cos[:T].to(dt), self.sin[:T].to(dt)
        x = self.wte(tokens)
        for b in self.blocks:
            x = b(x, cos, sin)
        logits = self.lm_head(rmsnorm(x))[..., : self.V]  # padded rows never enter the softmax
        return F.cross_entropy(up(logits).reshape(-1, self.V), targets.reshape(-1))


def flops_per_token(L, C, Vp, T):  # the same count as ModelConfig::flops_per_token
    return 6.0 * (L * 12.0 * C * C + Vp * C) + L * 6.0 * T * C


def smoke():
    """CPU, float64, no compile: loss and gradients equal the independent reference."""
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "tests", "model"))
    import gpt_reference  # noqa: E402

    torch.manual_seed(0)
    L, H, C, V, Vp, T, B = 2, 4, 32, 91, 128, 13, 2
    m = GPT(L, H, C, vocab=V, padded_vocab=Vp, max_T=16, rope_base=100.0).double()
    tokens = torch.randint(0, V, (B, T))
    targets = torch.randint(0, V, (B, T))
    loss = m(tokens, targets)
    loss.backward()
    w = {"wte": m.wte.weight, "lm_head": m.lm_head.weight}
    for i, b in enumerate(m.blocks):
        q, k, v = b.qkv.weight.chunk(3, 0)
        w.update({f"blocks.{i}.attn.q": q, f"blocks.{i}.attn.k": k, f"blocks.{i}.attn.v": v,
                  f"blocks.{i}.attn.o": b.o.weight, f"blocks.{i}.mlp.fc": b.fc.weight,
                  f"blocks.{i}.mlp.proj": b.proj.weight})
    w = {n: t.detach().clone().requires_grad_(True) for n, t in w.items()}
    cfg = {"n_layer": L, "d_model": C, "n_head": H, "vocab_size": V, "rope_base": 100.0}
    ref = gpt_reference.forward(w, tokens, targets, cfg)
    ref.backward()
    err = abs(loss.item() - ref.item())
    assert err < 1e-12, f"loss differs from the reference: {loss.item()} vs {ref.item()}"
    g_qkv = torch.cat([w["blocks.0.attn.q"].grad, w["blocks.0.attn.k"].grad,
                       w["blocks.0.attn.v"].grad])
    for got, want, name in [(m.wte.weight.grad, w["wte"].grad, "wte"),
                            (m.lm_head.weight.grad, w["lm_head"].grad, "lm_head"),
                            (m.blocks[0].qkv.weight.grad, g_qkv, "blocks.0.qkv"),
                            (m.blocks[1].fc.weight.grad, w["blocks.1.mlp.fc"].grad, "blocks.1.fc")]:
        e = (got - want).abs().max().item() / max(want.abs().max().item(), 1e-30)
        assert e < 1e-10, f"gradient of {name} differs from the reference: rel.err {e:.2e}"
    print(f"smoke: loss {loss.item():.12f} equals the float64 reference (|diff| {err:.1e}); "
          "gradients match")
    # A few training steps of the benchmark loop on the CPU (float32).
    res = bench(argparse.Namespace(preset=None, layers=2, heads=4, d_model=64, batch=2, seq=32,
                                   steps=3, warmup=1, compile=False, device="cpu", dtype="f32",
                                   lr=1e-3, vocab=500, padded_vocab=512))
    assert math.isfinite(res["loss"]), "non-finite loss in the smoke run"
    return 0


def bench(a):
    dev = torch.device(a.device)
    if a.preset:
        L, H, C = PRESETS[a.preset]
    else:
        L, H, C = a.layers, a.heads, a.d_model
    B, T = a.batch, a.seq
    torch.manual_seed(1337)
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    V, Vp = getattr(a, "vocab", 50257), getattr(a, "padded_vocab", 50304)
    model = GPT(L, H, C, vocab=V, padded_vocab=Vp, max_T=max(T, 1024)).to(dev)
    extra = {"fused": True} if dev.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=0.01, **extra)
    if a.compile and not hasattr(torch, "compile"):
        sys.exit(f"torch {torch.__version__} has no torch.compile; pass --no-compile")
    step_fn_model = torch.compile(model) if a.compile else model
    use_bf16 = a.dtype == "bf16"

    def step(tokens, targets):
        with torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=use_bf16):
            loss = step_fn_model(tokens, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss

    gen = torch.Generator(device="cpu").manual_seed(0)
    batches = [torch.randint(0, V, (B, T + 1), generator=gen) for _ in range(4)]
    batches = [(x[:, :-1].contiguous().to(dev), x[:, 1:].contiguous().to(dev)) for x in batches]
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t_compile = time.time()
    for i in range(a.warmup):
        step(*batches[i % 4])
    sync()
    t_compile = time.time() - t_compile
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.time()
    loss = None
    for i in range(a.steps):
        loss = step(*batches[i % 4])
    sync()
    dt = (time.time() - t0) / a.steps
    tps = B * T / dt
    fpt = flops_per_token(L, C, Vp, T)
    peak = 0.0
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"
    for key, val in PEAK_BF16:
        if key in name:
            peak = val
            break
    mfu = f"{fpt * tps / peak:.4f}" if peak > 0 else "n/a"
    mem = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else 0.0
    lv = loss.item()
    print(f"torch {torch.__version__} on {name}: {L} layers, d_model {C}, {H} heads, B {B}, T {T}, "
          f"{a.dtype}, compile {a.compile}; warmup {a.warmup} steps {t_compile:.1f}s")
    print(f"throughput: {tps:,.0f} tokens/s, {dt * 1e3:.2f} ms/step, MFU {mfu}, peak memory "
          f"{mem:.2f} GiB, loss {lv:.4f}")
    print(f"BENCH torch tokens_per_s={tps:.0f} mfu={mfu} step_ms={dt * 1e3:.2f} mem_gib={mem:.2f}",
          flush=True)
    return {"tokens_per_s": tps, "loss": lv}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", choices=sorted(PRESETS), default="162m")
    p.add_argument("--layers", type=int, default=None)
    p.add_argument("--heads", type=int, default=None)
    p.add_argument("--d-model", type=int, default=None)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=1024)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=["bf16", "f32"], default="bf16")
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--smoke", action="store_true", help="CPU correctness + loop smoke test")
    a = p.parse_args()
    if a.smoke:
        return smoke()
    if a.layers or a.heads or a.d_model:
        L, H, C = PRESETS[a.preset]
        a.layers, a.heads, a.d_model = a.layers or L, a.heads or H, a.d_model or C
        a.preset = None
    bench(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
