#!/usr/bin/python3
"""PyTorch baseline of bench/model.ts: one forward+backward of a LLaMA-family decoder, the same math
nuggets runs (llama_model.py: embedding, RMSNorm, RoPE, GQA attention, SwiGLU, lm_head tied or
not); mean next-token cross-entropy; backward to every parameter. fp32, eager ops,
torch.set_num_threads(--threads).
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
import resource
import sys
import time

import torch
import torch.nn.functional as F

from llama_model import Llama


def main():
    s = json.loads(sys.argv[1])
    torch.set_num_threads(s["threads"])
    gen = torch.Generator().manual_seed(1)
    V, T = s["vocab"], s["seq"]
    model = Llama(s, gen, max(T, s["gen_tokens"] + 1), trainable=True)
    out = {"fwd_bwd": [], "threads": torch.get_num_threads(), "torch": torch.__version__}
    for B in s["batches"]:
        ids = torch.randint(0, V, (B, T), generator=gen)
        targets = torch.randint(0, V, (B, T), generator=gen)
        best, cpu, loss = float("inf"), float("inf"), None
        for r in range(s["warmup"] + s["reps"]):
            for p in model.weights():
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
