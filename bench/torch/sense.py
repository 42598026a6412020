#!/usr/bin/python3
"""PyTorch baseline of bench/sense.ts: docs/method.md step 1 the way the reference code does it: the
whole fp32 model in memory, one seed example per forward+backward (answer-only mean token
cross-entropy), then for every parameter S += (theta * grad).abs(). LLaMA math as nuggets runs it:
embedding, per layer RMSNorm -> q/k/v -> RoPE (rotate_half) -> causal softmax attention (grouped
query heads, explicit scores as HF's eager attention) -> o -> residual -> RMSNorm -> SwiGLU MLP ->
residual; final RMSNorm; untied lm_head. torch.set_num_threads(threads).

Run by bench/sense.ts as a child process:
  /usr/bin/python3 bench/torch/sense.py '<json spec>'
spec: {"vocab", "d", "layers", "heads", "kv_heads", "mlp", "seeds": [[ids...], ...], "prompt": [n...],
       "threads", "reps"}
Prints one JSON line: {"seconds" (best of reps, all seeds), "tokens", "losses", "threads", "torch"}.
"""
import json
import math
import sys
import time

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def main():
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    gen = torch.Generator().manual_seed(1)
    d, f, V, L = s["d"], s["mlp"], s["vocab"], s["layers"]
    H, Hkv = s["heads"], s["kv_heads"]
    hd = d // H

    def mat(o, i):
        return (torch.randn(o, i, generator=gen) / math.sqrt(i)).requires_grad_()

    P = {"emb": torch.randn(V, d, generator=gen).requires_grad_(), "norm": torch.ones(d).requires_grad_(), "head": mat(V, d)}
    for l in range(L):
        P["l%d.n1" % l] = torch.ones(d).requires_grad_()
        P["l%d.n2" % l] = torch.ones(d).requires_grad_()
        for name, (o, i) in {"q": (H * hd, d), "k": (Hkv * hd, d), "v": (Hkv * hd, d), "o": (d, H * hd),
                             "gate": (f, d), "up": (f, d), "down": (d, f)}.items():
            P["l%d.%s" % (l, name)] = mat(o, i)
    S = {k: torch.zeros_like(v) for k, v in P.items()}

    def loss_of(ids, targets):
        T = ids.shape[0]
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
        fr = torch.outer(torch.arange(T, dtype=torch.float32), inv)
        emb = torch.cat((fr, fr), dim=-1)
        cos, sin = emb.cos()[None], emb.sin()[None]
        mask = torch.full((T, T), float("-inf")).triu(1)
        h = P["emb"][ids]
        for l in range(L):
            p = lambda n: P["l%d.%s" % (l, n)]
            x = rms_norm(h, p("n1"))
            q = (x @ p("q").T).view(T, H, hd).transpose(0, 1)
            k = (x @ p("k").T).view(T, Hkv, hd).transpose(0, 1)
            v = (x @ p("v").T).view(T, Hkv, hd).transpose(0, 1)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if Hkv != H:
                k = k.repeat_interleave(H // Hkv, dim=0)
                v = v.repeat_interleave(H // Hkv, dim=0)
            a = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(hd) + mask, dim=-1) @ v
            h = h + a.transpose(0, 1).reshape(T, H * hd) @ p("o").T
            x = rms_norm(h, p("n2"))
            h = h + (F.silu(x @ p("gate").T) * (x @ p("up").T)) @ p("down").T
        logits = rms_norm(h, P["norm"]) @ P["head"].T
        return F.cross_entropy(logits, targets, ignore_index=-1)

    seeds = []
    for ids, prompt in zip(s["seeds"], s["prompt"]):
        ids = torch.tensor(ids, dtype=torch.int64)
        targets = torch.full_like(ids, -1)
        targets[prompt - 1:-1] = ids[prompt:]
        seeds.append((ids, targets))

    best, best_cpu, losses = float("inf"), float("inf"), []
    for _ in range(s["reps"]):
        t0 = time.perf_counter()
        c0 = time.process_time()
        losses = []
        for ids, targets in seeds:
            for p in P.values():
                p.grad = None
            loss = loss_of(ids, targets)
            loss.backward()
            with torch.no_grad():
                for k, p in P.items():
                    S[k] += (p * p.grad).abs()
            losses.append(loss.item())
        best = min(best, time.perf_counter() - t0)
        best_cpu = min(best_cpu, time.process_time() - c0)
    print(json.dumps({"seconds": best, "cpu_seconds": best_cpu, "tokens": sum(len(x) for x in s["seeds"]), "losses": losses,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
