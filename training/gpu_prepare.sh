#!/usr/bin/env bash
# Prepares what training/gpu_session.py needs on a lent GPU machine, in the repository root:
#   .gpu-data/kodak/   4 Kodak images (cross-device check and speed)
#   .gpu-data/crops/   training crops: ../shared/data/train-hq first, then ../shared/data/train,
#                      as many as fit: the device tool carries 64 MiB a call, the tracked
#                      files included (weights: about 28 MB today), so 60 MiB less those
#   .whl/              the constriction wheel for the device's Python 3.12 (nothing can be
#                      fetched there; everything else nnc needs is in its image)
# Run it with the project's virtual environment active (the wheel matches its constriction).
# Both folders are listed in .git/info/exclude, so they travel only when carried.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared}
grep -qx '/.gpu-data/' .git/info/exclude 2>/dev/null || echo '/.gpu-data/' >> .git/info/exclude
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
rm -rf .gpu-data && mkdir -p .gpu-data/kodak .gpu-data/crops/hq .gpu-data/crops/train .whl
for i in 01 05 19 23; do cp "$SHARED/data/kodak/kodim$i.png" .gpu-data/kodak/; done
tracked=$(git ls-files -z | xargs -0 du -cb | tail -1 | cut -f1)
budget=$((60 * 1024 * 1024 - tracked - 1024 * 1024)); used=$(du -sb .gpu-data | cut -f1)
for pack in train-hq:hq train:train; do
  src=${pack%%:*}; dst=${pack##*:}
  for f in "$SHARED/data/$src"/*.jpg; do
    size=$(stat -c %s "$f"); [ $((used + size)) -gt $budget ] && break
    cp "$f" ".gpu-data/crops/$dst/"; used=$((used + size))
  done
done
ver=$(python3 -c "import importlib.metadata as m; print(m.version('constriction'))")
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 \
  --implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "constriction==$ver"
echo "prepared: $(ls .gpu-data/crops/hq | wc -l) + $(ls .gpu-data/crops/train | wc -l) crops," \
     "$(du -sh .gpu-data | cut -f1) data, $(ls .whl)"
