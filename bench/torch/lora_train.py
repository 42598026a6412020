#!/usr/bin/python3
"""PyTorch baseline of bench/train.ts: LoRA fine-tuning steps of a LLaMA-family decoder with a
hand-written LoRA (PEFT's math: y = x W^T + (alpha/r) * B(A(dropout(x))), base weights frozen), the
same model math nuggets runs (llama_model.py, every q/k/v/o/gate/up/down projection a LoraLinear);
next-token cross-entropy over every position but the last.
One step = zero_grad, forward, backward, clip_grad_norm_(1.0), torch.optim.AdamW.step, as HF
Trainer does per update. fp32, eager ops, torch.set_num_threads(threads).

Run by bench/train.ts as a child process (so its peak RSS is its own):
  /usr/bin/python3 bench/torch/lora_train.py '<json spec>'
spec: {"vocab", "d", "layers", "heads", "kv_heads", "mlp", "tied", "seq", "batch", "r", "alpha",
       "dropout", "lr", "reps", "warmup", "threads"[, "autocast": "bf16"]}
With "autocast": "bf16" the forward and the loss run under torch.autocast("cpu", dtype=torch.bfloat16),
the usual way to buy bf16 speed in PyTorch (weights and optimizer stay fp32).
Prints one JSON line: {"steps": [{"seconds", "cpu_seconds", "loss"}], "best_seconds", "best_cpu_seconds", "tokens_per_step",
"lora_params", "max_rss_kb", "threads", "torch"}.
"""
import contextlib
import json
import math
import resource
import sys
import time

import torch
import torch.nn.functional as F

from llama_model import Llama


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


def main():
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    torch.manual_seed(5)  # dropout masks
    gen = torch.Generator().manual_seed(1)
    model = Llama(s, gen, s["seq"], linear=lambda W: LoraLinear(W, s["r"], s["alpha"], s["dropout"], gen))
    params = [p for L in model.layers for m in L.values() if isinstance(m, LoraLinear) for p in (m.A, m.B)]
    opt = torch.optim.AdamW(params, lr=s["lr"], betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    V, T, B = s["vocab"], s["seq"], s["batch"]
    ids = torch.randint(0, V, (B, T), generator=gen)
    steps, best, best_cpu = [], float("inf"), float("inf")
    if s.get("autocast") == "bf16":
        autocast = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    else:
        autocast = contextlib.nullcontext
    for i in range(s["warmup"] + s["reps"]):
        c0 = time.process_time()
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with autocast():
            logits = model.forward(ids)
            loss = F.cross_entropy(logits[:, :-1].reshape(-1, V).float(), ids[:, 1:].reshape(-1))
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
