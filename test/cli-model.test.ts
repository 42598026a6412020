/**
 * The model commands through the CLI (generate, convert, inspect): `nuggets generate` prints the golden
 * stories260K text from the llama2.c file and from the folder `nuggets convert` writes; prompts,
 * stop strings, sampling, chat wrapping and adapters behave as documented; `nuggets inspect`
 * counts match numbers computed by hand from the architecture; bad input gives one line naming the
 * file and exit code 2.
 *
 * Starting tsx costs about a second per process on a busy machine, so most invocations run in ONE
 * child process that calls the CLI's main(argv) in turn and captures each one's stdout, stderr and
 * exit code (test/helpers/cli.ts: the same code path as bin/nuggets.js minus process start-up); two
 * invocations run as real processes to check what the shell sees (the exit status and the streamed stdout).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GOLDEN_TEXT, STORIES260K } from './model-helpers.js';
import { cliBatch, cliProcess, type CliResult } from './helpers/cli.js';
import { mergedWeights, randomAdapter } from './helpers/adapter.js';
import { readLlama2c, toHfLayout } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/tokenizer-llama2c.js';
import { writeHfModel } from '../src/io/checkpoint.js';
import { LlamaModel } from '../src/model/model.js';
import { generate } from '../src/model/generate.js';
import { sampleToken } from '../src/model/sampling.js';
import { Rng } from '../src/engine/rng.js';
import { writeAdapter } from '../src/transfer/peft.js';

const CKPT = join(STORIES260K, 'checkpoint_legacy.bin');
const TOKBIN = join(STORIES260K, 'tokenizer.bin');
const tmp = mkdtempSync(join(tmpdir(), 'nuggets-cli-model-'));

// ------------------------------------------------------------------ fixtures shared by the batch

const hfDir = join(tmp, 'stories260k-hf');
const bf16Dir = join(tmp, 'bf16-sharded');
const adapterDir = join(tmp, 'adapter');
const chatDir = join(tmp, 'chat-hf');
const truncated = join(tmp, 'truncated', 'checkpoint.bin');

// nuggets imports llama2.c checkpoints in the HF layout (q/k rows permuted), as the CLI does.
const src = toHfLayout(readLlama2c(CKPT));
const c = src.config;
const tok = Llama2cTokenizer.fromFile(TOKBIN, c.vocabSize);

// a BF16 copy in small shards: inspect must sum the shards and count 2 bytes per parameter
writeHfModel(bf16Dir, c, src.weights, { dtype: 'BF16', maxShardBytes: 200_000 });

// the first 50,000 bytes of the checkpoint, with its tokenizer beside it
execFileSync('mkdir', ['-p', join(tmp, 'truncated')]);
writeFileSync(truncated, readFileSync(CKPT).subarray(0, 50_000));
copyFileSync(TOKBIN, join(tmp, 'truncated', 'tokenizer.bin'));

// a random adapter on q_proj, v_proj and down_proj of every layer, r 4, alpha 8
const adapterModules = randomAdapter(['q_proj', 'v_proj', 'down_proj'], c, new Rng(11), {
  r: 4,
  alpha: 8,
  std: 0.1,
});
writeAdapter(adapterDir, adapterModules, c, { baseModel: CKPT, loraDropout: 0 });

const PROMPT = 'Once upon a time,';
const TULU_PROMPT = '<|user|>\nTell me a story.\n\n<|assistant|>\n';
const TEMPLATE =
  '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}';

const runs: Record<string, string[]> = {
  convert: ['convert', CKPT, '--tokenizer', TOKBIN, '-o', hfDir],
  convertAgain: ['convert', CKPT, '-o', hfDir],
  goldenHf: ['generate', hfDir, '--max-tokens', '200', '--temperature', '0'],
  noStream: ['generate', CKPT, '--max-tokens', '200', '--no-stream'],
  promptStop: ['generate', CKPT, '--prompt', PROMPT, '--max-tokens', '50', '--stop', '.'],
  promptStopHf: ['generate', hfDir, '--prompt', PROMPT, '--max-tokens', '50', '--stop', '.'],
  newlineStop: ['generate', CKPT, '--max-tokens', '200', '--stop', 'zebra', '--stop', '\\n'],
  topK1: ['generate', CKPT, '--max-tokens', '200', '--temperature', '1', '--top-k', '1', '--seed', '5'],
  sampledA: ['generate', CKPT, '--max-tokens', '60', '--temperature', '1', '--top-p', '0.9', '--seed', '7'],
  sampledB: ['generate', CKPT, '--max-tokens', '60', '--temperature', '1', '--top-p', '0.9', '--seed', '7'],
  sampledC: ['generate', CKPT, '--max-tokens', '60', '--temperature', '1', '--top-p', '0.9', '--seed', '8'],
  chat: ['generate', CKPT, '--prompt', 'Tell me a story.', '--chat', '--max-tokens', '40'],
  chatPlain: ['generate', CKPT, '--prompt', TULU_PROMPT, '--max-tokens', '40'],
  chatTemplate: ['generate', chatDir, '--prompt', 'Tell me a story.', '--chat', '--max-tokens', '40'],
  chatTemplatePlain: [
    'generate',
    chatDir,
    '--prompt',
    '[user] Tell me a story.\n[assistant]',
    '--max-tokens',
    '40',
  ],
  adapter: ['generate', CKPT, '--adapter', adapterDir, '--max-tokens', '40'],
  inspectBin: ['inspect', CKPT, '--json'],
  inspectBinText: ['inspect', CKPT],
  inspectHf: ['inspect', hfDir, '--json'],
  inspectBf16: ['inspect', bf16Dir, '--tokenizer', TOKBIN, '--json'],
  missing: ['generate', join(tmp, 'no-such-model.bin')],
  missingInspect: ['inspect', join(tmp, 'no-such-folder')],
  truncGenerate: ['generate', truncated],
  truncInspect: ['inspect', truncated],
  truncConvert: ['convert', truncated, '-o', join(tmp, 'never')],
  tooLong: ['generate', CKPT, '--prompt', 'the end '.repeat(400)],
  twoMax: ['generate', CKPT, '--max-tokens', '5', '--max-new-tokens', '6'],
};

// The chat-template folder is a converted copy with a chat_template added; it must exist before its
// runs, so the batch is split in two: conversion first, then everything else.
const names = Object.keys(runs);
const first = cliBatch([runs.convert, runs.convertAgain]);
execFileSync('cp', ['-r', hfDir, chatDir]);
const tcPath = join(chatDir, 'tokenizer_config.json');
writeFileSync(
  tcPath,
  JSON.stringify({ ...JSON.parse(readFileSync(tcPath, 'utf8')), chat_template: TEMPLATE }),
);
const rest = cliBatch(names.slice(2).map((n) => runs[n]));
const R: Record<string, CliResult> = Object.fromEntries(
  names.map((n, i) => [n, i < 2 ? first[i] : rest[i - 2]]),
);

function ok(name: string): string {
  const r = R[name];
  assert.equal(r.code, 0, `${name}: exit ${r.code}, stderr: ${r.err}`);
  return r.out;
}

/** One line on stderr, exit code 2, naming `file`. */
function inputError(name: string, file: string, what: RegExp): void {
  const r = R[name];
  assert.equal(r.code, 2, `${name}: exit ${r.code}, stderr: ${r.err}`);
  assert.equal(r.out, '');
  const lines = r.err.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${name}: one line expected, got:\n${r.err}`);
  assert.ok(lines[0].startsWith(`nuggets: ${file}: `), `${name}: ${lines[0]}`);
  assert.match(lines[0], what);
}

// ------------------------------------------------------------------ generate

test('generate from the llama2.c checkpoint, as a real process: greedy 200 tokens from BOS print the golden text', () => {
  const r = cliProcess(['generate', CKPT, '--max-tokens', '200', '--temperature', '0']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, GOLDEN_TEXT + '\n');
});

test('convert writes an HF folder from which generate prints the same golden text', () => {
  assert.equal(
    ok('convert'),
    `wrote ${hfDir}: config.json, model.safetensors, tokenizer.json, tokenizer_config.json, generation_config.json\n`,
  );
  assert.deepEqual(readdirSync(hfDir).sort(), [
    'config.json',
    'generation_config.json',
    'model.safetensors',
    'tokenizer.json',
    'tokenizer_config.json',
  ]);
  assert.equal(ok('goldenHf'), GOLDEN_TEXT + '\n');
  // --no-stream prints the same text at the end
  assert.equal(ok('noStream'), GOLDEN_TEXT + '\n');
});

test('convert refuses to overwrite a model folder without --force', () => {
  inputError(
    'convertAgain',
    hfDir,
    /already holds config\.json, model\.safetensors, tokenizer\.json; .*--force/,
  );
});

test('a prompt is continued with its leading space kept, and a stop string cuts before itself (llama2.c and HF tokenizers)', () => {
  // greedy from BOS begins "Once upon a time, there was ...": with that prompt the continuation is the
  // rest, whose first piece " there" keeps its space (decoding the new tokens alone would drop it)
  const rest = GOLDEN_TEXT.slice(PROMPT.length);
  const expected = rest.slice(0, rest.indexOf('.'));
  assert.equal(expected, ' there was a little girl named Lily');
  assert.equal(ok('promptStop'), expected + '\n');
  assert.equal(ok('promptStopHf'), expected + '\n');
  // "\n" typed as backslash-n stops at the first line; an absent stop string changes nothing
  assert.equal(ok('newlineStop'), GOLDEN_TEXT.slice(0, GOLDEN_TEXT.indexOf('\n')) + '\n');
});

test('sampling: top-k 1 at temperature 1 is greedy; a seed reproduces its text and another seed changes it', () => {
  assert.equal(ok('topK1'), GOLDEN_TEXT + '\n');
  const a = ok('sampledA');
  assert.equal(ok('sampledB'), a);
  assert.notEqual(ok('sampledC'), a);
  assert.notEqual(a, GOLDEN_TEXT.slice(0, a.length - 1) + '\n');
  assert.ok(a.length > 20, a);
});

test('top-k keeps exactly the k most probable tokens (ties at the cut kept, as HF does)', () => {
  const logits = Float32Array.from([0.5, 3, -1, 2, 2, 0]);
  const seen = new Set<number>();
  const r = new Rng(3);
  for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, 0, 6, { temperature: 2, topK: 2 }, r));
  assert.deepEqual([...seen].sort(), [1, 3, 4]); // 3 and the tied 2s
  seen.clear();
  for (let i = 0; i < 400; i++) seen.add(sampleToken(logits, 0, 6, { temperature: 2, topK: 1 }, r));
  assert.deepEqual([...seen], [1]);
});

test('--chat wraps the prompt in the Tulu format when the tokenizer has no chat template, else in its template', () => {
  const chat = ok('chat');
  assert.equal(chat, ok('chatPlain'));
  assert.ok(chat.trim().length > 0);
  // the template writes BOS itself; the plain prompt gets BOS from the encoder: the same ids
  assert.equal(ok('chatTemplate'), ok('chatTemplatePlain'));
  assert.notEqual(ok('chatTemplate'), chat);
});

test('--adapter applies a PEFT adapter: the text equals greedy decoding of the merged weights W + (alpha/r) B A', () => {
  const merged = LlamaModel.load({ config: c, weights: mergedWeights(src.weights, c, adapterModules) });
  const [g] = generate(merged, [[1]], { maxNewTokens: 40, tokenizer: tok });
  const out = ok('adapter');
  assert.equal(out, g.text + '\n');
  assert.notEqual(out.slice(0, 30), GOLDEN_TEXT.slice(0, 30));
});

// ------------------------------------------------------------------ inspect

// stories260K by hand: V 512, d 64, f 172, 5 layers, 8 heads / 4 KV heads of 8, tied embeddings
const perLayer = 64 * 64 * 2 + 2 * (32 * 64) + 3 * 64 * 172 + 2 * 64;
const total = 512 * 64 + 5 * perLayer + 64;

test('inspect --json of the llama2.c file: architecture, parameters per module, dtype, bytes', () => {
  const x = JSON.parse(ok('inspectBin'));
  assert.equal(x.format, 'llama2c');
  assert.deepEqual(
    [
      x.architecture.hidden_size,
      x.architecture.intermediate_size,
      x.architecture.num_hidden_layers,
      x.architecture.num_attention_heads,
      x.architecture.num_key_value_heads,
      x.architecture.head_dim,
      x.architecture.vocab_size,
      x.architecture.tie_word_embeddings,
      x.architecture.rope_style,
      x.architecture.max_position_embeddings,
    ],
    [64, 172, 5, 8, 4, 8, 512, true, 'pairs', 512],
  );
  assert.equal(total, 260032);
  assert.equal(x.parameters.total, total);
  assert.equal(x.parameters.perLayer, perLayer);
  assert.deepEqual(x.parameters.byModule, {
    embed_tokens: { tensors: 1, parameters: 512 * 64 },
    q_proj: { tensors: 5, parameters: 5 * 64 * 64 },
    k_proj: { tensors: 5, parameters: 5 * 32 * 64 },
    v_proj: { tensors: 5, parameters: 5 * 32 * 64 },
    o_proj: { tensors: 5, parameters: 5 * 64 * 64 },
    gate_proj: { tensors: 5, parameters: 5 * 172 * 64 },
    up_proj: { tensors: 5, parameters: 5 * 172 * 64 },
    down_proj: { tensors: 5, parameters: 5 * 172 * 64 },
    input_layernorm: { tensors: 5, parameters: 5 * 64 },
    post_attention_layernorm: { tensors: 5, parameters: 5 * 64 },
    norm: { tensors: 1, parameters: 64 },
    lm_head: { tensors: 0, parameters: 0 },
  });
  assert.deepEqual(x.dtypes, { F32: { tensors: 47, parameters: total, bytes: 4 * total } });
  // the file: 7 int32 header + all fp32 arrays, including freq_cis_real/imag [512, 4] each
  const fileBytes = 28 + 4 * (total + 2 * 512 * 4);
  assert.equal(statSync(CKPT).size, fileBytes);
  assert.deepEqual(x.bytes, {
    files: { 'checkpoint_legacy.bin': fileBytes },
    onDisk: fileBytes,
    tensorData: 4 * total,
    asFp32: 4 * total,
  });
  assert.deepEqual(x.tokenizer, { path: TOKBIN, vocabSize: 512, bosId: 1, eosId: 2, chatTemplate: false });
  const text = ok('inspectBinText');
  assert.match(text, /^ {2}total +47 +260,032 +100\.0%$/m);
  assert.match(text, /^ {2}lm_head \(tied to embed_tokens\) +0 +0 +0\.0%$/m);
  assert.match(text, /^ {2}num_key_value_heads +4$/m);
});

test('inspect --json of the converted folder and of a BF16 sharded copy: same counts, their own dtypes and file sizes', () => {
  const hf = JSON.parse(ok('inspectHf'));
  const bin = JSON.parse(ok('inspectBin'));
  assert.equal(hf.format, 'hf');
  assert.equal(hf.architecture.rope_style, 'half');
  assert.deepEqual(hf.parameters, bin.parameters);
  assert.deepEqual(hf.bytes.files, { 'model.safetensors': statSync(join(hfDir, 'model.safetensors')).size });
  assert.deepEqual(hf.tokenizer, {
    path: join(hfDir, 'tokenizer.json'),
    vocabSize: 512,
    bosId: 1,
    eosId: 2,
    chatTemplate: false,
  });

  const bf = JSON.parse(ok('inspectBf16'));
  assert.deepEqual(bf.parameters, bin.parameters);
  assert.deepEqual(bf.dtypes, { BF16: { tensors: 47, parameters: total, bytes: 2 * total } });
  const files = readdirSync(bf16Dir).filter((f) => f.startsWith('model'));
  assert.ok(files.length >= 4, files.join()); // an index and several shards
  const sizes = Object.fromEntries(files.map((f) => [f, statSync(join(bf16Dir, f)).size]));
  assert.deepEqual(bf.bytes.files, sizes);
  assert.equal(
    bf.bytes.onDisk,
    Object.values(sizes).reduce((a, b) => a + b, 0),
  );
  assert.equal(bf.bytes.tensorData, 2 * total);
  assert.equal(bf.bytes.asFp32, 4 * total);
  assert.equal(bf.tokenizer.path, TOKBIN);
});

// ------------------------------------------------------------------ bad input

test('a missing model gives one line naming it and exit code 2', () => {
  inputError('missing', join(tmp, 'no-such-model.bin'), /no such file or folder/);
  inputError('missingInspect', join(tmp, 'no-such-folder'), /no such file or folder/);
});

test('a truncated checkpoint gives one line naming it, for generate, inspect and convert', () => {
  for (const name of ['truncGenerate', 'truncInspect', 'truncConvert']) {
    inputError(name, truncated, /should be 1056540 bytes .* but is 50000 bytes \(truncated\?\)/);
  }
  // and a real process exits with status 2
  const r = cliProcess(['generate', truncated]);
  assert.equal(r.code, 2);
  assert.equal(r.err.trimEnd().split('\n').length, 1);
  assert.ok(r.err.startsWith(`nuggets: ${truncated}: `), r.err);
});

test('a prompt longer than the context and conflicting flags are refused by name', () => {
  inputError('tooLong', '--prompt', /is \d+ tokens, longer than the model's context of 512/);
  inputError('twoMax', 'generate', /--max-tokens or --max-new-tokens, not both/);
});
