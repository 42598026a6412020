#!/usr/bin/python3
"""PyTorch baseline of bench/train.ts: LoRA fine-tuning steps of a LLaMA-family decoder with a
hand-written LoRA (PEFT's math: y = x W^T + (alpha/r) * B(A(dropout(x))), base weights frozen), the
same model math nuggets runs (src/model): token embedding, per layer RMSNorm -> q/k/v -> RoPE
(rotate_half, theta 10000) -> causal softmax attention -> o -> residual -> RMSNorm -> SwiGLU MLP ->
residual; final RMSNorm; lm_head (tied); next-token cross-entropy over every position but the last.
One step = zero_grad, forward, backward, clip_grad_norm_(1.0), torch.optim.AdamW.step, as HF
Trainer does per update. fp32, eager ops, torch.set_num_threads(threads).

Run by bench/train.ts as a child process (so its peak RSS is its own):
  /usr/bin/python3 bench/torch/lora_train.py '<json spec>'
spec: {"vocab", "d", "layers", "heads", "kv_heads", "mlp", "tied", "seq", "batch", "r", "alpha",
       "dropout", "lr", "reps", "warmup", "threads"}
Prints one JSON line: {"steps": [{"seconds", "cpu_seconds", "loss"}], "best_seconds", "best_cpu_seconds", "tokens_per_step",
"lora_params", "max_rss_kb", "threads", "torch"}.
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


class LoraLinear:
    """A frozen weight W [out, in] with trainable A [r, in] (Kaiming-uniform) and B [out, r]."""

    def __init__(self, W, r, alpha, dropout, gen):
        self.W = W
        out_f, in_f = W.shape
        bound = 1.0 / math.sqrt(in_f)  # kaiming_uniform_(a=sqrt(5)), PEFT's lora_A init
        self.A = torch.empty(r, in_f).uniform_(-bound, bound, generator=gen).requires_grad_()
        self.B = (torch.randn(out_f, r, generator=gen) * 0.01).requires_grad_()
        self.scale = alpha / r
        self.p = dropout

    def __call__(self, x):
        xd = F.dropout(x, self.p, training=True) if self.p > 0 else x
        return F.linear(x, self.W) + self.scale * F.linear(F.linear(xd, self.A), self.B)


class LoraLlama:
    def __init__(self, s, gen):
        d, f, V = s["d"], s["mlp"], s["vocab"]
        self.H, self.Hkv, self.hd = s["heads"], s["kv_heads"], s["d"] // s["heads"]
        a = 0.02 * math.sqrt(3.0)  # uniform(-a, a) has std 0.02, as bench/train.ts fills

        def mat(*shape):
            return torch.empty(*shape).uniform_(-a, a, generator=gen)

        def lora(*shape):
            return LoraLinear(mat(*shape), s["r"], s["alpha"], s["dropout"], gen)

        self.emb = mat(V, d)
        self.layers = []
        for _ in range(s["layers"]):
            self.layers.append({
                "ln1": torch.ones(d), "q": lora(self.H * self.hd, d), "k": lora(self.Hkv * self.hd, d), "v": lora(self.Hkv * self.hd, d),
                "o": lora(d, self.H * self.hd), "ln2": torch.ones(d), "gate": lora(f, d), "up": lora(f, d), "down": lora(d, f),
            })
        self.norm = torch.ones(d)
        self.head = self.emb if s["tied"] else mat(V, d)

    def lora_params(self):
        return [p for L in self.layers for m in L.values() if isinstance(m, LoraLinear) for p in (m.A, m.B)]

    def attention(self, L, h, cos, sin):
        B, T, _ = h.shape
        q = L["q"](h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = L["k"](h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        v = L["v"](h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = self.H // self.Hkv
        if rep > 1:
            k = k.repeat_interleave(rep, dim=1)
            v = v.repeat_interleave(rep, dim=1)
        scores = q @ k.transpose(2, 3) / math.sqrt(self.hd)
        scores = scores + torch.full((T, T), float("-inf")).triu(1)
        p = torch.softmax(scores, dim=-1)
        o = (p @ v).transpose(1, 2).reshape(B, T, self.H * self.hd)
        return L["o"](o)

    def forward(self, ids):
        T = ids.shape[1]
        cos, sin = self.cos[:T], self.sin[:T]
        x = F.embedding(ids, self.emb)
        for L in self.layers:
            x = x + self.attention(L, rms_norm(x, L["ln1"]), cos, sin)
            h = rms_norm(x, L["ln2"])
            x = x + L["down"](F.silu(L["gate"](h)) * L["up"](h))
        return F.linear(rms_norm(x, self.norm), self.head)


def main():
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    torch.manual_seed(5)  # dropout masks
    gen = torch.Generator().manual_seed(1)
    model = LoraLlama(s, gen)
    model.cos, model.sin = rope_tables(s["seq"], model.hd)
    params = model.lora_params()
    opt = torch.optim.AdamW(params, lr=s["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    V, T, B = s["vocab"], s["seq"], s["batch"]
    ids = torch.randint(0, V, (B, T), generator=gen)
    steps, best, best_cpu = [], float("inf"), float("inf")
    for i in range(s["warmup"] + s["reps"]):
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model.forward(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, V), ids[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        dt = time.perf_counter() - t0
        cpu = time.process_time() - c0
        steps.append({"seconds": dt, "cpu_seconds": cpu, "loss": loss.item()})
        if i >= s["warmup"]:
            best = min(best, dt)
            best_cpu = min(best_cpu, cpu)
    print(json.dumps({
        "steps": steps, "best_seconds": best, "best_cpu_seconds": best_cpu, "tokens_per_step": B * T, "lora_params": sum(p.numel() for p in params),
        "max_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()
