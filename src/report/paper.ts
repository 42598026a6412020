/**
 * What the paper reports (docs/method.md "What the paper reports": Zhong et al., ICLR 2024, LLaMA models,
 * the average of 7 metrics), shown beside our numbers. No variance was reported there.
 */

export interface PaperMain {
  setting: string;
  lora: number;
  transfer: number;
}

export const PAPER_MAIN: readonly PaperMain[] = [
  { setting: 'LLaMA-1 7B student, 13B teacher', lora: 27.0, transfer: 28.22 },
  { setting: 'LLaMA-1 7B student, 30B teacher', lora: 27.0, transfer: 28.63 },
  { setting: 'LLaMA-1 13B student, 30B teacher', lora: 33.89, transfer: 35.54 },
  { setting: 'LLaMA-2 7B student, 13B teacher', lora: 32.28, transfer: 34.47 },
];

export const PAPER_METRICS =
  'GSM8K 0/8-shot accuracy, MMLU 0/5-shot accuracy, Super-NaturalInstructions exact match and ROUGE-L, AlpacaFarm win rate; averaged';

/** Ablations (13B -> 7B average), keyed by the name of our method that reproduces each variant. */
export interface PaperAblation {
  axis: 'layers' | 'structure' | 'modules';
  variant: string;
  /** Our method name for the same variant, when the study has one. */
  method: string | null;
  score: number;
}

export const PAPER_ABLATIONS: readonly PaperAblation[] = [
  { axis: 'layers', variant: 'sensitivity layers', method: 'transfer', score: 28.22 },
  { axis: 'layers', variant: 'random layers', method: 'layers-random', score: 28.03 },
  { axis: 'layers', variant: 'last layers', method: 'layers-last', score: 28.09 },
  { axis: 'structure', variant: 'contiguous block', method: 'transfer', score: 28.22 },
  { axis: 'structure', variant: 'rows/columns', method: 'rowcol', score: 27.84 },
  { axis: 'structure', variant: 'single elements', method: 'elements', score: 27.28 },
  { axis: 'structure', variant: 'random entries', method: 'random', score: 27.07 },
  { axis: 'modules', variant: 'all modules', method: 'transfer', score: 28.22 },
  { axis: 'modules', variant: 'FFN only', method: null, score: 27.87 },
  { axis: 'modules', variant: 'attention only', method: null, score: 27.53 },
  { axis: 'modules', variant: 'embedding only', method: null, score: 27.33 },
];

/** The LoRA baseline of the ablation setting (LLaMA-1 13B -> 7B). */
export const PAPER_ABLATION_LORA = 27.0;
