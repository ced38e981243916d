#!/usr/bin/env python3
"""Reference implementations for the optimizer tests (tests/optim), in float64.

Usage: optim_ref.py IN.json OUT.json. IN has "mode" and the mode's inputs; OUT gets the results.
Modes:
  svd            matrices -> U, S, Vt of each (numpy)
  mousse_closed  Mousse with the exact polar factor, via the closed form
                 L̃^(−α) polar(L̃^(−α) M R̃^(−α)) R̃^(−α) rescaled (grafting) as in Algorithm 1
  soap           SOAP following the reference algorithm of Vyas et al. (nikhilvyas/SOAP), torch
  adamw          torch.optim.AdamW
  lion           Lion (Chen et al. 2023) in numpy
  batch          "jobs": a list of the above -> "results": their outputs, in order
Each optimizer mode takes "w0" [rows][cols], "grads" [steps][rows][cols], "lrs" [steps], a
"config" dict, and returns "weights": W after every step.
"""
import json
import math
import sys

import numpy as np

torch = None  # imported on first use (slow to import; only the SOAP and AdamW modes need it)


def need_torch():
    global torch
    if torch is None:
        import torch as t
        t.set_default_dtype(t.float64)
        torch = t


def polar(x):
    u, s, vt = np.linalg.svd(x, full_matrices=False)
    tol = s.max() * 1e-12 if s.size else 0.0
    keep = s > tol
    return u[:, keep] @ vt[keep, :]


def update_scale(kind, out, inp):
    if kind == "keller":
        return math.sqrt(max(1.0, out / inp))
    if kind == "moonlight":
        return 0.2 * math.sqrt(max(out, inp))
    return math.sqrt(out / inp)


def mode_svd(inp):
    res = []
    for m in inp["matrices"]:
        u, s, vt = np.linalg.svd(np.array(m), full_matrices=False)
        res.append({"u": u.tolist(), "s": s.tolist(), "vt": vt.tolist()})
    return {"svd": res}


def mode_mousse_closed(inp):
    c = inp["config"]
    W = np.array(inp["w0"])
    m, n = W.shape
    beta, bpc, eps, alpha = c["momentum"], c["beta_pc"], c["eps"], c["alpha"]
    T, side = c["update_interval"], c["whiten"]
    use_l = side in ("both", "output") or (side == "smaller" and m <= n)
    use_r = side in ("both", "input") or (side == "smaller" and m > n)
    M = np.zeros((m, n))
    L = np.zeros((m, m))
    R = np.zeros((n, n))
    PL, PR = np.eye(m), np.eye(n)

    def power(F):
        d = F.shape[0]
        Ft = F * (d / (np.trace(F) + eps)) if c["trace_normalize"] else F
        lam, V = np.linalg.eigh(Ft + eps * np.eye(d))
        s = np.maximum(lam, eps) ** (-alpha)
        return (V * s) @ V.T

    out = []
    for t, (G, lr) in enumerate(zip(inp["grads"], inp["lrs"])):
        G = np.array(G)
        M = beta * M + G
        Meff = G + beta * M if c["nesterov"] else M
        L = bpc * L + (1 - bpc) * G @ G.T
        R = bpc * R + (1 - bpc) * G.T @ G
        if t % T == 0:
            if use_l:
                PL = power(L)
            if use_r:
                PR = power(R)
        P = polar(PL @ Meff @ PR)
        gamma = np.linalg.norm(P)
        U = PL @ P @ PR
        if c["grafting"]:
            nu = np.linalg.norm(U)
            if nu > 0:
                U = U * (gamma / nu)
        W = W * (1 - lr * c["weight_decay"]) - lr * update_scale(c["update_scale"], m, n) * U
        out.append(W.tolist())
    return {"weights": out}


