/**
 * README.md of a merged model folder: an HF model card (YAML front matter, then Markdown) recording
 * where the weights came from — teacher, student, the hashes of the inputs (seeds, sensitivity, model
 * files) from the init folder's manifest, the teacher layers that fed each student layer, the extract
 * and training options, the held-out losses, and the command lines — so a merged checkpoint can be
 * audited or reproduced without the folders that produced it.
 */
import { basename } from 'node:path';
import { shellQuote } from '../config/shell.js';
import type { ModelConfig } from '../model/config.js';
import type { Manifest } from '../transfer/manifest.js';
import type { AdapterModule } from '../transfer/peft.js';
import type { TrainingRecord } from './run.js';
import type { SeedsRecord } from './merge.js';

export interface ModelCardInput {
  out: string;
  student: string;
  adapter: string;
  studentFormat: 'hf' | 'llama2c';
  /** The merged model's config. */
  config: ModelConfig;
  modules: readonly AdapterModule[];
  training: TrainingRecord | null;
  manifest: Manifest | null;
  /** The seed examples behind the teacher's sensitivity (from the sensitivity summary). */
  seeds: SeedsRecord | null;
  mergeArgv: string[] | null;
  mergeFlags: string[];
  dtype: string;
}

function yamlString(s: string): string {
  return JSON.stringify(s); // a JSON string is a valid YAML double-quoted scalar
}

