import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseHfConfig, toHfConfig } from '../src/io/hfconfig.js';
import { InputError } from '../src/errors.js';

/** The real config.json of TinyLlama-1.1B-Chat-v1.0 (llama, GQA 32/4). */
const tinyllama = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 5632,
  max_position_embeddings: 2048,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 22,
  num_key_value_heads: 4,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: null,
  rope_theta: 10000.0,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  transformers_version: '4.35.0',
  use_cache: true,
  vocab_size: 32000,
};
/** The real config.json of Qwen2-0.5B-Instruct (q/k/v bias, tied embeddings, sliding window off). */
const qwen2 = {
  architectures: ['Qwen2ForCausalLM'],
  attention_dropout: 0.0,
  bos_token_id: 151643,
  eos_token_id: 151645,
  hidden_act: 'silu',
  hidden_size: 896,
  initializer_range: 0.02,
  intermediate_size: 4864,
  max_position_embeddings: 32768,
  max_window_layers: 24,
  model_type: 'qwen2',
  num_attention_heads: 14,
  num_hidden_layers: 24,
  num_key_value_heads: 2,
  rms_norm_eps: 1e-6,
  rope_theta: 1000000.0,
  sliding_window: 32768,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  transformers_version: '4.40.1',
  use_cache: true,
  use_sliding_window: false,
  vocab_size: 151936,
};
/** Mistral-7B-Instruct-v0.2 (no sliding window). */
const mistral = {
  architectures: ['MistralForCausalLM'],
  bos_token_id: 1,
  eos_token_id: 2,
  hidden_act: 'silu',
  hidden_size: 4096,
  initializer_range: 0.02,
  intermediate_size: 14336,
  max_position_embeddings: 32768,
  model_type: 'mistral',
  num_attention_heads: 32,
  num_hidden_layers: 32,
  num_key_value_heads: 8,
  rms_norm_eps: 1e-5,
  rope_theta: 1000000.0,
  sliding_window: null,
  tie_word_embeddings: false,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 32000,
};
/** Llama-3.2-1B: llama3 RoPE scaling, eos list, tied, head_dim given. */
const llama32 = {
  architectures: ['LlamaForCausalLM'],
  attention_bias: false,
  attention_dropout: 0.0,
  bos_token_id: 128000,
  eos_token_id: [128001, 128008, 128009],
  head_dim: 64,
  hidden_act: 'silu',
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: 8192,
  max_position_embeddings: 131072,
  mlp_bias: false,
  model_type: 'llama',
  num_attention_heads: 32,
  num_hidden_layers: 16,
  num_key_value_heads: 8,
  pretraining_tp: 1,
  rms_norm_eps: 1e-5,
  rope_scaling: {
    factor: 32.0,
    high_freq_factor: 4.0,
    low_freq_factor: 1.0,
    original_max_position_embeddings: 8192,
    rope_type: 'llama3',
  },
  rope_theta: 500000.0,
  tie_word_embeddings: true,
  torch_dtype: 'bfloat16',
  use_cache: true,
  vocab_size: 128256,
};

test('real configs: llama (TinyLlama), qwen2, mistral, llama 3.2', () => {
  const t = parseHfConfig(tinyllama, 'tl/config.json');
  assert.deepEqual(
    [
      t.arch,
      t.hiddenSize,
      t.numHeads,
      t.numKvHeads,
      t.headDim,
      t.numLayers,
      t.intermediateSize,
      t.vocabSize,
      t.rmsNormEps,
      t.ropeTheta,
    ],
    ['llama', 2048, 32, 4, 64, 22, 5632, 32000, 1e-5, 10000],
  );
  assert.deepEqual(
    [
      t.tieWordEmbeddings,
      t.attentionBias,
      t.oBias,
      t.mlpBias,
      t.ropeStyle,
      t.bosTokenId,
      t.eosTokenId,
      t.torchDtype,
    ],
    [false, false, false, false, 'half', 1, [2], 'bfloat16'],
  );
  const q = parseHfConfig(qwen2, 'q/config.json');
  assert.deepEqual(
    [q.arch, q.attentionBias, q.oBias, q.mlpBias, q.tieWordEmbeddings, q.headDim, q.ropeTheta, q.eosTokenId],
    ['qwen2', true, false, false, true, 64, 1e6, [151645]],
  );
  const m = parseHfConfig(mistral, 'm/config.json');
  assert.deepEqual(
    [m.arch, m.numKvHeads, m.attentionBias, m.ropeTheta, m.maxPositionEmbeddings],
    ['mistral', 8, false, 1e6, 32768],
  );
  const l = parseHfConfig(llama32, 'l/config.json');
  assert.deepEqual(l.ropeScaling, {
    type: 'llama3',
    factor: 32,
    lowFreqFactor: 1,
    highFreqFactor: 4,
    originalMaxPositionEmbeddings: 8192,
  });
  assert.deepEqual([l.eosTokenId, l.tieWordEmbeddings, l.headDim], [[128001, 128008, 128009], true, 64]);
});

