#!/usr/bin/env bash
# Every benchmark behind the README's tables and plots, then the tables themselves.
# About 150 minutes on a 2-core CPU. Run from the repository root:  bash benchmarks/all.sh
set -euo pipefail
pip install -q -e '.[bench]'
python benchmarks/rd.py
python benchmarks/rd.py --codecs nnc --refine 10 --nnc-qualities 0.2 0.4 0.6 0.8 1   # ~50 min
python benchmarks/bpp_target.py
python benchmarks/speed.py          # last: its timings want a quiet machine
python benchmarks/report.py
