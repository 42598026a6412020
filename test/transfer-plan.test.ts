// planTransfer: compatibility refusals before any heavy work, each naming what and why, and the
// module pairs it lists.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planTransfer, type PlanOptions } from '../src/transfer/plan.js';
import { parseModules } from '../src/transfer/modules.js';
import { InputError } from '../src/errors.js';
import { randomModel, tinyConfig } from './transfer-helpers.js';

const teacher = tinyConfig({
  hiddenSize: 24,
  intermediateSize: 40,
  numLayers: 4,
  numHeads: 6,
  numKvHeads: 3,
});
const student = tinyConfig(); // d 16, f 24, 2 layers, 4 heads / 2 KV heads, head_dim 4
const base: PlanOptions = {
  init: 'teacher',
  kinds: parseModules('all'),
  rank: 2,
  structure: 'block',
  layers: 'sensitivity',
  teacherName: 'T',
  studentName: 'S',
};

function refusal(fn: () => unknown, ...res: RegExp[]) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `InputError expected, got ${String(e)}`);
    for (const re of res) assert.match(e.message, re);
    return true;
  });
}

test('a compatible pair: every student module paired, shapes in the factor layout', () => {
  const p = planTransfer(teacher, student, base);
  assert.equal(p.pairs.length, 2 + 7 * student.numLayers);
  assert.equal(p.needsTeacher, true);
  assert.equal(p.subtract, true);
  assert.equal(p.untieStudentHead, false);
  const embed = p.pairs[0];
  assert.deepEqual(embed.ref, { kind: 'embed_tokens', layer: null });
  assert.deepEqual(embed.factor, [16, 32]); // [d, V]
  assert.deepEqual(embed.teacherFactor, [24, 32]);
  assert.equal(embed.transposed, true);
  const k1 = p.pairs.find((x) => x.ref.kind === 'k_proj' && x.ref.layer === 1)!;
  assert.equal(k1.studentWeight, 'model.layers.1.self_attn.k_proj.weight');
  assert.deepEqual(k1.factor, [8, 16]);
  assert.deepEqual(k1.teacherFactor, [12, 24]);
  assert.deepEqual(p.pairs.at(-1)!.ref, { kind: 'lm_head', layer: null });
  const ffn = planTransfer(teacher, student, { ...base, kinds: parseModules('mlp') });
  assert.deepEqual([...new Set(ffn.pairs.map((x) => x.ref.kind))], ['gate_proj', 'up_proj', 'down_proj']);
  const heads = planTransfer(teacher, student, { ...base, structure: 'heads' });
  assert.deepEqual(heads.pairs.find((x) => x.ref.kind === 'o_proj')!.align, [1, 4]);
  assert.deepEqual(heads.pairs.find((x) => x.ref.kind === 'v_proj')!.align, [4, 1]);
});

test('self-teacher (teacher = student) is allowed', () => {
  const p = planTransfer(student, student, base);
  assert.deepEqual(p.pairs[1].factor, p.pairs[1].teacherFactor);
});

test('refusals name the field and the numbers', () => {
  refusal(
    () => planTransfer(teacher, tinyConfig({ vocabSize: 33 }), base),
    /T -> S/,
    /vocabularies differ: teacher vocab_size 32, student 33/,
  );
  refusal(
    () => planTransfer(tinyConfig({ numLayers: 1 }), student, base),
    /student has 2 layers but the teacher only 1/,
  );
  refusal(
    () => planTransfer(teacher, tinyConfig({ intermediateSize: 48 }), base),
    /gate_proj: the student's intermediate_size is 48 but the teacher's is 40/,
    /down_proj: the student's intermediate_size is 48/,
  );
  refusal(
    () => planTransfer(teacher, tinyConfig({ hiddenSize: 32 }), base),
    /q_proj: the student's hidden_size is 32 but the teacher's is 24/,
    /embed_tokens/,
  );
  refusal(
    () => planTransfer(teacher, tinyConfig({ numKvHeads: 4 }), { ...base, kinds: parseModules('k_proj') }),
    /k_proj: the student's num_key_value_heads\*head_dim is 16 but the teacher's is 12/,
  );
  refusal(
    () =>
      planTransfer(teacher, tinyConfig({ headDim: 2, numHeads: 8, numKvHeads: 4 }), {
        ...base,
        structure: 'heads',
      }),
    /heads structure needs equal head_dim/,
  );
  refusal(
    () => planTransfer(teacher, student, { ...base, rank: 9 }),
    /k_proj: rank 9 exceeds the smaller side of the student's \[8, 16\]/,
  );
  refusal(() => planTransfer(null, student, base), /needs a teacher/);
  refusal(() => planTransfer(teacher, student, { ...base, kinds: [] }), /no modules selected/);
  refusal(
    () => planTransfer(teacher, student, { ...base, structure: 'diagonal' as never }),
    /structure "diagonal"/,
  );
  // Several problems at once are all reported.
  refusal(
    () => planTransfer(tinyConfig({ numLayers: 1, vocabSize: 7 }), student, base),
    /vocabularies differ/,
    /layers but the teacher only 1/,
  );
  assert.throws(
    () => parseModules('attention,ffm'),
    (e: unknown) => e instanceof InputError && /unknown module "ffm"/.test(e.message),
  );
});

