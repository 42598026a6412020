"""The LLaMA-family decoder both PyTorch baselines run (llama_fwd_bwd.py for bench/model.ts,
lora_train.py for bench/train.ts), the same math nuggets runs (src/model): token embedding, per layer
RMSNorm -> q/k/v projections -> RoPE (rotate_half, theta 10000) -> causal softmax attention with
grouped-query heads -> o projection -> residual -> RMSNorm -> SwiGLU MLP (down(silu(gate x) * up x))
-> residual; final RMSNorm; lm_head (tied to the embedding or not). fp32, eager ops (HF's "eager"
attention: explicit scores, mask and softmax), an optional KV cache for generation.

Weights are uniform(-a, a) with std 0.02 (a = 0.02 sqrt 3), norms 1, as bench/llama.ts fills them,
drawn from one generator in a fixed order: embedding, then per layer q, k, v, o, gate, up, down
(each projection's `linear` factory may draw more, e.g. LoRA factors, right after its weight), then
the untied head.
"""
import math

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


class Linear:
    """y = x W^T with W [out, in]."""

    def __init__(self, W):
        self.W = W

    def __call__(self, x):
        return F.linear(x, self.W)


class Llama:
    """The decoder of spec s ({"vocab", "d", "layers", "heads", "kv_heads", "mlp", "tied"}) with RoPE
    tables for `positions` positions. trainable: every weight requires grad (else all are frozen);
    linear(W) wraps each projection weight (default: a plain Linear)."""

    def __init__(self, s, gen, positions, trainable=False, linear=Linear):
        d, f, V = s["d"], s["mlp"], s["vocab"]
        self.H, self.Hkv, self.hd = s["heads"], s["kv_heads"], s["d"] // s["heads"]
        self.tied = s["tied"]
        a = 0.02 * math.sqrt(3.0)  # uniform(-a, a) has std 0.02

        def mat(*shape):
            w = torch.empty(*shape).uniform_(-a, a, generator=gen)
            return w.requires_grad_() if trainable else w

        def ones(n):
            w = torch.ones(n)
            return w.requires_grad_() if trainable else w

        def proj(*shape):
            return linear(mat(*shape))

        self.emb = mat(V, d)
        self.layers = []
        for _ in range(s["layers"]):
            self.layers.append({
                "ln1": ones(d), "q": proj(self.H * self.hd, d), "k": proj(self.Hkv * self.hd, d), "v": proj(self.Hkv * self.hd, d),
                "o": proj(d, self.H * self.hd), "ln2": ones(d), "gate": proj(f, d), "up": proj(f, d), "down": proj(d, f),
            })
        self.norm = ones(d)
        self.head = self.emb if self.tied else mat(V, d)
        # RoPE tables once for every position used, as nuggets precomputes them
        self.cos, self.sin = rope_tables(positions, self.hd)

    def weights(self):
        """Every weight tensor (the projections' W), the tied head once."""
        ws = [self.emb, self.norm] + [m if torch.is_tensor(m) else m.W for L in self.layers for m in L.values()]
        return ws if self.tied else ws + [self.head]

    def attention(self, L, h, cos, sin, cache=None, start=0):
        B, T, _ = h.shape
        q = L["q"](h).view(B, T, self.H, self.hd).transpose(1, 2)
        k = L["k"](h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
        v = L["v"](h).view(B, T, self.Hkv, self.hd).transpose(1, 2)
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
        return L["o"](o)

    def forward(self, ids, caches=None, start=0):
        """Logits [B, T, V] of ids [B, T] at positions start..start+T-1 (caches: one (K, V) pair per layer)."""
        B, T = ids.shape
        cos, sin = self.cos[start:start + T], self.sin[start:start + T]
        x = F.embedding(ids, self.emb)
        for i, L in enumerate(self.layers):
            x = x + self.attention(L, rms_norm(x, L["ln1"]), cos, sin, None if caches is None else caches[i], start)
            h = rms_norm(x, L["ln2"])
            x = x + L["down"](F.silu(L["gate"](h)) * L["up"](h))
        return F.linear(rms_norm(x, self.norm), self.head)
