/**
 * Everything the HTML report shows, read from a run folder written by `nuggets run`:
 *   plan.json                                  the grid (tasks, methods, seeds, jobs)
 *   results.json                               the table (study/table.ts); rebuilt from the cells if absent
 *   sense/<teacher>--<task>/sensitivity.summary.json   per-tensor and per-layer sensitivity sums (nuggets sense)
 *   cells/.../init/manifest.json               selected layers, window offsets (nuggets extract)
 *   cells/.../train/trainer_log.jsonl          training and held-out loss (nuggets train)
 * Missing pieces (a run still going, a method without a teacher) leave their plot out with a note.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { InputError } from '../errors.js';
import { LINEAR_NAMES } from '../model/block.js';
import { readTrainerLog } from '../train/log.js';
import type { Manifest } from '../transfer/manifest.js';
import type { CellJob, Plan, SenseJob } from '../study/plan.js';
import { PLAN_FILE } from '../study/plan.js';
import { buildTable, TABLE_JSON, type ResultsTable } from '../study/table.js';

/** The seven linear kinds and the two norms of a decoder layer, in model order. */
export const LAYER_KINDS = [...LINEAR_NAMES, 'input_layernorm', 'post_attention_layernorm'] as const;

export interface SensitivityCell {
  /** "<teacher>--<task>". */
  source: string;
  teacher: string;
  task: string;
  layer: number;
  kind: string;
  sum: number;
  /** sum / number of elements. */
  mean: number;
}

export interface LayerScore {
  source: string;
  layer: number;
  score: number;
  selected: boolean;
}

export interface WindowRow {
  size?: string;
  task: string;
  method: string;
  module: string;
  kind: string;
  /** "student layer j <- teacher layer l", or "embedding / head" for the outer matrices. */
  row: string;
  studentLayer: number | null;
  teacherLayer: number | null;
  /** Teacher matrix extent (factor layout: embedding is [d, V]). */
  tRows: number;
  tCols: number;
  /** Window (block structure): top-left and size. */
  r0: number;
  c0: number;
  rows: number;
  cols: number;
  share: number | null;
}

export interface LossPoint {
  /** The student size (scale studies only). */
  size?: string;
  task: string;
  method: string;
  seed: number;
  step: number;
  epoch: number;
  loss: number;
  kind: 'train' | 'held-out';
}

export interface ReportData {
  runDir: string;
  plan: Plan;
  table: ResultsTable;
  sensitivity: SensitivityCell[];
  layerScores: LayerScore[];
  windows: WindowRow[];
  losses: LossPoint[];
  /** Per sense source: the teacher layers chosen (from the first manifest that used it). */
  selected: Record<string, number[]>;
  notes: string[];
}

function readJson<T>(path: string): T {
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new InputError(path, `cannot read JSON: ${(e as Error).message}`);
  }
}

interface SenseSummaryLike {
  tensors: Record<string, { shape: number[]; sum: number }>;
  layers: number[];
}

const tensorKind = (name: string): { layer: number; kind: string } | null => {
  const m = /^model\.layers\.(\d+)\.(?:self_attn\.|mlp\.)?(\w+)\.weight$/.exec(name);
  return m ? { layer: Number(m[1]), kind: m[2] } : null;
};

/** "<teacher>--<task>" of a sense job id, "<size>: <teacher>--<task>" in a scale study. */
export function senseSource(id: string): string {
  const m = /^(?:sizes\/([^/]+)\/)?sense\/(.+)$/.exec(id);
  if (!m) return id;
  return m[1] ? `${m[1]}: ${m[2]}` : m[2];
}

export function summaryPath(job: SenseJob): string {
  return job.output.replace(/\.safetensors$/, '') + '.summary.json';
}

