#!/usr/bin/env python3
"""Interop check: an adapter written by `nuggets extract` loads in Hugging Face PEFT on the HF
model it was made for, with every factor where PEFT expects it, and PEFT's logits equal nuggets'.

Needs python3 with torch, transformers and peft (not available on the development machine; run it
where they are installed). Steps, from the nuggets folder:

    node --import tsx src/cli/run.ts convert data/stories260k/checkpoint_legacy.bin -o /tmp/s260k-hf
    printf '%s\\n' '{"prompt": "Tell me about Lily.", "answer": "Lily was a little girl who loved to play."}' \\
        '{"prompt": "What did Tom see?", "answer": "Tom saw a big red ball."}' > /tmp/seeds.jsonl
    node --import tsx src/cli/run.ts sense --teacher /tmp/s260k-hf --seeds /tmp/seeds.jsonl -o /tmp/sens.safetensors
    node --import tsx src/cli/run.ts extract --teacher self --student /tmp/s260k-hf \\
        --sensitivity /tmp/sens.safetensors -o /tmp/init --rank 4 --alpha 8
    node --import tsx scripts/interop/nuggets_logits.ts /tmp/s260k-hf /tmp/init /tmp/nuggets_logits.json
    python3 scripts/interop/peft_check.py --model /tmp/s260k-hf --adapter /tmp/init --logits /tmp/nuggets_logits.json

The adapter covers every module type (q/k/v/o, gate/up/down of every layer, embed_tokens, lm_head).
Both sides apply it WITHOUT the subtract trick (the adapter on the untouched model), so its delta
changes the logits and a wrong key name, shape or layout shows up twice:
  1. every tensor of adapter_model.safetensors must be loaded into the PEFT model unchanged (a wrong
     key loads silently as "missing" and leaves PEFT's own init in place: compared value by value);
  2. PEFT's logits on the same token ids must equal nuggets' (max abs difference below --atol),
     and differ from the base model's (so the adapter is really applied).
Exit status 0 when both hold, 1 otherwise.
"""
import argparse
import json
import sys

import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--model', required=True, help='HF model folder (e.g. converted stories260K)')
    ap.add_argument('--adapter', required=True, help='adapter folder written by nuggets extract')
    ap.add_argument('--logits', required=True, help='JSON from scripts/interop/nuggets_logits.ts')
    ap.add_argument('--atol', type=float, default=1e-4)
    a = ap.parse_args()

    ref = json.load(open(a.logits))
    ids = torch.tensor([ref['ids']])
    V = ref['vocab']
    want = torch.tensor(ref['logits'], dtype=torch.float32).view(len(ref['ids']), V)

    base = AutoModelForCausalLM.from_pretrained(a.model, torch_dtype=torch.float32, attn_implementation='eager')
    base.eval()
    with torch.no_grad():
        base_logits = base(ids).logits[0].clone()
    model = PeftModel.from_pretrained(base, a.adapter)
    model.eval()

    ok = True
    # 1. every stored factor is in the model, unchanged
    stored = load_file(a.adapter + '/adapter_model.safetensors')
    params = dict(model.named_parameters())
    for key, value in stored.items():
        # PEFT's in-model names carry the adapter name: ...lora_A.default.weight / lora_embedding_A.default
        if key.endswith('.weight'):
            name = key[:-len('.weight')] + '.default.weight'
        else:
            name = key + '.default'
        p = params.get(name)
        if p is None:
            print('MISSING in the PEFT model: %s (looked for %s)' % (key, name))
            ok = False
        elif p.shape != value.shape or not torch.equal(p.detach().float(), value.float()):
            print('DIFFERENT in the PEFT model: %s (shape %s vs stored %s)' % (key, tuple(p.shape), tuple(value.shape)))
            ok = False
    print('%d adapter tensors checked against the loaded PEFT model' % len(stored))

    # 2. logits
    with torch.no_grad():
        got = model(ids).logits[0]
    diff = (got - want).abs().max().item()
    moved = (got - base_logits).abs().max().item()
    print('max |PEFT - nuggets| = %.3g over %d x %d logits (atol %.1g); the adapter moves the logits by up to %.3g'
          % (diff, got.shape[0], got.shape[1], a.atol, moved))
    if not diff < a.atol:
        ok = False
    if not moved > 10 * a.atol:
        print('the adapter does not change the logits: the check would not see a wrong layout')
        ok = False
    print('PASS' if ok else 'FAIL')
    sys.exit(0 if ok else 1)


if __name__ == '__main__':
    main()