class SoapRef:
    """The reference SOAP step for one 2-D parameter (nikhilvyas/SOAP soap.py, merge_dims off)."""

    def __init__(self, shape, c):
        self.c = c
        self.step = 0
        self.first = True
        self.exp_avg = torch.zeros(shape)
        self.exp_avg_sq = torch.zeros(shape)
        self.GG = [torch.zeros(d, d) if d <= c["max_precond_dim"] else None for d in shape]
        self.Q = None

    def project(self, x, back):
        # Q_Lᵀ x Q_R (or Q_L x Q_Rᵀ back); a dimension without preconditioner is the identity.
        for mat in self.Q:
            if mat is not None:
                x = torch.tensordot(x, mat, dims=[[0], [1 if back else 0]])
            else:
                x = x.permute(1, 0)
        return x

    def update_preconditioner(self, G):
        if self.Q is not None:
            self.exp_avg = self.project(self.exp_avg, back=True)
        for idx, GG in enumerate(self.GG):
            if GG is not None:
                other = 1 - idx
                outer = torch.tensordot(G, G, dims=[[other], [other]])
                GG.lerp_(outer, 1 - self.c["beta_pc"])
        if self.Q is None:
            self.Q = []
            for GG in self.GG:
                if GG is None:
                    self.Q.append(None)
                    continue
                _, q = torch.linalg.eigh(GG + 1e-30 * torch.eye(GG.shape[0]))
                self.Q.append(torch.flip(q, [1]))
        if self.step > 0 and self.step % self.c["update_interval"] == 0:
            new_q = []
            v = self.exp_avg_sq
            for ind, (GG, o) in enumerate(zip(self.GG, self.Q)):
                if GG is None:
                    new_q.append(None)
                    continue
                est_eig = torch.diag(o.T @ GG @ o)
                sort_idx = torch.argsort(est_eig, descending=True)
                v = v.index_select(ind, sort_idx)
                o = o[:, sort_idx]
                q, _ = torch.linalg.qr(GG @ o)
                new_q.append(q)
            self.exp_avg_sq = v
            self.Q = new_q
        if self.step > 0:
            self.exp_avg = self.project(self.exp_avg, back=False)

    def apply(self, W, G, lr):
        c = self.c
        if self.first:
            self.first = False
            self.update_preconditioner(G)
            return W
        Gp = self.project(G, back=False)
        self.step += 1
        b1, b2 = c["betas"]
        self.exp_avg.mul_(b1).add_(Gp, alpha=1 - b1)
        self.exp_avg_sq.mul_(b2).add_(Gp.square(), alpha=1 - b2)
        denom = self.exp_avg_sq.sqrt().add_(c["eps"])
        step_size = lr
        if c["correct_bias"]:
            step_size = lr * math.sqrt(1 - b2 ** self.step) / (1 - b1 ** self.step)
        N = self.project(self.exp_avg / denom, back=True)
        if c["normalize_grads"]:
            N = N / (1e-30 + torch.mean(N ** 2) ** 0.5)
        W = W - step_size * N
        if c["weight_decay"] > 0:
            W = W - lr * c["weight_decay"] * W
        self.update_preconditioner(G)
        return W


def mode_soap(inp):
    need_torch()
    W = torch.tensor(inp["w0"])
    opt = SoapRef(tuple(W.shape), inp["config"])
    out = []
    for G, lr in zip(inp["grads"], inp["lrs"]):
        W = opt.apply(W, torch.tensor(G), lr)
        out.append(W.tolist())
    return {"weights": out}


def mode_adamw(inp):
    need_torch()
    c = inp["config"]
    p = torch.nn.Parameter(torch.tensor(inp["w0"]))
    opt = torch.optim.AdamW([p], lr=inp["lrs"][0], betas=tuple(c["betas"]), eps=c["eps"],
                            weight_decay=c["weight_decay"])
    out = []
    for G, lr in zip(inp["grads"], inp["lrs"]):
        for g in opt.param_groups:
            g["lr"] = lr
        p.grad = torch.tensor(G)
        opt.step()
        out.append(p.detach().tolist())
    return {"weights": out}


def mode_lion(inp):
    c = inp["config"]
    b1, b2 = c["betas"]
    W = np.array(inp["w0"])
    m = np.zeros_like(W)
    out = []
    for G, lr in zip(inp["grads"], inp["lrs"]):
        G = np.array(G)
        u = np.sign(b1 * m + (1 - b1) * G)
        W = W * (1 - lr * c["weight_decay"]) - lr * u
        m = b2 * m + (1 - b2) * G
        out.append(W.tolist())
    return {"weights": out}


MODES = {"svd": mode_svd, "mousse_closed": mode_mousse_closed, "soap": mode_soap,
         "adamw": mode_adamw, "lion": mode_lion}


def run(inp):
    if inp["mode"] == "batch":
        return {"results": [run(job) for job in inp["jobs"]]}
    return MODES[inp["mode"]](inp)


def main():
    with open(sys.argv[1]) as f:
        inp = json.load(f)
    res = run(inp)
    with open(sys.argv[2], "w") as f:
        json.dump(res, f)


if __name__ == "__main__":
    main()