/** Reads a run folder into plot-ready rows. */
export function loadReportData(runDir: string): ReportData {
  const planPath = join(runDir, PLAN_FILE);
  if (!existsSync(planPath))
    throw new InputError(runDir, `no ${PLAN_FILE}: not a run folder written by "nuggets run"`);
  const plan = readJson<Plan>(planPath);
  if (!Array.isArray(plan.jobs) || !Array.isArray(plan.tasks))
    throw new InputError(planPath, 'missing "jobs" or "tasks"');
  // The plan records absolute folders; a run folder that was moved is read where it is now.
  const here = (dir: string, id: string) => (existsSync(dir) ? dir : join(runDir, id));
  for (const j of plan.jobs) {
    const moved = here(j.dir, j.id);
    if (moved !== j.dir) {
      const old = j.dir;
      j.dir = moved;
      if (j.kind === 'sense') j.output = j.output.replace(old, moved);
      else if (j.kind === 'reference') j.evalDir = j.evalDir.replace(old, moved);
      else {
        j.trainDir = j.trainDir.replace(old, moved);
        j.evalDir = j.evalDir.replace(old, moved);
        if (j.initDir) j.initDir = j.initDir.replace(old, moved);
      }
    }
  }
  const tablePath = join(runDir, TABLE_JSON);
  const table = existsSync(tablePath) ? readJson<ResultsTable>(tablePath) : buildTable(plan);
  const notes: string[] = [];
  const cells = plan.jobs.filter((j): j is CellJob => j.kind === 'cell');

  // Windows and selected layers: the first finished extract of each method with a teacher.
  const windows: WindowRow[] = [];
  const selected: Record<string, number[]> = {};
  const seenMethod = new Set<string>();
  for (const c of cells) {
    if (!c.initDir || !c.needs) continue;
    const mPath = join(c.initDir, 'manifest.json');
    if (!existsSync(mPath)) continue;
    const man = readJson<Manifest>(mPath);
    const source = senseSource(c.needs);
    if (man.layers && !(source in selected) && man.layers.method === 'sensitivity')
      selected[source] = man.layers.teacherLayers;
    const key = `${c.size ?? ''}/${c.task}/${c.method}`;
    if (seenMethod.has(key)) continue;
    seenMethod.add(key);
    for (const mx of man.matrices) {
      if (!mx.offset || !mx.teacherShape) continue;
      windows.push({
        ...(c.size ? { size: c.size } : {}),
        task: c.task,
        method: c.method,
        module: mx.module,
        kind: mx.kind,
        row:
          mx.studentLayer === null
            ? 'embedding / head'
            : `student ${mx.studentLayer} ← teacher ${mx.teacherLayer}`,
        studentLayer: mx.studentLayer,
        teacherLayer: mx.teacherLayer,
        tRows: mx.teacherShape[0],
        tCols: mx.teacherShape[1],
        r0: mx.offset[0],
        c0: mx.offset[1],
        rows: mx.shape[0],
        cols: mx.shape[1],
        share: mx.share,
      });
    }
  }

  // Sensitivity heat maps and layer scores, one per sense job.
  const sensitivity: SensitivityCell[] = [];
  const layerScores: LayerScore[] = [];
  for (const j of plan.jobs) {
    if (j.kind !== 'sense') continue;
    const p = summaryPath(j);
    const source = senseSource(j.id);
    if (!existsSync(p)) {
      notes.push(`no sensitivity summary for ${source} (${p})`);
      continue;
    }
    const s = readJson<SenseSummaryLike>(p);
    if (!s.tensors || !Array.isArray(s.layers))
      throw new InputError(p, 'not a sensitivity summary (missing "tensors" or "layers")');
    for (const [name, t] of Object.entries(s.tensors)) {
      const k = tensorKind(name);
      if (!k) continue;
      const n = t.shape.reduce((a, b) => a * b, 1);
      sensitivity.push({
        source,
        teacher: j.teacher,
        task: j.task,
        layer: k.layer,
        kind: k.kind,
        sum: t.sum,
        mean: n > 0 ? t.sum / n : 0,
      });
    }
    const sel = new Set(selected[source] ?? []);
    s.layers.forEach((score, layer) => layerScores.push({ source, layer, score, selected: sel.has(layer) }));
  }

  // Loss curves of every finished training.
  const losses: LossPoint[] = [];
  for (const c of cells) {
    const p = join(c.trainDir, 'trainer_log.jsonl');
    if (!existsSync(p)) continue;
    for (const r of readTrainerLog(p)) {
      const at = {
        ...(c.size ? { size: c.size } : {}),
        task: c.task,
        method: c.method,
        seed: c.seed,
        step: r.current_steps,
        epoch: r.epoch,
      };
      if (typeof r.loss === 'number') losses.push({ ...at, loss: r.loss, kind: 'train' });
      if (typeof r.eval_loss === 'number') losses.push({ ...at, loss: r.eval_loss, kind: 'held-out' });
    }
  }
  if (losses.length === 0) notes.push('no trainer_log.jsonl found yet');
  return { runDir, plan, table, sensitivity, layerScores, windows, losses, selected, notes };
}
