#!/usr/bin/python3
"""PyTorch baseline of bench/model.ts: one forward+backward of a LLaMA-family decoder, the same math
nuggets runs (src/model): token embedding, per layer RMSNorm -> q/k/v projections -> RoPE
(rotate_half, theta 10000) -> causal softmax attention with grouped-query heads -> o projection ->
residual -> RMSNorm -> SwiGLU MLP (down(silu(gate x) * up x)) -> residual; final RMSNorm; lm_head
(tied to the embedding or not); mean next-token cross-entropy; backward to every parameter. fp32,
eager ops (HF's "eager" attention: explicit scores, mask and softmax), torch.set_num_threads(--threads).
Then greedy generation with a KV cache, batch 1, one token per step.

Run by bench/model.ts as a child process (one per program, so its peak RSS is its own):
  /usr/bin/python3 bench/torch/llama_fwd_bwd.py '<json spec>'
spec: {"vocab", "d", "layers", "heads", "kv_heads", "mlp", "tied", "seq", "batches": [..],
       "reps", "warmup", "threads", "gen_tokens"}
Prints one JSON line: {"fwd_bwd": [{"B", "T", "seconds", "cpu_seconds", "loss"}], "gen": {"tokens",
"seconds"}, "max_rss_kb", "threads", "torch"}. Timings are the best of `reps` after `warmup` untimed
runs; cpu_seconds is the process CPU time (all threads) of the best step.
"""
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F


def rms_norm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def rope_tables(T, hd, theta=10000.0):
    inv = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))
    f = torch.outer(torch.arange(T, dtype=torch.float32), inv)
    emb = torch.cat((f, f), dim=-1)
    return emb.cos(), emb.sin()


class Llama:
    def __init__(self, s, gen):
        d, f, V = s["d"], s["mlp"], s["vocab"]
        self.H, self.Hkv, self.hd = s["heads"], s["kv_heads"], s["d"] // s["heads"]
        self.tied = s["tied"]
        std = 0.02
        a = std * math.sqrt(3.0)  # uniform(-a, a) has this std, as bench/model.ts fills

        def mat(*shape):
            return torch.empty(*shape).uniform_(-a, a, generator=gen).requires_grad_()

        def ones(n):
            return torch.ones(n).requires_grad_()

        self.emb = mat(V, d)
        self.layers = []
        for _ in range(s["layers"]):
            self.layers.append({
                "ln1": ones(d), "q": mat(self.H * self.hd, d), "k": mat(self.Hkv * self.hd, d), "v": mat(self.Hkv * self.hd, d),
                "o": mat(d, self.H * self.hd), "ln2": ones(d), "gate": mat(f, d), "up": mat(f, d), "down": mat(d, f),
            })
        self.norm = ones(d)
        self.head = self.emb if self.tied else mat(V, d)

    def params(self):
        ps = [self.emb, self.norm] + [p for L in self.layers for p in L.values()]
        return ps if self.tied else ps + [self.head]

    def attention(self, L, h, cos, sin, cache=None, start=0):
        B, T, _ = h.shape
        q = F.linear(h, L["q"]).view(B, T, self.H, self.hd).transpose(1, 2)
        k = F.linear(h, L["k"]).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        v = F.linear(h, L["v"]).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        if cache is not None:
            cache[0][:, :, start:start + T] = k
            cache[1][:, :, start:start + T] = v
            k, v = cache[0][:, :, :start + T], cache[1][:, :, :start + T]
        rep = self.H // self.Hkv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.hd)
        S = k.shape[2]
        if T > 1:
            mask = torch.full((T, S), float("-inf")).triu(start + 1)
            scores = scores + mask
        p = torch.softmax(scores, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, self.H * self.hd)
        return F.linear(o, L["o"])

    def forward(self, ids, caches=None, start=0):
        B, T = ids.shape
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        x = F.embedding(ids, self.emb)
        for i, L in enumerate(self.layers):
            x = x + self.attention(L, rms_norm(x, L["ln1"]), cos, sin, None if caches is None else caches[i], start)
            h = rms_norm(x, L["ln2"])
            x = x + F.linear(F.silu(F.linear(h, L["gate"])) * F.linear(h, L["up"]), L["down"])
        return F.linear(rms_norm(x, self.norm), self.head)


def main():
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    gen = torch.Generator().manual_seed(1)
    model = Llama(s, gen)
    V, T = s["vocab"], s["seq"]
    # RoPE tables once for every position used, as nuggets precomputes them
    model.cos, model.sin = rope_tables(max(T, s["gen_tokens"] + 1), model.hd)
    out = {"fwd_bwd": [], "threads": torch.get_num_threads(), "torch": torch.__version__}
    for B in s["batches"]:
        ids = torch.randint(0, V, (B, T), generator=gen)
        targets = torch.randint(0, V, (B, T), generator=gen)
        best, cpu, loss = float("inf"), float("inf"), None
        for r in range(s["warmup"] + s["reps"]):
            for p in model.params():
                p.grad = None
            t0, c0 = time.perf_counter(), time.process_time()
            logits = model.forward(ids)
            l = F.cross_entropy(logits.view(-1, V), targets.view(-1))
            l.backward()
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            loss = l.item()
            if r >= s["warmup"]:
                best, cpu = min(best, dt), min(cpu, dc)
        out["fwd_bwd"].append({"B": B, "T": T, "seconds": best, "cpu_seconds": cpu, "loss": loss})
    n = s["gen_tokens"]
    if n > 0:
        with torch.no_grad():
            caches = [(torch.zeros(1, model.Hkv, n + 1, model.hd), torch.zeros(1, model.Hkv, n + 1, model.hd)) for _ in model.layers]
            tok = torch.tensor([[1]])
            t0 = time.perf_counter()
            for step in range(n):
                logits = model.forward(tok, caches, step)
                tok = logits[:, -1].argmax(-1, keepdim=True)
            out["gen"] = {"tokens": n, "seconds": time.perf_counter() - t0}
    out["max_rss_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(out))


if __name__ == "__main__":
    main()
