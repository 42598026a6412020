/**
 * The `extract` step end to end (docs/method.md steps 2-4 and the controls): teacher + student +
 * sensitivity -> an initialisation folder: a PEFT LoRA adapter holding (B, A), and manifest.json with
 * the selected teacher layers and scores, each matrix's window and share of sensitivity, singular
 * values, energy kept, all options and input hashes. extract.ts does the math; this module opens the
 * inputs, refuses what cannot work before any heavy work (unknown combinations, a missing sensitivity
 * file, an output folder that already holds an initialisation, tokenizers that differ, and, in the
 * plan, every teacher/student mismatch) and writes the folder.
 *
 * `heads` turns the block structure into `heads` (windows on attention-head and key/value-group
 * boundaries). Teacher `self` uses the student as its own teacher (a control): its sensitivity must
 * then be the student's own.
 *
 * The library's `extract` (src/api/steps.ts) validates the options and calls `extractToFolder`.
 */
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import type { OptionsOf } from '../config/parse.js';
import { InputError } from '../errors.js';
import { loadModelSource, type ModelSource } from '../io/load.js';
import { openSafetensors, type SafetensorsReader } from '../io/safetensors.js';
import { checkSameVocabulary } from '../io/vocab-compare.js';
import { Progress, type ProgressMode } from '../train/progress.js';
import { extract, type ExtractResult } from './extract.js';
import { writeAdapter, ADAPTER_CONFIG, ADAPTER_WEIGHTS } from './peft.js';
import { MANIFEST_FILE, writeManifest } from './manifest.js';
import { recordedSums } from './sense/summary.js';
import type { Structure } from './submatrix.js';
import type { InitKind } from './plan.js';

/** The `extract` schema's options, plus overwrite permission and the progress bar switch. */
export type ExtractFolderOptions = OptionsOf<'extract'> & { force?: boolean; progress?: boolean };

/** docs/method.md step 5's LoRA dropout (the trainer may override it). */
const LORA_DROPOUT = 0.05;

/** The submatrix structure from --structure and --heads. */
export function structureOf(o: Pick<ExtractFolderOptions, 'structure' | 'heads'>): Structure {
  if (!o.heads) return o.structure;
  if (o.structure !== 'block')
    throw new InputError(
      '--heads',
      `applies to the block structure (windows on head boundaries), not to --structure ${o.structure}`,
    );
  return 'heads';
}

/** Checks the output folder: created when missing, refused when it already holds an initialisation (unless force). */
function prepareOut(out: string, force: boolean): void {
  if (existsSync(out)) {
    if (!statSync(out).isDirectory()) throw new InputError(out, 'exists and is not a folder');
    const clash = readdirSync(out).filter(
      (f) => f === ADAPTER_CONFIG || f === ADAPTER_WEIGHTS || f === MANIFEST_FILE,
    );
    if (clash.length > 0 && !force)
      throw new InputError(
        out,
        `already holds ${clash.join(', ')}; choose another folder or pass --force to overwrite`,
      );
  }
}

/** Opens the inputs, runs extract() and writes the adapter and manifest into `o.out`. */
export function extractToFolder(
  o: ExtractFolderOptions,
  io: { log?: (s: string) => void; progressMode?: ProgressMode } = {},
): ExtractResult {
  const log = io.log ?? ((s: string) => process.stderr.write(s + '\n'));
  const structure = structureOf(o);
  const init = o.init as InitKind;
  const needsTeacher = init === 'teacher' || init === 'random-matched';
  if (needsTeacher && !o.sensitivity) {
    throw new InputError(
      '--sensitivity',
      `the ${init} init needs the teacher's sensitivity file (from "nuggets sense")`,
    );
  }
  if (!needsTeacher && o.sensitivity)
    log(`extract: --init ${init} reads neither the teacher nor --sensitivity; they are ignored`);
  if (o.sensitivity && !existsSync(o.sensitivity))
    throw new InputError(o.sensitivity, 'no such sensitivity file');
  prepareOut(o.out, o.force ?? false);

  const self = o.teacher === 'self';
  const opened: ModelSource[] = [];
  let sens: SafetensorsReader | null = null;
  try {
    const student = loadModelSource(o.student);
    opened.push(student);
    let teacher: ModelSource | null = null;
    if (needsTeacher) {
      if (self) teacher = student;
      else {
        teacher = loadModelSource(o.teacher);
        opened.push(teacher);
        checkSameVocabulary(teacher.tokenizer, student.tokenizer, o.teacher, o.student);
      }
      sens = openSafetensors(o.sensitivity!);
    }
    const teacherName = self ? `${o.student} (self)` : o.teacher;
    const mode: ProgressMode = (o.progress ?? true) ? (io.progressMode ?? 'auto') : 'off';
    let progress: Progress | null = null;
    let res: ExtractResult;
    try {
      res = extract(
        {
          teacher: teacher?.weights,
          teacherConfig: teacher?.config,
          student: student.weights,
          studentConfig: student.config,
          sensitivity: sens ?? undefined,
          sensitivitySums: sens ? recordedSums(sens) : null,
        },
        {
          init,
          modules: o.modules,
          rank: o.rank,
          alpha: o.alpha,
          dropout: LORA_DROPOUT,
          structure,
          layers: o.layers,
          svd: { method: o.svd },
          seed: o.seed,
          baseModel: o.student,
          teacherName,
          studentName: o.student,
          inputPaths: {
            student: o.student,
            ...(needsTeacher && !self ? { teacher: o.teacher } : {}),
            ...(needsTeacher ? { sensitivity: o.sensitivity! } : {}),
          },
          onProgress: (done, total, label) => {
            // the total is known once the plan is made
            progress ??= new Progress({ label: 'extract', total, mode });
            progress.update(done, { module: label });
          },
        },
      );
    } finally {
      (progress as Progress | null)?.stop();
    }
    mkdirSync(o.out, { recursive: true });
    const dtype = o.dtype === 'bf16' ? 'BF16' : o.dtype === 'f16' ? 'F16' : 'F32';
    writeAdapter(o.out, res.modules, student.config, {
      baseModel: o.student,
      loraDropout: LORA_DROPOUT,
      dtype,
    });
    writeManifest(o.out, res.manifest);
    const layers = res.manifest.layers
      ? `teacher layers [${res.manifest.layers.teacherLayers.join(', ')}] (${res.manifest.layers.method})`
      : 'no teacher';
    log(
      `extract: wrote ${o.out}: ${res.modules.length} modules, init ${init}, rank ${o.rank}, alpha ${o.alpha}, ${layers}`,
    );
    for (const n of res.manifest.notes) log(`extract: note: ${n}`);
    return res;
  } finally {
    sens?.close();
    for (const s of opened) s.weights.close();
  }
}
