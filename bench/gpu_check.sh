#!/usr/bin/env bash
# The seed's table on a GPU machine without Docker, TensorFlow or network, within a lease:
#
#     bench/gpu_check.sh WHEELS_DIR RESULTS_DIR [--budget-minutes 7] [--repeats N] [--quick]
#
# WHEELS_DIR holds what such a machine may lack for Keras 3 (keras 3.15.1, namex 0.1.0,
# optree 0.20.0, as .whl files) and, for GPU telemetry, nvidia-ml-py unless it is installed
# (without it the cells run and their records say telemetry was not available); they are
# installed from there into RESULTS_DIR/site, never from the network. PyTorch and JAX (with
# its CUDA plugin) must be installed already. The cells run with the local executor in this
# interpreter: the CPU baseline first, then the GPU cells by value, each with a time limit,
# ending within --budget-minutes (default 7) with what was measured. The report is printed last;
# RESULTS_DIR/gpu_check.tgz holds the records, report, chart and machine facts (a few hundred kB).
# --quick shrinks every cell (a smoke test, e.g. on a CPU-only host, where the GPU cells are
# skipped with the reason). Exit status 3: no GPU cell was measured.
set -euo pipefail
if [ $# -lt 2 ]; then
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
wheels=$1
results=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
python=${PYTHON:-python3}

mkdir -p "$results"
# GPU energy, clocks and throttling are read through nvidia-ml-py: without it the GPU cells still run,
# and their records say GPU telemetry was not available. Say so before spending the GPU's time.
if command -v nvidia-smi >/dev/null && ! ls "$wheels"/nvidia_ml_py-*.whl >/dev/null 2>&1 \
    && ! "$python" -c "import importlib.metadata as m; m.version('nvidia-ml-py')" 2>/dev/null; then
    echo "warning: nvidia-ml-py is not installed and $wheels has no nvidia_ml_py wheel: no GPU energy, clocks or" \
         "throttling will be recorded (fetch it elsewhere with pip download --no-deps nvidia-ml-py, about 50 kB)" >&2
fi
"$python" -m pip install --quiet --no-index --no-deps --no-compile --disable-pip-version-check \
    --upgrade --target "$results/site" "$wheels"/*.whl
export PYTHONPATH="$results/site:$here/..${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" "$here/gpu_check.py" --results "$results" "$@"