test('controls: lora needs no teacher and no subtraction; pissa needs no teacher but subtracts', () => {
  const l = planTransfer(null, student, { ...base, init: 'lora', rank: 64 }); // PEFT allows any rank for its default init
  assert.equal(l.needsTeacher, false);
  assert.equal(l.subtract, false);
  assert.equal(l.pairs[0].teacherFactor, null);
  const p = planTransfer(teacher, student, { ...base, init: 'pissa' });
  assert.equal(p.needsTeacher, false);
  assert.equal(p.subtract, true);
  refusal(() => planTransfer(null, student, { ...base, init: 'pissa', rank: 9 }), /rank 9 exceeds/);
});

test('a tied student touching embed_tokens or lm_head must be untied before subtracting', () => {
  const tied = tinyConfig({ tieWordEmbeddings: true });
  assert.equal(planTransfer(teacher, tied, base).untieStudentHead, true);
  assert.equal(
    planTransfer(teacher, tied, { ...base, kinds: parseModules('lm_head') }).untieStudentHead,
    true,
  );
  assert.equal(
    planTransfer(teacher, tied, { ...base, kinds: parseModules('attention,mlp') }).untieStudentHead,
    false,
  );
  assert.equal(planTransfer(teacher, tied, { ...base, init: 'lora' }).untieStudentHead, false);
  // A tied teacher's lm_head is read from its embedding.
  const tt = tinyConfig({ ...teacher, tieWordEmbeddings: true });
  const { weights, sens } = randomModel(tt, 1);
  assert.doesNotThrow(() => planTransfer(tt, student, base, { teacher: weights, sensitivity: sens }));
});

test('the files are checked against the configs: missing tensors and wrong shapes, by name', () => {
  const t = randomModel(teacher, 1),
    s = randomModel(student, 2);
  assert.doesNotThrow(() =>
    planTransfer(teacher, student, base, { teacher: t.weights, student: s.weights, sensitivity: t.sens }),
  );
  const without = (src: typeof t.sens, drop: string) => ({
    has: (n: string) => n !== drop && src.has(n),
    info: (n: string) => src.info(n),
  });
  refusal(
    () =>
      planTransfer(teacher, student, base, {
        sensitivity: without(t.sens, 'model.layers.3.mlp.down_proj.weight'),
      }),
    /sensitivity has no tensor model\.layers\.3\.mlp\.down_proj\.weight/,
  );
  refusal(
    () =>
      planTransfer(teacher, student, base, {
        sensitivity: without(t.sens, 'model.layers.2.input_layernorm.weight'),
      }),
    /needed for the layer scores/,
  );
  assert.doesNotThrow(() =>
    planTransfer(
      teacher,
      student,
      { ...base, layers: 'first' },
      { sensitivity: without(t.sens, 'model.layers.2.input_layernorm.weight') },
    ),
  );
  refusal(
    () => planTransfer(teacher, student, base, { teacher: without(t.weights, 'lm_head.weight') }),
    /T has no tensor lm_head\.weight/,
  );
  const wrong = {
    has: (n: string) => s.weights.has(n),
    info: (n: string) =>
      n === 'model.layers.0.self_attn.v_proj.weight' ? { shape: [16, 16] } : s.weights.info(n),
  };
  refusal(
    () => planTransfer(teacher, student, base, { student: wrong }),
    /S tensor model\.layers\.0\.self_attn\.v_proj\.weight has shape \[16, 16\], its config says \[8, 16\]/,
  );
});
