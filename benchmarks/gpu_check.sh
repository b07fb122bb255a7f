#!/usr/bin/env bash
# The GPU check (issue 14; docs/scale.md): NTK vs Jacobian oracle in float64, the GD step against
# torch.mm, a float64/float32 slice, and two concurrent leases; one table, <= 5 minutes on a GPU.
# Without CUDA it says so and runs the CPU half. Uses $PYTHON (default: .venv/bin/python).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python
exec timeout 300 "$PY" benchmarks/gpu_check.py "$@"
