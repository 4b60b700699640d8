#!/usr/bin/env bash
# Every benchmark behind the README's tables and plots, then the tables themselves.
# About 140 minutes on a 2-core CPU. Run from the repository root:  bash benchmarks/all.sh
set -euo pipefail
pip install -q -e '.[bench]'
python benchmarks/rd.py
python benchmarks/rd.py --codecs nnc --refine 5   # ~40 min
python benchmarks/bpp_target.py
python benchmarks/speed.py          # last: its timings want a quiet machine
python benchmarks/report.py
