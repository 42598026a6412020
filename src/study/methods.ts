/**
 * The methods a study compares: the paper's reference transfer, its ablations, and the controls
 * docs/method.md says an honest reproduction needs. Each method says which teacher it reads (the task's
 * teacher, the student itself, or none), the `nuggets extract` options that make its
 * initialisation, and the `nuggets train` options it needs (plain LoRA and PiSSA initialise inside
 * `train`, without an extract step).
 *
 * Distillation methods (`kd-logits`, `kd-sequence`, `transfer+kd`) read the task's teacher too: its
 * logits at the answer tokens as a second training signal (`nuggets train --kd-teacher`), or its
 * answers to the training prompts as the training data (`nuggets distill-data`, then plain training).
 *
 * An experiment may also define its own methods as `{name, like, extract, train}`: a catalogue
 * method with some options changed (e.g. FFN-only modules).
 */
import { InputError } from '../errors.js';

/** Whose sensitivity and weights feed the init: the task's teacher, the student itself, or nobody. */
export type TeacherRole = 'task' | 'student' | null;

export interface MethodSpec {
  name: string;
  description: string;
  teacher: TeacherRole;
  /** `nuggets extract` options (null: no extract step). */
  extract: Record<string, unknown> | null;
  /** `nuggets train` options specific to the method. */
  train: Record<string, unknown>;
  /**
   * Distillation from the task's teacher: `logits` trains with the KD term (the runner adds
   * --kd-teacher and a teacher-logit cache shared by the task's cells); `sequence` trains on the
   * teacher's answers (a `nuggets distill-data` step writes them first).
   */
  distill?: 'logits' | 'sequence';
}

const teacherInit = (structure: string, more: Record<string, unknown> = {}): Record<string, unknown> => ({
  init: 'teacher',
  layers: 'sensitivity',
  structure,
  ...more,
});

/** Built-in methods, reference first, then its ablations, then the controls. */
export const METHOD_CATALOGUE: Readonly<Record<string, MethodSpec>> = {
  transfer: {
    name: 'transfer',
    description:
      "the paper's reference: sensitivity-selected teacher layers, max-sensitivity contiguous block, rank-r SVD",
    teacher: 'task',
    extract: teacherInit('block'),
    train: {},
  },
  rowcol: {
    name: 'rowcol',
    description: 'ablation: top rows and columns by mean sensitivity instead of a block',
    teacher: 'task',
    extract: teacherInit('rowcol'),
    train: {},
  },
  elements: {
    name: 'elements',
    description: 'ablation: the n*m most sensitive single entries instead of a block',
    teacher: 'task',
    extract: teacherInit('elements'),
    train: {},
  },
  random: {
    name: 'random',
    description: 'ablation: random teacher entries (seeded by the training seed) instead of a block',
    teacher: 'task',
    extract: teacherInit('random'),
    train: {},
  },
  heads: {
    name: 'heads',
    description: 'ours: block windows aligned on attention-head (and key/value group) boundaries',
    teacher: 'task',
    extract: teacherInit('block', { heads: true }),
    train: {},
  },
  'layers-random': {
    name: 'layers-random',
    description: 'ablation: random teacher layers (block structure)',
    teacher: 'task',
    extract: teacherInit('block', { layers: 'random' }),
    train: {},
  },
  'layers-last': {
    name: 'layers-last',
    description: 'ablation: the last teacher layers (block structure)',
    teacher: 'task',
    extract: teacherInit('block', { layers: 'last' }),
    train: {},
  },
  'random-matched': {
    name: 'random-matched',
    description: "control: random factors whose product has the teacher block's norm",
    teacher: 'task',
    extract: { init: 'random-matched', layers: 'sensitivity', structure: 'block' },
    train: {},
  },
  self: {
    name: 'self',
    description: 'control: the student as its own teacher (its own sensitivity and block)',
    teacher: 'student',
    extract: teacherInit('block', { teacher: 'self' }),
    train: {},
  },
  pissa: {
    name: 'pissa',
    description: "control: PiSSA, the student's own top-r SVD with the subtract trick",
    teacher: null,
    extract: null,
    train: { loraInit: 'pissa' },
  },
  lora: {
    name: 'lora',
    description: 'baseline: plain LoRA, PEFT default init (A Kaiming-uniform, B = 0)',
    teacher: null,
    extract: null,
    train: { loraInit: 'default' },
  },
  'kd-logits': {
    name: 'kd-logits',
    description:
      'distillation: plain LoRA trained on (1 - lambda)*CE + lambda*T^2*KL(teacher || student) over answer tokens',
    teacher: 'task',
    extract: null,
    train: { loraInit: 'default' },
    distill: 'logits',
  },
  'kd-sequence': {
    name: 'kd-sequence',
    description: "distillation: plain LoRA trained on the teacher's (greedy) answers to the training prompts",
    teacher: 'task',
    extract: null,
    train: { loraInit: 'default' },
    distill: 'sequence',
  },
  'transfer+kd': {
    name: 'transfer+kd',
    description: 'the reference transfer init, then kd-logits training',
    teacher: 'task',
    extract: teacherInit('block'),
    train: {},
    distill: 'logits',
  },
};

/** The baseline every method is compared against. */
export const BASELINE = 'lora';

export const METHOD_NAME = /^[a-z0-9][a-z0-9_-]*$/;

/** A user-defined method: a catalogue method with some extract/train options changed. */
export interface CustomMethod {
  name: string;
  like: string;
  description?: string;
  extract?: Record<string, unknown>;
  train?: Record<string, unknown>;
}

/** The spec of a method given by name or as a custom definition. `where` names the config file. */
export function resolveMethod(m: string | CustomMethod, where: string): MethodSpec {
  if (typeof m === 'string') {
    const spec = METHOD_CATALOGUE[m];
    if (!spec)
      throw new InputError(
        where,
        `unknown method "${m}"; built-in methods: ${Object.keys(METHOD_CATALOGUE).join(', ')} (or define one with {name, like, extract, train})`,
      );
    return spec;
  }
  const base = METHOD_CATALOGUE[m.like];
  if (!base)
    throw new InputError(
      where,
      `method "${m.name}": "like: ${m.like}" is not a built-in method (${Object.keys(METHOD_CATALOGUE).join(', ')})`,
    );
  if (!METHOD_NAME.test(m.name))
    throw new InputError(where, `method name "${m.name}" must be lower-case letters, digits, "-" or "_"`);
  if (m.extract && !base.extract)
    throw new InputError(
      where,
      `method "${m.name}": "${m.like}" has no extract step, so "extract" options do not apply`,
    );
  return {
    name: m.name,
    description: m.description ?? `${base.name} with ${JSON.stringify({ ...m.extract, ...m.train })}`,
    teacher: base.teacher,
    extract: base.extract ? { ...base.extract, ...m.extract } : null,
    train: { ...base.train, ...m.train },
    ...(base.distill ? { distill: base.distill } : {}),
  };
}
