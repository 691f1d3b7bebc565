"""Scale measurements of media_copy (issue 15), run by hand, not a test:

    python bench/scale.py --services STATE/services.json --workdir DIR --rows 1000000 --files-every 1000
    python bench/scale.py --services STATE/services.json --workdir DIR --objects 200000

--rows N: peak RSS while the module enumerates N DB rows (files for one row in --files-every, the
others "missing source": every row is still read, stat'ed and counted).
--objects N: a full copy of N tiny (64-byte) objects into a fresh bucket, then a no-op re-run.
The module runs as its own python process (no ansible-playbook), under /usr/bin/time -v:
wall seconds, CPU seconds (user + sys) and peak RSS, and the load average before and after it
(the machine may be shared). Prints one JSON line per run; --out FILE writes the same lines there.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(REPO, ".cache", "collections"), REPO):
    if p not in sys.path:
        sys.path.insert(0, p)

from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client  # noqa: E402

VENV_PY = os.path.join(REPO, ".venv", "bin", "python")


def time_v(cmd, env):
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name] + cmd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        wall = time.monotonic() - start
        text = tf.read()

    def field(name):
        m = re.search(re.escape(name) + r": ([0-9.]+)", text)
        return float(m.group(1)) if m else float("nan")

    out = proc.stdout
    try:
        result = json.loads(out[out.find("{"):])
    except ValueError:
        result = {"msg": out[-800:]}
    return dict(wall_s=round(wall, 1), cpu_s=round(field("User time (seconds)") + field("System time (seconds)"), 1),
                rss_mb=round(field("Maximum resident set size (kbytes)") / 1024.0, 1), rc=proc.returncode,
                totals=result.get("totals"), msg=result.get("msg"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--rows", type=int, default=0)
    ap.add_argument("--files-every", type=int, default=1000)
    ap.add_argument("--objects", type=int, default=0)
    ap.add_argument("--out", help="also write the JSON lines to this file")
    args = ap.parse_args()
    if args.out:
        open(args.out, "w").close()  # noqa: SIM115 - truncate; emit() appends

    def emit(record):
        line = json.dumps(record)
        print(line, flush=True)
        if args.out:
            with open(args.out, "a") as fh:
                fh.write(line + "\n")

    with open(args.services) as fh:
        services = json.load(fh)["services"]
    ceph, pg = services["ceph"], services["postgres"]
    dsn = "host=%s port=%s user=%s password=%s" % (pg["host"], pg["port"], pg["user"], pg["password"])
    client = s3_client(ceph["https_endpoint"], access_key=ceph["access_key"], secret_key=ceph["secret_key"],
                       ca_bundle=ceph["ca_bundle"])
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, ".cache", "collections"))
    jobs = []
    if args.rows:
        jobs.append(("rows", args.rows * 2, ["--files-every", str(args.files_every), "--tiny"]))
    if args.objects:
        jobs.append(("objects", args.objects, ["--tiny"]))
    for label, objects, gen_args in jobs:
        db = "scale_%s" % label
        root = os.path.join(args.workdir, "system-" + label)
        t0 = time.monotonic()
        subprocess.run([sys.executable, os.path.join(REPO, "bench", "gen_instance.py"), "--dsn", dsn, "--dbname", db,
                        "--objects", str(objects), "--system-root", root] + gen_args, check=True)
        emit({"generated": label, "objects": objects, "seconds": round(time.monotonic() - t0, 1)})
        bucket = "scale-%s-%s" % (label, uuid.uuid4().hex[:6])
        client.create_bucket(Bucket=bucket)
        margs = dict(db_host=pg["host"], db_port=pg["port"], db_name=db, db_user=pg["user"], db_password=pg["password"],
                     system_root=root, endpoint=ceph["https_endpoint"], ca_bundle=ceph["ca_bundle"],
                     access_key=ceph["access_key"], secret_key=ceph["secret_key"], bucket=bucket,
                     record_dir=os.path.join(args.workdir, "records"), since_last_run=True)
        argfile = os.path.join(args.workdir, "args-%s.json" % label)
        with open(argfile, "w") as f:
            json.dump({"ANSIBLE_MODULE_ARGS": margs}, f)
        cmd = [VENV_PY, os.path.join(REPO, "plugins", "modules", "media_copy.py"), argfile]
        for run in ("copy", "no-op re-run"):
            load_before = os.getloadavg()
            row = time_v(cmd, env)
            row.update(job=label, objects=objects, run=run, load_before=load_before, load_after=os.getloadavg())
            done = (row["totals"] or {}).get("objects") or 0
            if row["wall_s"] > 0 and done:
                row["objects_per_s"] = round(done / row["wall_s"], 1)
                row["cpu_s_per_1000"] = round(1000.0 * row["cpu_s"] / done, 3)
            emit(row)


if __name__ == "__main__":
    main()
