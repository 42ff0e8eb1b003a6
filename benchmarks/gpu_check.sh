#!/usr/bin/env bash
# The GPU checks of the speed work, in one call on a CUDA machine:
#   benchmarks/gpu_check.sh DATA_DIR      (DATA_DIR: MNIST's four .gz files)
# 1. the GPU tests: training on CUDA, CUDA-graphed steps against the same steps run eagerly
#    (bit-identical for the MLP) and against the eager loop, the fallback line, resume, bench;
# 2. `digitlab bench --device cuda`: the tutorial's pipeline, digitlab eager and graphed (seed
#    recipe, 5 epochs), then fast99, best and the public small CNN over 3 seeds.
# Paste both outputs, with the machine line, into docs/benchmarks.md's GPU section.
set -uo pipefail
data="${1:?usage: benchmarks/gpu_check.sh DATA_DIR, the folder of the MNIST .gz files}"
cd "$(dirname "$0")/.."
python -m pytest -m gpu -q -rs tests/training/test_gpu.py
tests=$?
digitlab bench --device cuda --data-dir "$data" --parts seed,presets --seeds 3
bench=$?
exit $(( tests || bench ))
