/**
 * Pretrain step 2, the data: training and held-out documents (a file, or a seeded share of the
 * training documents), tokenised and packed into sequences (src/train/pretrain-data.ts), and the
 * number of updates they make.
 */
import { InputError } from '../../errors.js';
import type { Tokenizer } from '../../model/tokenizer.js';
import { PackedSequences, readCorpus, splitDocuments, tokenStream } from '../pretrain-data.js';
import type { PretrainOptions } from './options.js';

export interface PretrainData {
  train: PackedSequences;
  /** Held-out sequences (null without held-out documents; may hold 0 sequences). */
  val: PackedSequences | null;
  trainDocs: number;
  valDocs: number;
  dataSha256: string;
  /** The held-out file's sha256 (null when the held-out documents come from the training file). */
  valSha256: string | null;
  /** Updates per pass over the training sequences (whole batches only). */
  perEpoch: number;
  totalSteps: number;
}

export function prepareData(o: PretrainOptions, tok: Tokenizer, say: (line: string) => void): PretrainData {
  const corpus = readCorpus(o.data, o.docSplit);
  let trainDocs = corpus.documents;
  let valDocs: typeof trainDocs;
  let valSha256: string | null = null;
  if (o.valData) {
    const v = readCorpus(o.valData, o.docSplit);
    valDocs = v.documents;
    valSha256 = v.sha256;
  } else {
    ({ train: trainDocs, val: valDocs } = splitDocuments(trainDocs, o.valFraction, o.seed));
  }
  const train = new PackedSequences(tokenStream(trainDocs, tok, { eos: o.eos }), o.seqLen);
  const val = valDocs.length
    ? new PackedSequences(tokenStream(valDocs, tok, { eos: o.eos }), o.seqLen)
    : null;
  if (val && val.count === 0)
    say(`pretrain: the held-out text has fewer than ${o.seqLen + 1} tokens; no held-out loss`);
  const perEpoch = Math.floor(train.count / o.batchSize);
  if (perEpoch === 0) {
    throw new InputError(
      o.data,
      `${train.stream.length} training tokens make ${train.count} sequence(s) of ${o.seqLen}, fewer than one batch of ${o.batchSize}; lower --batch-size or --seq-len`,
    );
  }
  const totalSteps = o.maxSteps > 0 ? o.maxSteps : perEpoch * o.epochs;
  say(
    `pretrain: ${trainDocs.length} documents, ${train.stream.length} tokens -> ${train.count} sequences of ${o.seqLen}` +
      (val && val.count ? `; held out ${valDocs.length} documents (${val.count} sequences)` : '') +
      `; ${totalSteps} updates of ${o.batchSize} sequences (${perEpoch} per epoch)`,
  );
  return {
    train,
    val,
    trainDocs: trainDocs.length,
    valDocs: valDocs.length,
    dataSha256: corpus.sha256,
    valSha256,
    perEpoch,
    totalSteps,
  };
}
