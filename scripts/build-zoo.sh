#!/usr/bin/env bash
# Rebuilds the bundled zoo (zoo/) and the miniature study's task files (tasks/) from the data in data/.
#
#   scripts/build-zoo.sh            # everything (about 50 CPU-minutes, 27 of them teacher-m; 1-2 hours wall on 2 busy cores)
#   STEPS="tasks verify" scripts/build-zoo.sh   # only some steps:
#                      tasks student teacher student-m teacher-m stories260k verify (the default list)
#                      student-l teacher-l (size L, committed but not in the default list: 10 + 75 CPU-minutes; zoo/README.md "Size L")
#   STEPS="teacher-m" nohup nice -n 10 scripts/build-zoo.sh > runs/teacher-m.log 2>&1 &   # in the background
#
# The task files and the pretraining corpora are deterministic (same bytes, same sha256). The models are
# deterministic for a given machine and backend; another BLAS or CPU may round differently, so a rebuilt
# model can differ in its last bits from the committed one (rebuilds of student-m and teacher-m on the machine
# that made them gave the same sha256, teacher-m's even when killed and resumed from a checkpoint).
# Intermediate files (corpora, checkpoints) go to $BUILD (default runs/zoo-build, ignored by git); an
# interrupted build resumes from its checkpoints.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=${BUILD:-runs/zoo-build}
STEPS=${STEPS:-tasks student teacher student-m teacher-m stories260k verify}
# The native kernels use OpenMP: on a busy machine, spinning worker threads waste most of the CPU time
# (measured: 4x fewer tokens per CPU-second), so they sleep while waiting.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
NUGGETS=(node --import tsx src/cli/run.ts)
TOK=data/stories260k/tokenizer.bin

has() { [[ " $STEPS " == *" $1 "* ]]; }

if has tasks; then
  # tasks/{stories,facts}/* and the corpora $BUILD/data/{student-tiny,teacher-facts}.jsonl
  node --import tsx scripts/zoo/build.ts --tasks tasks --corpus "$BUILD/data"
fi

if has student; then
  # Fewer layers and a smaller width than stories260K (d 64, 5 layers); head_dim 8 like every zoo model.
  "${NUGGETS[@]}" pretrain --data "$BUILD/data/student-tiny.jsonl" --tokenizer "$TOK" \
    --hidden-size 48 --num-layers 3 --num-heads 6 --num-kv-heads 2 --intermediate-size 128 \
    --seq-len 128 --batch-size 16 --micro-batch-size 16 --epochs 6 \
    --learning-rate 3e-3 --warmup-steps 30 --scheduler cosine --seed 1 \
    --eval-steps 100 --save-steps 100 --checkpoint-dir "$BUILD/student-tiny-ckpt" --resume \
    --out zoo/student-tiny
fi

if has teacher; then
  # Larger than stories260K (d 96 vs 64, 6 layers vs 5, MLP 256 vs 172), grouped-query attention 12/4,
  # trained on the same stories mixed with the knowledge documents of tasks/facts; bf16 to stay under 2 MB.
  # Small batches: memorising the facts needs many updates (batch 8 learned them about twice as fast per
  # token as batch 32 in trial runs; ~300 sightings of each fact reach well above chance).
  "${NUGGETS[@]}" pretrain --data "$BUILD/data/teacher-facts.jsonl" --tokenizer "$TOK" \
    --hidden-size 96 --num-layers 6 --num-heads 12 --num-kv-heads 4 --intermediate-size 256 \
    --seq-len 128 --batch-size 8 --micro-batch-size 8 --epochs 4 \
    --learning-rate 3e-3 --warmup-steps 50 --scheduler cosine --seed 2 --dtype bf16 \
    --eval-steps 300 --save-steps 300 --checkpoint-dir "$BUILD/teacher-facts-ckpt" --resume \
    --out zoo/teacher-facts
fi

if has student-m; then
  # Size M (about 10x student-tiny): d 128, 6 layers, GQA 16/4, MLP 352, head_dim 8; the same stories only.
  # Single-threaded (OMP_NUM_THREADS=1 unless set) so that a rebuild on this machine repeats the same sums.
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "${NUGGETS[@]}" pretrain --data "$BUILD/data/student-tiny.jsonl" --tokenizer "$TOK" \
    --hidden-size 128 --num-layers 6 --num-heads 16 --num-kv-heads 4 --intermediate-size 352 \
    --seq-len 128 --batch-size 16 --micro-batch-size 16 --epochs 6 \
    --learning-rate 2e-3 --warmup-steps 50 --scheduler cosine --seed 11 --dtype bf16 \
    --eval-steps 100 --save-steps 100 --checkpoint-dir "$BUILD/student-m-ckpt" --resume \
    --out zoo/student-m