test('defaults, head_dim != hidden/heads, attention_bias, mlp_bias, linear scaling', () => {
  const c = parseHfConfig(
    {
      model_type: 'llama',
      hidden_size: 48,
      intermediate_size: 64,
      num_hidden_layers: 2,
      num_attention_heads: 4,
      vocab_size: 100,
      head_dim: 16,
      attention_bias: true,
      mlp_bias: true,
      rope_scaling: { type: 'linear', factor: 2 },
    },
    'x',
  );
  assert.deepEqual(
    [
      c.numKvHeads,
      c.headDim,
      c.rmsNormEps,
      c.ropeTheta,
      c.maxPositionEmbeddings,
      c.tieWordEmbeddings,
      c.bosTokenId,
      c.eosTokenId,
      c.padTokenId,
    ],
    [4, 16, 1e-6, 10000, 2048, false, 1, [2], null],
  );
  assert.deepEqual([c.attentionBias, c.oBias, c.mlpBias], [true, true, true]);
  assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 2 });
  // transformers v5 layout: rope_theta inside rope_parameters.
  const v5 = parseHfConfig(
    { ...tinyllama, rope_theta: undefined, rope_parameters: { rope_type: 'default', rope_theta: 5e5 } },
    'x',
  );
  assert.equal(v5.ropeTheta, 5e5);
  assert.equal(v5.ropeScaling, null);
  // Qwen2 reads tie_word_embeddings (default false); missing model_type comes from architectures.
  const q = parseHfConfig({ ...qwen2, tie_word_embeddings: undefined, model_type: undefined }, 'x');
  assert.deepEqual([q.arch, q.tieWordEmbeddings], ['qwen2', false]);
});

test('toHfConfig round-trips through parseHfConfig', () => {
  for (const j of [tinyllama, qwen2, mistral, llama32]) {
    const c = parseHfConfig(j, 'x');
    assert.deepEqual(parseHfConfig(toHfConfig(c), 'y'), c);
  }
  assert.throws(() => toHfConfig({ ...parseHfConfig(tinyllama, 'x'), ropeStyle: 'pairs' }), /permute/);
});

test('unsupported and malformed configs are refused by name', () => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...tinyllama, model_type: 'gemma' }, /model_type "gemma" is not supported/],
    [
      { ...tinyllama, architectures: ['LlamaForSequenceClassification'] },
      /LlamaForSequenceClassification" is not supported/,
    ],
    [{ ...tinyllama, hidden_act: 'gelu' }, /hidden_act "gelu"/],
    [
      { ...tinyllama, rope_scaling: { type: 'dynamic', factor: 2 } },
      /rope_scaling type "dynamic" is not supported/,
    ],
    [{ ...tinyllama, rope_scaling: { rope_type: 'yarn', factor: 4 } }, /"yarn"/],
    [{ ...tinyllama, rope_scaling: { rope_type: 'llama3', factor: 8 } }, /rope_scaling.low_freq_factor/],
    [
      { ...qwen2, use_sliding_window: true, sliding_window: 4096 },
      /per-layer sliding-window attention is not supported/,
    ],
    [{ ...tinyllama, num_key_value_heads: 5 }, /not a multiple of num_key_value_heads 5/],
    [{ ...tinyllama, hidden_size: undefined }, /missing required field "hidden_size"/],
    [{ ...tinyllama, vocab_size: '32000' }, /"vocab_size" must be a positive integer/],
    [{ ...tinyllama, head_dim: 63 }, /head_dim 63 is odd/],
    [{ ...tinyllama, quantization_config: { quant_method: 'gptq' } }, /quantized .*gptq/],
    [{ ...tinyllama, eos_token_id: [2, 'x'] }, /eos_token_id/],
  ];
  for (const [j, re] of cases) {
    assert.throws(
      () => parseHfConfig(j, 'm/config.json'),
      (e: unknown) =>
        e instanceof InputError && e.message.startsWith('m/config.json: ') && re.test(e.message),
      String(re),
    );
  }
  // A window as long as the context never applies; Qwen2 ignores it unless use_sliding_window.
  assert.equal(parseHfConfig({ ...mistral, sliding_window: 32768 }, 'x').arch, 'mistral');
  assert.equal(parseHfConfig({ ...qwen2, sliding_window: 4096 }, 'x').arch, 'qwen2');
});
