#!/usr/bin/env bash
# Every benchmark behind the tables of docs/benchmarks.md and plots, then the tables themselves
# (python -m benchmarks.report prints them all from benchmarks/results/).
# About 6 hours on the 2-core CPU dev VM. Run from the repository root:  bash benchmarks/all.sh
# Not here: checkpoints.py and plot_training.py (they need training runs' checkpoints and
# logs), batch_jobs.py and file_hashes.py (checks, no table).
set -euo pipefail
cd "$(dirname "$0")/.."
pip install -q -e '.[bench]'
R=benchmarks/results
# "BD-rate on Kodak", "nnc on Kodak", "Where the bits go", "What the coders cost", rd-*.png
python -m benchmarks.rd                                   # nnc + 8 classical codecs (~95 min)
python -m benchmarks.rd --codecs nnc --refine 5           # the --refine 5 columns (~40 min)
# "The coder changes of 2026-11-22" and the refits docs/experiments/ cites
python -m benchmarks.coder_params --out $R/coder-params.json                     # ~65 min
# "Per-image refinement"
python -m benchmarks.coder_params --variants refine --qualities 0.2 0.4 0.6 0.8 1 \
    --out $R/refine-params.json                                                   # ~70 min
# "Level-1 coders measured": the likelihood target's variants
python -m benchmarks.coder_params --variants likelihood \
    --out $R/coder-params-likelihood.json                                         # ~45 min
# "Level-1 coders measured": shard size, block shape, beam width
python -m benchmarks.coder_params --variants shards \
    --out $R/coder-params-shards.json                                             # ~45 min
python -m benchmarks.shard_contexts --out $R/shard-contexts.json                # ~5 min
# "Per-image refinement": bfloat16 g_a and refinement, and what its time could buy
python -m benchmarks.coder_params --variants precision \
    --out $R/coder-params-precision.json                                          # ~15 min
# "Level-1 coders measured": the per-rate table (and the coders' grids)
python -m benchmarks.coders                  # ~10 min (the per-rate part alone ~1.5 min)
python -m benchmarks.level1_prototypes --images kodim05 kodim23 \
    --out $R/level1-prototypes.json                                               # ~5 min
# "Where the coder issue's +20% stands": the synthesis fine-tuned to coded latents
python -m benchmarks.decoder_finetune --out $R/decoder-finetune.json             # ~20 min
# "--bpp" (docs/benchmarks.md shows the 0.5 target)
python -m benchmarks.bpp_target --targets 0.5                                     # ~8 min
# "Large images": whole processes on Kodak mosaics, 4.6 GiB peak at 100 MP
python -m benchmarks.large_images --megapixels 12 24 100 --out $R/large-images.json  # ~25 min
# "Robustness": 100,000 mutated files
python -m benchmarks.fuzz                                                         # ~5 min
# "Speed and memory": last, its timings want a quiet machine
python -m benchmarks.whole_process --images kodim23 kodim05 --runs 5 \
    --out $R/whole-process.json                                                   # ~3 min
python -m benchmarks.speed                                                        # ~15 min
python -m benchmarks.report
