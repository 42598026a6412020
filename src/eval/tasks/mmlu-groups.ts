/**
 * lm-evaluation-harness's MMLU grouping (lm_eval/tasks/mmlu/default: each subject's yaml tags it
 * mmlu_<category>_tasks; _mmlu_<category>.yaml groups them, _mmlu.yaml groups the four). Group scores
 * are size-weighted means of the subjects' acc (aggregate_metric_list weight_by_size: True), i.e. the
 * micro average over questions, with lm-eval's pooled standard error.
 */

/** The categories in the order _mmlu.yaml lists them. */
export const MMLU_CATEGORIES = ['stem', 'other', 'social_sciences', 'humanities'] as const;
export type MmluCategory = (typeof MMLU_CATEGORIES)[number];

/** Subject -> category, as the subject yamls tag them (57 subjects). */
export const MMLU_SUBJECT_CATEGORY: Readonly<Record<string, MmluCategory>> = {
  abstract_algebra: 'stem',
  anatomy: 'stem',
  astronomy: 'stem',
  business_ethics: 'other',
  clinical_knowledge: 'other',
  college_biology: 'stem',
  college_chemistry: 'stem',
  college_computer_science: 'stem',
  college_mathematics: 'stem',
  college_medicine: 'other',
  college_physics: 'stem',
  computer_security: 'stem',
  conceptual_physics: 'stem',
  econometrics: 'social_sciences',
  electrical_engineering: 'stem',
  elementary_mathematics: 'stem',
  formal_logic: 'humanities',
  global_facts: 'other',
  high_school_biology: 'stem',
  high_school_chemistry: 'stem',
  high_school_computer_science: 'stem',
  high_school_european_history: 'humanities',
  high_school_geography: 'social_sciences',
  high_school_government_and_politics: 'social_sciences',
  high_school_macroeconomics: 'social_sciences',
  high_school_mathematics: 'stem',
  high_school_microeconomics: 'social_sciences',
  high_school_physics: 'stem',
  high_school_psychology: 'social_sciences',
  high_school_statistics: 'stem',
  high_school_us_history: 'humanities',
  high_school_world_history: 'humanities',
  human_aging: 'other',
  human_sexuality: 'social_sciences',
  international_law: 'humanities',
  jurisprudence: 'humanities',
  logical_fallacies: 'humanities',
  machine_learning: 'stem',
  management: 'other',
  marketing: 'other',
  medical_genetics: 'other',
  miscellaneous: 'other',
  moral_disputes: 'humanities',
  moral_scenarios: 'humanities',
  nutrition: 'other',
  philosophy: 'humanities',
  prehistory: 'humanities',
  professional_accounting: 'other',
  professional_law: 'humanities',
  professional_medicine: 'other',
  professional_psychology: 'social_sciences',
  public_relations: 'social_sciences',
  security_studies: 'social_sciences',
  sociology: 'social_sciences',
  us_foreign_policy: 'social_sciences',
  virology: 'other',
  world_religions: 'humanities',
};

/** lm-eval's metadata versions: each subject task 1.0, each group 2. */
export const MMLU_TASK_VERSION = 1;
export const MMLU_GROUP_VERSION = 2;

/** lm-eval's pooled_sample_stderr: the stderr of a size-weighted mean of subtask means. */
export function pooledStderr(stderrs: readonly number[], sizes: readonly number[]): number | null {
  const total = sizes.reduce((a, b) => a + b, 0);
  if (total - sizes.length <= 0 || stderrs.some((s) => !Number.isFinite(s))) return null;
  let v = 0;
  sizes.forEach((n, i) => (v += (n - 1) * stderrs[i] ** 2 * n));
  return Math.sqrt(v / (total - sizes.length) / total);
}
