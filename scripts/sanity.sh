#!/usr/bin/env bash
# ansible-test sanity on a copy of the collection in a temp ansible_collections/fediverse/object_storage.
# Works offline: ansible-test's per-test virtualenvs normally download a get-pip script from the
# internet; a stand-in that installs a locally downloaded pip wheel is put in its cache instead.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate

PY_VERSION=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
PIP_VERSION=$(python - <<'PYEOF'
import re, ansible_test, pathlib
src = (pathlib.Path(ansible_test.__file__).parent / "_internal/python_requirements.py").read_text()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
PYEOF
)
wheels="$PWD/.cache/pip-wheels"
getpip="$HOME/.ansible/test/cache/get_pip_${PIP_VERSION//./_}.py"
if [ ! -f "$getpip" ] || ! grep -q fediverse-object-storage "$getpip"; then
  mkdir -p "$wheels" "$(dirname "$getpip")"
  ls "$wheels"/pip-"$PIP_VERSION"-*.whl >/dev/null 2>&1 || pip download -q --no-deps -d "$wheels" "pip==$PIP_VERSION"
  wheel=$(ls "$wheels"/pip-"$PIP_VERSION"-*.whl | head -1)
  cat > "$getpip" <<PYEOF
# get-pip stand-in written by fediverse-object-storage scripts/sanity.sh (no internet here)
import sys
sys.path.insert(0, "$wheel")
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
sys.exit(main(["install", "--find-links", "$wheels"] + args))
PYEOF
fi

# Sanity runs on the collection as it is installed: built (galaxy.yml's build_ignore applies) and
# installed into a temp collections path.
work=$(mktemp -d /tmp/fos-sanity-XXXXXX)
trap 'rm -rf "$work"' EXIT
ansible-galaxy collection build -f --output-path "$work" . >/dev/null
# (its own collections path: a copy found on ANSIBLE_COLLECTIONS_PATH would count as "already installed")
ANSIBLE_COLLECTIONS_PATH="$work/collections" ansible-galaxy collection install --offline --force \
  -p "$work/collections" "$work"/fediverse-object_storage-*.tar.gz >/dev/null
cd "$work/collections/ansible_collections/fediverse/object_storage"
ansible-test sanity --python "$PY_VERSION" --color no "$@"
