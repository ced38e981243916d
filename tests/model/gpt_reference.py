#!/usr/bin/env python3
"""Independent PyTorch implementation of the Mousse GPT (docs/architecture.md), used to check the C++
model's loss and every parameter gradient.

Usage: gpt_reference.py DUMP.safetensors
The dump (written by test_model) holds the weights under canonical names, "grad/<name>" for the
C++ gradients, "tokens" and "targets" (i32 [B, T]), and metadata with the model dims and the C++
loss. Exits non-zero (and says where) if anything differs beyond float64 round-off.
"""
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F64": np.float64, "F32": np.float32, "I32": np.int32}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        a, b = e["data_offsets"]
        tensors[name] = np.frombuffer(data[a:b], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    return tensors, meta


def rmsnorm(x):
    return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6)


def rope(x, base):
    # x: [B, H, T, hd]; rotate pairs (i, i + hd/2) by +angle t * base^(-2i/hd)
    B, H, T, hd = x.shape
    half = hd // 2
    inv_freq = base ** (-torch.arange(0, half, dtype=torch.float64) * 2.0 / hd)
    ang = torch.arange(T, dtype=torch.float64)[:, None] * inv_freq[None, :]
    cos, sin = torch.cos(ang), torch.sin(ang)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


def forward(w, tokens, targets, cfg):
    L, C, H, V = cfg["n_layer"], cfg["d_model"], cfg["n_head"], cfg["vocab_size"]
    hd = C // H
    B, T = tokens.shape
    x = w["wte"][tokens]
    for l in range(L):
        p = f"blocks.{l}."
        h = rmsnorm(x)
        q = (h @ w[p + "attn.q"].T).view(B, T, H, hd).transpose(1, 2)
        k = (h @ w[p + "attn.k"].T).view(B, T, H, hd).transpose(1, 2)
        v = (h @ w[p + "attn.v"].T).view(B, T, H, hd).transpose(1, 2)
        q, k = rope(rmsnorm(q), cfg["rope_base"]), rope(rmsnorm(k), cfg["rope_base"])
        s = (q @ k.transpose(-1, -2)) / (hd ** 0.5)
        mask = torch.triu(torch.ones(T, T, dtype=torch.bool), diagonal=1)
        s = s.masked_fill(mask, float("-inf"))
        a = torch.softmax(s, dim=-1) @ v
        a = a.transpose(1, 2).reshape(B, T, C)
        x = x + a @ w[p + "attn.o"].T
        h = rmsnorm(x)
        x = x + torch.relu(h @ w[p + "mlp.fc"].T).square() @ w[p + "mlp.proj"].T
    logits = rmsnorm(x) @ w["lm_head"].T
    logits = logits[..., :V]  # padded rows never enter the softmax
    return torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1).long())


def main():
    tensors, meta = read_safetensors(sys.argv[1])
    cfg = json.loads(meta["model"])
    cpp_loss = float(meta["loss"])
    names = [n for n in tensors if not n.startswith("grad/") and n not in ("tokens", "targets")]
    w = {n: torch.tensor(tensors[n].astype(np.float64), requires_grad=True) for n in names}
    tokens = torch.tensor(tensors["tokens"].astype(np.int64))
    targets = torch.tensor(tensors["targets"].astype(np.int64))
    loss = forward(w, tokens, targets, cfg)
    loss.backward()
    failures = 0
    err = abs(loss.item() - cpp_loss) / max(1.0, abs(loss.item()))
    print(f"loss: torch {loss.item():.15f} mousse {cpp_loss:.15f} rel.err {err:.2e}")
    if err > 1e-10:
        failures += 1
    for n in names:
        g_ref = w[n].grad.numpy()
        g = tensors["grad/" + n]
        scale = max(np.abs(g_ref).max(), 1e-30)
        e = np.abs(g - g_ref).max() / scale
        status = "ok" if e < 1e-9 else "MISMATCH"
        if e >= 1e-9:
            failures += 1
        print(f"grad {n:24s} max|g| {scale:.3e} max rel.err {e:.2e} {status}")
    # The padded rows of wte/lm_head must get exactly zero gradient from the loss.
    V = cfg["vocab_size"]
    pad = np.abs(tensors["grad/lm_head"][V:]).max() if tensors["grad/lm_head"].shape[0] > V else 0
    print(f"lm_head padded-row gradient max {pad}")
    if pad != 0:
        failures += 1
    print("PASS" if failures == 0 else f"FAIL: {failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
