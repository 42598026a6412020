/**
 * What a transfer will do, checked before any heavy work: which student modules get which teacher
 * matrices, and whether the pair can transfer at all (same vocabulary, no student dimension larger
 * than the teacher's, enough teacher layers, the tensors present with the shapes their configs say).
 * Every problem found is reported at once, each saying which tensor or field and why.
 */
import type { ModelConfig } from '../model/config.js';
import { InputError } from '../errors.js';
import { LAYER_METHODS, LAYER_TENSORS, type LayerMethod } from './layers.js';
import { STRUCTURES, headAlign, type Structure } from './submatrix.js';
import {
  dimNames,
  factorShape,
  isTransposed,
  moduleRefs,
  weightName,
  weightShape,
  type ModuleKind,
  type ModuleRef,
} from './modules.js';

export type InitKind = 'teacher' | 'lora' | 'pissa' | 'random-matched';
export const INIT_KINDS: readonly InitKind[] = ['teacher', 'lora', 'pissa', 'random-matched'];

export interface PlanOptions {
  init: InitKind;
  kinds: readonly ModuleKind[];
  rank: number;
  structure: Structure;
  layers: LayerMethod;
  /** Names used in messages (folder paths). */
  teacherName?: string;
  studentName?: string;
}

/** Tensor presence and shapes (a WeightSource or an open safetensors file). */
export interface ShapeSource {
  has(name: string): boolean;
  info(name: string): { shape: number[] };
}

export interface ModulePair {
  /** The student module (its layer is the student layer). */
  ref: ModuleRef;
  /** HF name of the student weight. */
  studentWeight: string;
  /** Student factor-layout shape [n_s, m_s] (B [n_s, r], A [r, m_s]). */
  factor: [number, number];
  /** Teacher factor-layout shape [n_t, m_t]; null when the init does not read the teacher. */
  teacherFactor: [number, number] | null;
  /** Stored as the transpose of the factor layout (the embedding). */
  transposed: boolean;
  /** Window alignment for the `heads` structure ([1, 1] = free). */
  align: [number, number];
}

export interface TransferPlan {
  init: InitKind;
  kinds: ModuleKind[];
  pairs: ModulePair[];
  /** The teacher (and its sensitivity) is read: teacher and random-matched inits. */
  needsTeacher: boolean;
  /** The init is non-zero, so the trainer must apply the subtract trick W_s - scale·B·A (docs/method.md step 5). */
  subtract: boolean;
  /**
   * The student ties lm_head to embed_tokens and the init subtracts a delta from one of them: the
   * two modules get different deltas, so the trainer must give the student its own lm_head.weight
   * (a copy of the embedding) before subtracting, or the student no longer starts as itself.
   */
  untieStudentHead: boolean;
  notes: string[];
}

/** Teacher tensor name for the given module kind at a teacher layer. */
export function teacherWeight(kind: ModuleKind, teacherLayer: number | null, teacher: ModelConfig): string {
  return weightName({ kind, layer: teacherLayer }, teacher);
}

