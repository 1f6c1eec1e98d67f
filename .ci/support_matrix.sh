#!/usr/bin/env bash
# The package's tests on one Python and one torch release, in a fresh virtual environment:
#
#   bash .ci/support_matrix.sh PYTHON TORCH_VERSION [WHEEL_FOLDER]
#   bash .ci/support_matrix.sh ~/.pyenv/versions/3.9.18/bin/python 2.4.1
#
# installs torch==TORCH_VERSION (from WHEEL_FOLDER if given, else the configured index), numpy, the test
# tools and the build requirements, builds and installs fastmmd from this tree without build isolation
# (so that the extension is compiled against that Python), and runs the tests of the fastmmd package that
# need none of the optional libraries (gan, torchmetrics, Lightning: those run in the main test command).
# Prints one summary line; exits with pytest's status. docs/support.md lists the combinations run.
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bash .ci/support_matrix.sh PYTHON TORCH_VERSION [WHEEL_FOLDER]" >&2
    exit 2
fi
python_bin="$1"
torch_version="$2"
links=()
if [ $# -ge 3 ]; then links=(--find-links "$3"); fi
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

"$python_bin" -m venv "$work/venv"
py="$work/venv/bin/python"
"$py" -m pip install --quiet "${links[@]}" "torch==$torch_version" numpy pytest hypothesis "pybind11>=2.10" "setuptools>=64" wheel
"$py" -m pip install --quiet --no-build-isolation --no-deps "$repo"

cd "$work"  # from outside the tree: its fastmmd/ folder would shadow the installed package
versions="$("$py" -c "
import sys, fastmmd, os, torch
assert os.path.realpath(fastmmd.__file__).startswith(os.path.realpath(sys.prefix)), fastmmd.__file__
try:
    import triton; t = triton.__version__
except ImportError:
    t = 'none'
print(f'python {sys.version.split()[0]}, torch {torch.__version__}, triton {t}, numpy {__import__(\"numpy\").__version__}')")"
cd "$repo"  # the tests' conftest; the pytest script does not put the working folder on sys.path
status=0
"$work/venv/bin/pytest" -q -p no:cacheprovider -m "not cuda" \
    tests/test_mmd2.py tests/test_kernels.py tests/test_cpu_variants.py tests/test_kernel_matmul.py \
    tests/test_mmd2_and_variance.py tests/test_kid.py tests/test_mmd_test.py tests/test_smmd.py \
    tests/test_witness.py tests/test_opcheck.py tests/test_determinism.py tests/test_validation.py \
    tests/test_pair_sum.py tests/test_median_bandwidth.py tests/test_relative_mmd_test.py \
    tests/test_numerics.py tests/test_distributed.py tests/test_triton.py tests/test_triton_kernel_matmul.py \
    > "$work/pytest.log" 2>&1 || status=$?
tail -n 30 "$work/pytest.log" | grep -E "^(FAILED|ERROR)" || true
echo "$versions: $(tail -n 1 "$work/pytest.log")"
exit "$status"