fi

if has teacher-m; then
  # Size M teacher (about 5x student-m): d 256, 8 layers, GQA 32/8, MLP 704, head_dim 8; the teacher-facts
  # corpus (stories + knowledge documents), batch 8 as for teacher-facts; bf16 (about 12 MB).
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "${NUGGETS[@]}" pretrain --data "$BUILD/data/teacher-facts.jsonl" --tokenizer "$TOK" \
    --hidden-size 256 --num-layers 8 --num-heads 32 --num-kv-heads 8 --intermediate-size 704 \
    --seq-len 128 --batch-size 8 --micro-batch-size 8 --epochs 3 \
    --learning-rate 2e-3 --warmup-steps 100 --scheduler cosine --seed 12 --dtype bf16 \
    --eval-steps 200 --save-steps 200 --checkpoint-dir "$BUILD/teacher-m-ckpt" --resume \
    --out zoo/teacher-m
fi

if has student-l; then
  # Size L (not in the default STEPS; zoo/README.md "Size L"): about 50x student-tiny, d 256, 8 layers,
  # GQA 32/8, MLP 768 (6.3M parameters, 12.6 MB bf16). The bundled stories (232K tokens a pass) are far
  # fewer than a model this size can use; it will overfit them after a few passes.
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} "${NUGGETS[@]}" pretrain --data "$BUILD/data/student-tiny.jsonl" --tokenizer "$TOK" \
    --hidden-size 256 --num-layers 8 --num-heads 32 --num-kv-heads 8 --intermediate-size 768 \
    --seq-len 128 --batch-size 16 --micro-batch-size 16 --epochs 4 \
    --learning-rate 1e-3 --warmup-steps 50 --scheduler cosine --seed 21 --dtype bf16 \
    --eval-steps 100 --save-steps 100 --checkpoint-dir "$BUILD/student-l-ckpt" --resume \
    --out zoo/student-l
fi

if has teacher-l; then
  # Size L teacher, 4x student-l: d 512, 8 layers, GQA 64/16, MLP 1600 (25.4M parameters, about 51 MB bf16:
  # over the 20 MB a zoo file may have, so it is written in shards of at most 20 MB, as save_pretrained
  # shards; zoo/README.md "Size L"). Not in the default STEPS.
  # Both cores (about 1.1 s an update on an otherwise idle machine; the committed teacher-l was built so;
  # its full rebuild was not run, a resume from its step-1900 checkpoint gave the same bytes; student-l's
  # rebuild on another CPU matched its losses to 4 decimals but not its bytes: zoo/README.md "Size L").
  OMP_NUM_THREADS=${OMP_NUM_THREADS:-2} "${NUGGETS[@]}" pretrain --data "$BUILD/data/teacher-facts.jsonl" --tokenizer "$TOK" \
    --hidden-size 512 --num-layers 8 --num-heads 64 --num-kv-heads 16 --intermediate-size 1600 \
    --seq-len 128 --batch-size 8 --micro-batch-size 8 --epochs 3 \
    --learning-rate 1e-3 --warmup-steps 100 --scheduler cosine --seed 22 --dtype bf16 \
    --eval-steps 200 --save-steps 100 --checkpoint-dir "$BUILD/teacher-l-ckpt" --resume \
    --max-shard-size 20MB --out zoo/teacher-l
fi

if has stories260k; then
  # The real stories260K (llama2.c) as an HF folder: a second teacher.
  "${NUGGETS[@]}" convert data/stories260k/checkpoint_legacy.bin --tokenizer "$TOK" -o zoo/stories260k --force
  cat > zoo/stories260k/RECIPE.md <<'EOF'
# stories260k

The real stories260K model of llama2.c (Andrej Karpathy, MIT; data/stories260k/SOURCE.md), trained on the
TinyStories train split, converted to a Hugging Face folder (q/k rows permuted for rotate_half RoPE, tokenizer.json
rebuilt from tokenizer.bin) with:

```sh
nuggets convert data/stories260k/checkpoint_legacy.bin --tokenizer data/stories260k/tokenizer.bin -o zoo/stories260k --force
```

Its greedy continuation from BOS is the golden text of docs/formats.md (test/model-golden.test.ts).
EOF
fi

if has verify; then
  # zoo/README.md: sizes, held-out TinyStories loss, facts known, transfer compatibility.
  node --import tsx scripts/zoo/verify-zoo.ts --zoo zoo
fi
