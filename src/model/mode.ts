/**
 * Run mode shared by every module of a model: training (LoRA dropout active, masks drawn from a
 * seeded RNG in module order, so a run is reproducible and its RNG state can be saved for resume)
 * or evaluation (no dropout).
 */
import { Rng } from '../engine/rng.js';

export class RunMode {
  training = false;
  rng: Rng;

  constructor(seed = 0) {
    this.rng = new Rng(seed);
  }
}