function cell(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return (s ?? '').replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

function commandLine(argv: string[] | null, command: string, flags: string[]): string {
  if (argv && argv.length > 0) return shellQuote(['nuggets', ...argv]);
  return shellQuote(['nuggets', command, ...flags]);
}

function table(rows: Array<[string, unknown]>): string[] {
  return [
    '| | |',
    '| --- | --- |',
    ...rows.filter(([, v]) => v !== undefined && v !== null).map(([k, v]) => `| ${k} | ${cell(v)} |`),
  ];
}

function fmtLoss(v: number | null | undefined): string {
  return typeof v === 'number' && Number.isFinite(v) ? v.toFixed(4) : '-';
}

/** The model card text. */
export function modelCard(c: ModelCardInput): string {
  const m = c.manifest;
  const t = c.training;
  const lines: string[] = [];
  const named = m?.options.teacherName;
  const teacher = m?.inputs.teacher?.path ?? c.seeds?.teacher ?? (typeof named === 'string' ? named : null);
  lines.push('---');
  lines.push(`base_model: ${yamlString(c.student)}`);
  lines.push('library_name: transformers');
  lines.push('tags:');
  for (const tag of ['nuggets', 'lora', 'merged', 'parametric-knowledge-transfer']) lines.push(`  - ${tag}`);
  lines.push('---');
  lines.push('');
  lines.push(`# ${basename(c.out)}`);
  lines.push('');
  lines.push(
    `A ${c.config.arch} model (${c.config.numLayers} layers, hidden ${c.config.hiddenSize}, vocab ${c.config.vocabSize}) made by ` +
      'nuggets from the student below and a LoRA adapter merged into its weights: ' +
      '`W_final = W_s - scale·B0·A0 + scale·B1·A1` (B0, A0 the initial factors, B1, A1 the trained ones; ' +
      'docs/method.md step 7 of the parametric knowledge transfer method, Zhong et al., ICLR 2024).',
  );
  lines.push('');
  lines.push('## Provenance');
  lines.push('');
  lines.push(
    ...table([
      [
        'student',
        c.student +
          (c.studentFormat === 'llama2c' ? ' (llama2.c checkpoint; q/k rows permuted to the HF layout)' : ''),
      ],
      ['teacher', teacher ?? (m ? `none (${m.init} init)` : 'unknown (no init manifest)')],
      [
        'initialisation',
        m
          ? `${m.init}${m.subtract ? ' (subtract trick: W - scale·B0·A0, LoRA starts at B0, A0)' : ''}`
          : t
            ? t.init.kind
            : 'unknown',
      ],
      ['init folder', t?.init.folder ?? undefined],
      [
        'seeds',
        c.seeds
          ? `${c.seeds.path}${c.seeds.used !== null ? ` (${c.seeds.used} used)` : ''}, sha256 \`${c.seeds.sha256}\``
          : m && m.init === 'teacher'
            ? 'not found (no sensitivity summary beside the sensitivity file)'
            : undefined,
      ],
      ['adapter merged', c.adapter],
      ['training data', t ? `${t.data.train.path} (sha256 ${t.data.train.files[0]?.sha256})` : undefined],
      [
        'held-out data',
        t?.data.eval ? `${t.data.eval.path} (sha256 ${t.data.eval.files[0]?.sha256})` : undefined,
      ],
      ['storage dtype', c.dtype],
    ]),
  );
  lines.push('');
  if (m && Object.keys(m.inputs).length > 0) {
    lines.push('### Input hashes (from the init manifest)');
    lines.push('');
    lines.push('| input | path | file | bytes | sha256 |');
    lines.push('| --- | --- | --- | --- | --- |');
    for (const [key, h] of Object.entries(m.inputs)) {
      for (const f of h.files)
        lines.push(
          `| ${cell(key)} | ${cell(h.path)} | ${cell(f.name)} | ${f.bytes} | ${
            f.sha256 !== null ? `\`${f.sha256}\`` : `first and last 16 MiB: \`${f.endsSha256}\``
          } |`,
        );
    }
    lines.push('');
  }
  if (m?.layers) {
    lines.push('### Layers');
    lines.push('');
    const l = m.layers;
    lines.push(`Selection: ${cell(l.method)}. Teacher layer -> student layer:`);
    lines.push('');
    lines.push(l.teacherLayers.map((tl, s) => `${tl} -> ${s}`).join(', ') || '(none)');
    lines.push('');
  }
  lines.push('## LoRA');
  lines.push('');
  const kinds = [...new Set(c.modules.map((x) => x.ref.kind))];
  const r0 = c.modules[0];
  lines.push(
    ...table([
      ['modules', kinds.join(', ')],
      ['adapted matrices', c.modules.length],
      ['rank (merged adapter)', r0 ? r0.r : undefined],
      ['lora_alpha (merged adapter)', r0 ? r0.alpha : undefined],
      [
        'trained rank / alpha',
        t ? `${t.lora.r} / ${t.lora.alpha}` : m ? `${m.lora.r} / ${m.lora.alpha}` : undefined,
      ],
      ['dropout', t ? t.lora.dropout : m?.lora.dropout],
    ]),
  );
  lines.push('');
  if (t) {
    lines.push('## Training');
    lines.push('');
    const o = t.options;
    lines.push(
      ...table([
        ['epochs', o.epochs],
        ['learning rate', o.learningRate],
        ['scheduler', `${o.scheduler}, warmup ratio ${o.warmupRatio}`],
        ['effective batch / micro-batch', `${o.batchSize} / ${o.microBatchSize}`],
        [
          'AdamW',
          `betas (${o.adamBeta1}, ${o.adamBeta2}), eps ${o.adamEpsilon}, weight decay ${o.weightDecay}`,
        ],
        ['max grad norm', o.maxGradNorm],
        ['max length', t.data.maxLength],
        ['prompt format', o.chatFormat],
        ['seed', o.seed],
        [
          'examples',
          `${t.data.trainReport.kept} of ${t.data.trainReport.total} (${t.data.trainReport.skippedLines.length} skipped with no answer token left, ${t.data.trainReport.truncatedLines.length} truncated)`,
        ],
        ['updates', `${t.results.steps} of ${t.results.totalSteps}`],
        ['final train loss', fmtLoss(t.results.trainLoss)],
        [
          'held-out loss',
          t.results.evalLosses.length
            ? `${fmtLoss(t.results.initialEvalLoss)} before, then ${t.results.evalLosses.map(fmtLoss).join(', ')} after each epoch`
            : undefined,
        ],
        ['loss', 'answer tokens only; token mean over each effective batch'],
      ]),
    );
    lines.push('');
  }
  if (m) {
    lines.push('## Extraction options');
    lines.push('');
    lines.push('```json');
    lines.push(
      JSON.stringify({ init: m.init, lora: m.lora, subtract: m.subtract, options: m.options }, null, 2),
    );
    lines.push('```');
    lines.push('');
    if (m.notes?.length) {
      for (const n of m.notes) lines.push(`- ${n}`);
      lines.push('');
    }
  }
  lines.push('## Command lines');
  lines.push('');
  lines.push('```sh');
  if (t) lines.push(commandLine(t.commandLine.argv, 'train', t.commandLine.flags));
  lines.push(commandLine(c.mergeArgv, 'merge', c.mergeFlags));
  lines.push('```');
  lines.push('');
  return lines.join('\n');
}
