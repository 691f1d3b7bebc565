#!/usr/bin/env bash
# Install what the demo and the test suite need on a Debian 12 / Ubuntu 24.04 machine, as root:
# Debian packages (Ceph RGW, PostgreSQL, nginx, podman, Chromium), a virtualenv (.venv) with the pinned
# Python dependencies (requirements/test.txt: the newest ansible-core) and one (.venv-oldest) with the
# oldest ansible-core the collection supports (requirements/oldest.txt). Safe to re-run: each step is
# skipped when already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  ceph-mon ceph-osd radosgw ceph-common
  postgresql
  nginx
  podman runc debootstrap uidmap slirp4netns fuse-overlayfs
  python3 python3-venv python3-boto3 python3-psycopg2
  openssl curl ca-certificates git rsync procps iproute2
  sudo  # tests/admin_user.py: playbooks run as an admin with sudo (become)
  chromium chromium-driver  # tests/browser_support.py: the browser tests (headless Chromium, ChromeDriver)
)

log() { printf '[bootstrap] %s\n' "$*"; }

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root to install: ${missing[*]}" >&2
    exit 1
  fi
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # The packages' own services are not used (the harness starts throwaway copies on loopback).
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl disable --now nginx postgresql >/dev/null 2>&1 || true
  fi
fi

# The first of the candidates (after CHECK, a Python statement that exits non-zero for a Python
# not wanted) that exists and can make a virtualenv.
first_python() {
  local check=$1 c
  shift
  for c in "$@"; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c "import sys, venv, ensurepip; $check" >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

# The newest Python here: ansible-core 2.21 needs >= 3.12 (pyenv has 3.13 on the project's machines).
PY=$(first_python pass "${PYTHON:-}" "$HOME"/.pyenv/versions/3.13*/bin/python3 python3.13 \
       "$HOME"/.pyenv/versions/3.12*/bin/python3 python3.12 python3) || { echo "bootstrap: no Python 3 with venv found" >&2; exit 1; }
stamp=".venv/.requirements.sha256"
want="$(sha256sum requirements/test.txt | cut -d' ' -f1) $("$PY" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "virtualenv .venv with $PY"
  rm -rf .venv
  "$PY" -m venv .venv
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements/test.txt
  echo "$want" > "$stamp"
fi

# The oldest ansible-core that meta/runtime.yml admits (requires_ansible), in .venv-oldest, for the
# tests that run migrate.yml and rollback.yml with it (tests/integration/test_oldest_ansible.py). A
# Python that ansible-core 2.17 supports as a controller (3.10-3.12; Debian 12's python3 is 3.11).
OLD_PY=$(first_python 'sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' "${PYTHON_OLDEST:-}" \
           "$HOME"/.pyenv/versions/3.11*/bin/python3 python3.11 "$HOME"/.pyenv/versions/3.12*/bin/python3 \
           python3.12 "$HOME"/.pyenv/versions/3.10*/bin/python3 python3.10 python3) || { echo "bootstrap: no Python 3.10-3.12 with venv found (for .venv-oldest)" >&2; exit 1; }
stamp=".venv-oldest/.requirements.sha256"
want="$(sha256sum requirements/oldest.txt | cut -d' ' -f1) $("$OLD_PY" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x .venv-oldest/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  log "virtualenv .venv-oldest with $OLD_PY"
  rm -rf .venv-oldest
  "$OLD_PY" -m venv .venv-oldest
  .venv-oldest/bin/pip install -q -r requirements/oldest.txt
  # The collections the tests use besides this one (the ansible.posix.json callback), unpacked from
  # the `ansible` package of the same release (requirements/oldest.txt, line "# collections:")
  # rather than installing all of its ~100 collections.
  read -r package collections < <(sed -n 's/^# collections: *//p' requirements/oldest.txt)
  wheels=$(mktemp -d)
  .venv-oldest/bin/pip download -q --no-deps --only-binary=:all: -d "$wheels" "$package"
  .venv-oldest/bin/python - "$wheels"/*.whl $collections <<'PYEOF'
import sys, sysconfig, zipfile
wheel, names = sys.argv[1], sys.argv[2:]
prefixes = tuple("ansible_collections/%s/" % name.replace(".", "/") for name in names)
with zipfile.ZipFile(wheel) as whl:
    members = [m for m in whl.namelist() if m.startswith(prefixes)]
    missing = [p for p in prefixes if not any(m.startswith(p) for m in members)]
    if missing:
        sys.exit("bootstrap: %s has no %s" % (wheel, missing))
    whl.extractall(sysconfig.get_paths()["purelib"], members)
PYEOF
  rm -rf "$wheels"
  echo "$want" > "$stamp"
fi

# The collection as Ansible finds it: .cache/collections/ansible_collections/fediverse/object_storage
mkdir -p .cache/collections/ansible_collections/fediverse
ln -sfn "$PWD" .cache/collections/ansible_collections/fediverse/object_storage
for v in .venv .venv-oldest; do
  log "ready: $v: ansible-core $($v/bin/python -c 'import ansible.release as r; print(r.__version__)') on $($v/bin/python --version)"
done
