#!/usr/bin/env bash
# The demo: migrate a synthetic Mastodon's media to an embedded Ceph RGW (the engine of Vultr Object
# Storage) through playbooks/migrate.yml, then fetch one media URL through the nginx proxy (X-Cache: HIT).
# Installs what it needs (scripts/bootstrap.sh); run as root on Debian 12 / Ubuntu 24.04.
# Optional argument: the proxy mode, directory (default), system or subdomain.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
exec .venv/bin/python scripts/demo.py "$@"
