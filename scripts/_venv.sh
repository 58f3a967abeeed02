# Sourced by scripts/run and scripts/test: make or reuse .venv inside the checkout
# and install the package with the extras named in $LSM_EXTRAS. Re-installs only
# when pyproject.toml changed since the last install.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp="$venv/.lsm-installed-$LSM_EXTRAS"
if [ ! -f "$stamp" ] || [ "$root/pyproject.toml" -nt "$stamp" ]; then
  "$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
  # The distribution was called "lsm" until that name turned out to be taken
  # on the package index: drop the old one so that only lsm-leveldb owns `lsm`.
  if "$venv/bin/python" -m pip show -q lsm >/dev/null 2>&1; then
    "$venv/bin/python" -m pip uninstall -q -y lsm
  fi
  "$venv/bin/python" -m pip install -q -e "$root[$LSM_EXTRAS]"
  touch "$stamp"
fi
# An editable install leaves lsm's modules uncompiled (a regular pip install
# compiles them). Where PYTHONDONTWRITEBYTECODE is set, as in many container
# images and on the machine these scripts were written on, every process --
# each compactor, each command-line call -- would then compile them afresh,
# ~50 ms of CPU. Up-to-date files are skipped: ~0.1 s when nothing changed.
"$venv/bin/python" -m compileall -q "$root/lsm" >/dev/null
PY="$venv/bin/python"
cd "$root"
