#!/usr/bin/env bash
# Install what the demo and the test suite need on a Debian 12 / Ubuntu 24.04 machine, as root:
# Debian packages (Ceph RGW, PostgreSQL, nginx, podman) and a virtualenv (.venv) with the pinned
# Python dependencies. Safe to re-run: each step is skipped when already done.
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

# The newest Python here: ansible-core 2.21 needs >= 3.12 (pyenv has 3.13 on the project's machines).
pick_python() {
  local c
  for c in "${PYTHON:-}" "$HOME"/.pyenv/versions/3.13*/bin/python3 python3.13 \
           "$HOME"/.pyenv/versions/3.12*/bin/python3 python3.12 python3; do
    [ -n "$c" ] || continue
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      command -v "$c"; return 0
    fi
  done
  return 1
}

PY=$(pick_python) || { echo "bootstrap: no Python 3 with venv found" >&2; exit 1; }
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

# The collection as Ansible finds it: .cache/collections/ansible_collections/fediverse/object_storage
mkdir -p .cache/collections/ansible_collections/fediverse
ln -sfn "$PWD" .cache/collections/ansible_collections/fediverse/object_storage
log "ready: ansible-core $(.venv/bin/python -c 'import ansible.release as r; print(r.__version__)') on $(.venv/bin/python --version)"
