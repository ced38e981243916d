#!/usr/bin/env python3
"""Reference optimizer steps for the CPU backend tests (tests/backend/test_cpu_optim.cpp).

usage: optim_reference.py {adamw,lion} IN OUT [{adamw,lion} IN OUT ...]
(several jobs per call: importing torch is the slow part)

IN holds little-endian float64 values:
    n, steps, lr, beta1, beta2, eps, weight_decay, grad_scale,   (8 header values)
    p[n], m[n], v[n], g[steps * n]
OUT receives float64 p[n], m[n], v[n] after `steps` updates with gradients grad_scale * g[t].

AdamW is torch.optim.AdamW (decoupled weight decay, bias correction with step t = 1, 2, ...)
started from the given moments. Lion follows Algorithm 2 of Chen et al., "Symbolic Discovery of
Optimization Algorithms" (2023):
    c = beta1 m + (1 - beta1) g;  p = p - lr (sign(c) + wd p);  m = beta2 m + (1 - beta2) g
(v is passed through unchanged.) Everything runs in float64.
"""
import sys

import numpy as np
import torch


def run(algo, src, dst):
    data = np.fromfile(src, dtype="<f8")
    n, steps = int(data[0]), int(data[1])
    lr, beta1, beta2, eps, wd, grad_scale = (float(x) for x in data[2:8])
    body = data[8:]
    p = torch.tensor(body[0:n], dtype=torch.float64)
    m = torch.tensor(body[n:2 * n], dtype=torch.float64)
    v = torch.tensor(body[2 * n:3 * n], dtype=torch.float64)
    g = torch.tensor(body[3 * n:3 * n + steps * n], dtype=torch.float64).reshape(steps, n)

    if algo == "adamw":
        param = torch.nn.Parameter(p.clone())
        opt = torch.optim.AdamW([param], lr=lr, betas=(beta1, beta2), eps=eps, weight_decay=wd)
        opt.state[param] = {
            "step": torch.tensor(0.0),
            "exp_avg": m.clone(),
            "exp_avg_sq": v.clone(),
        }
        for t in range(steps):
            param.grad = grad_scale * g[t]
            opt.step()
        state = opt.state[param]
        p, m, v = param.detach(), state["exp_avg"], state["exp_avg_sq"]
    elif algo == "lion":
        for t in range(steps):
            gt = grad_scale * g[t]
            c = beta1 * m + (1 - beta1) * gt
            p = p - lr * (torch.sign(c) + wd * p)
            m = beta2 * m + (1 - beta2) * gt
    else:
        sys.exit(f"unknown algorithm {algo!r}: expected adamw or lion")

    np.concatenate([p.numpy(), m.numpy(), v.numpy()]).astype("<f8").tofile(dst)


def main():
    args = sys.argv[1:]
    if not args or len(args) % 3:
        sys.exit(__doc__)
    for i in range(0, len(args), 3):
        run(*args[i:i + 3])


if __name__ == "__main__":
    main()