export function planTransfer(
  teacher: ModelConfig | null,
  student: ModelConfig,
  opts: PlanOptions,
  sources: { teacher?: ShapeSource; student?: ShapeSource; sensitivity?: ShapeSource } = {},
): TransferPlan {
  const tName = opts.teacherName ?? 'teacher';
  const sName = opts.studentName ?? 'student';
  const problems: string[] = [];
  const notes: string[] = [];
  if (!INIT_KINDS.includes(opts.init))
    problems.push(`init "${opts.init}" is not one of ${INIT_KINDS.join(', ')}`);
  if (!STRUCTURES.includes(opts.structure))
    problems.push(`structure "${opts.structure}" is not one of ${STRUCTURES.join(', ')}`);
  if (!LAYER_METHODS.includes(opts.layers))
    problems.push(`layer selection "${opts.layers}" is not one of ${LAYER_METHODS.join(', ')}`);
  if (opts.kinds.length === 0) problems.push('no modules selected');
  if (!Number.isInteger(opts.rank) || opts.rank < 1)
    problems.push(`rank ${opts.rank} is not a positive integer`);
  const needsTeacher = opts.init === 'teacher' || opts.init === 'random-matched';
  const svdBased = opts.init !== 'lora';
  if (needsTeacher && !teacher) problems.push(`the ${opts.init} init needs a teacher`);
  const t = needsTeacher ? teacher : null;

  if (t) {
    if (t.vocabSize !== student.vocabSize) {
      problems.push(
        `vocabularies differ: teacher vocab_size ${t.vocabSize}, student ${student.vocabSize} (teacher and student must share the tokenizer)`,
      );
    }
    if (student.numLayers > t.numLayers) {
      problems.push(
        `the student has ${student.numLayers} layers but the teacher only ${t.numLayers} (num_hidden_layers): each student layer needs its own teacher layer`,
      );
    }
    if (t.arch !== student.arch)
      notes.push(`teacher is ${t.arch}, student ${student.arch}: the method assumes one model family`);
    if (opts.structure === 'heads' && t.headDim !== student.headDim) {
      problems.push(
        `the heads structure needs equal head_dim, but the teacher has ${t.headDim} and the student ${student.headDim}`,
      );
    }
    for (const kind of opts.kinds) {
      const ts = weightShape(kind, t),
        ss = weightShape(kind, student);
      const names = dimNames(kind);
      for (let a = 0; a < 2; a++) {
        if (ss[a] > ts[a]) {
          problems.push(
            `${kind}: the student's ${names[a]} is ${ss[a]} but the teacher's is ${ts[a]}: a student matrix [${ss.join(', ')}] cannot be cut from the teacher's [${ts.join(', ')}]`,
          );
        }
      }
    }
  }
  if (svdBased && Number.isInteger(opts.rank) && opts.rank >= 1) {
    for (const kind of opts.kinds) {
      const [n, m] = factorShape(kind, student);
      if (opts.rank > Math.min(n, m))
        problems.push(
          `${kind}: rank ${opts.rank} exceeds the smaller side of the student's [${n}, ${m}] matrix`,
        );
    }
  }

  const subtract = opts.init !== 'lora';
  const touchesTied = opts.kinds.includes('embed_tokens') || opts.kinds.includes('lm_head');
  const untieStudentHead = subtract && student.tieWordEmbeddings && touchesTied;
  if (untieStudentHead) {
    notes.push(
      'the student ties lm_head to embed_tokens: it must be untied (lm_head.weight = a copy of the embedding) before the subtract trick',
    );
  }

  const refs = moduleRefs(opts.kinds, student.numLayers);
  const pairs: ModulePair[] = refs.map((ref) => ({
    ref,
    studentWeight: weightName(ref, student),
    factor: factorShape(ref.kind, student),
    teacherFactor: t ? factorShape(ref.kind, t) : null,
    transposed: isTransposed(ref.kind),
    align: opts.structure === 'heads' ? headAlign(ref.kind, student.headDim) : [1, 1],
  }));

  // Presence and shapes of the tensors that will be read, from the files' headers (cheap).
  const checkShape = (src: ShapeSource | undefined, what: string, name: string, shape: number[]) => {
    if (!src) return;
    if (!src.has(name)) {
      problems.push(`${what} has no tensor ${name}`);
      return;
    }
    const got = src.info(name).shape;
    if (got.length !== shape.length || got.some((x, i) => x !== shape[i])) {
      problems.push(
        `${what} tensor ${name} has shape [${got.join(', ')}], its config says [${shape.join(', ')}]`,
      );
    }
  };
  // Student tensors of every targeted module; teacher tensors of every layer (any may be selected).
  for (const ref of refs) {
    checkShape(sources.student, sName, weightName(ref, student), weightShape(ref.kind, student));
  }
  if (t) {
    for (const tref of moduleRefs(opts.kinds, t.numLayers)) {
      const name = weightName(tref, t);
      checkShape(sources.teacher, tName, name, weightShape(tref.kind, t));
      checkShape(sources.sensitivity, 'sensitivity', name, weightShape(tref.kind, t));
    }
    if (opts.layers === 'sensitivity' && sources.sensitivity) {
      for (let l = 0; l < t.numLayers; l++) {
        for (const suffix of LAYER_TENSORS) {
          const name = `model.layers.${l}.${suffix}`;
          if (!sources.sensitivity.has(name))
            problems.push(`sensitivity has no tensor ${name} (needed for the layer scores)`);
        }
      }
    }
  }

  if (problems.length > 0) {
    const src = t ? `${tName} -> ${sName}` : sName;
    throw new InputError(src, `cannot transfer:\n  - ${[...new Set(problems)].join('\n  - ')}`);
  }
  return { init: opts.init, kinds: [...opts.kinds], pairs, needsTeacher, subtract, untieStudentHead, notes };
}
