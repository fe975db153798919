#!/usr/bin/env bash
# Creates the project-local virtual environment with PyTorch 2.11.0 from PyPI: libtorch for
# the build (LIBTORCH_USE_PYTORCH=1) and the independent reference for cross-checks and
# benchmarks. Idempotent: does nothing when the environment is already right.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.venv
want_torch=2.11.0
if [ -x "$venv/bin/python" ] && "$venv/bin/python" - <<PY 2>/dev/null
import torch, numpy, sklearn, scipy
assert torch.__version__.split('+')[0] == "$want_torch", torch.__version__
PY
then
  exit 0
fi
echo "setup-torch: installing torch==$want_torch, numpy, scikit-learn, scipy into $venv (about 5 GB, once)" >&2
python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check "torch==$want_torch" numpy scikit-learn scipy
"$venv/bin/python" -c "import torch; print('setup-torch: torch', torch.__version__)" >&2
