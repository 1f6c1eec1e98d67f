#!/usr/bin/env bash
# The wheel a user would install: built from the source tree in pip's isolated build environment (no native
# flags: setup.py compiles the instruction-set variants), installed into a fresh virtual environment, and
# used from outside the repository. Torch comes from the environment that runs this (the venv sees its
# site-packages); fastmmd must come from the wheel.
set -euo pipefail
cd "$(dirname "$0")/.."
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python -m pip wheel --no-deps --quiet --wheel-dir "$work/dist" .
python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/python" -m pip install --no-deps --no-index --quiet "$work"/dist/fastmmd-*.whl

cd "$work"
cat > smoke.py <<'EOF'
import os
import sys

import torch

import fastmmd
from fastmmd.backends.cpu import cpu_variant
from fastmmd.backends.cpu_variants import built_variants

venv = os.path.realpath(sys.prefix)
assert os.path.realpath(fastmmd.__file__).startswith(venv), f"fastmmd imported from {fastmmd.__file__}, not the wheel"
choice, reason = cpu_variant()
assert choice is not None, reason
x = torch.randn(257, 19, dtype=torch.float64)
y = torch.randn(190, 19, dtype=torch.float64) + 0.3
fused = fastmmd.mmd2(x, y, kernel=fastmmd.Gaussian(bandwidth=[2.0, 4.0]), backend="cpu")
reference = fastmmd.mmd2(x, y, kernel=fastmmd.Gaussian(bandwidth=[2.0, 4.0]), backend="reference")
assert abs(float(fused - reference)) <= 1e-12 * abs(float(reference)) + 1e-15, (fused, reference)
print(f"wheel smoke: {choice.name} of {', '.join(built_variants())}, mmd2 {float(fused):.6g} = reference")
EOF
"$work/venv/bin/python" smoke.py
for variant in $("$work/venv/bin/python" -c "
from fastmmd.backends.cpu_variants import REQUIRED_FEATURES, built_variants, cpu_features
f = cpu_features()
print(' '.join(v for v in built_variants() if all(f.get(r, False) for r in REQUIRED_FEATURES[v])))"); do
    FASTMMD_CPU_ISA="$variant" "$work/venv/bin/python" smoke.py
done
"$work/venv/bin/python" -m fastmmd.cli.info | grep "C++ backend"
