"""Benchmark: fediverse.object_storage.media_copy against aws s3 sync, s3cmd sync, rclone copy and
s5cmd sync, on the same Ceph RGW over HTTPS. Driven by bench/run.sh (see there for usage).

For each tool, into a fresh bucket: the full copy of <system_root>/cache to s3://BUCKET/cache/,
then the no-op re-run, then (--incremental, for media_copy, aws s3 sync and s5cmd sync) the
incremental scenario: 1 % new rows with files and 0.5 % rows updated in place (new file name and
file) are added, and the tool runs again (media_copy as migrate's copy pass 2 runs it: the media_copy
role's copy, incremental, started in the background and waited for; the time of those two tasks in
the play is reported besides ansible-playbook's); the rows, files and objects are then put back as
they were, and the scenario is run ``--rounds`` times (median).
Wall time, client CPU seconds (user + sys of the whole process tree, from /usr/bin/time -v) and
peak RSS ("Maximum resident set size": the largest process of the tree, e.g. the module's python
under ansible-playbook).
Every tool is asked for the same object headers as the module (public-read ACL, Mastodon's
Cache-Control) where it can. Then the module's peak RSS with 200,000 DB rows.

--scale (issue 22): a peer's full copy at 200,000 objects says nothing new, its re-runs do: one
bucket is populated once by media_copy's full copy, then each tool re-runs against that same bucket
(Bench.scale): the no-op re-run and the incremental scenario with the same 300 changed objects at
every size. ``--compare A.json B.json`` prints the sizes side by side with the issue's targets.
"""

import argparse
import json
import os
import re
import shutil
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

CACHE_CONTROL = "public, max-age=315576000, immutable"
VENV_BIN = os.path.join(REPO, ".venv", "bin")
BENCH_BIN = os.path.join(REPO, ".cache", "bench-venv", "bin")


def timed(cmd, env=None, cwd=None):
    """Run cmd under /usr/bin/time -v: (seconds, peak_rss_mb, rc, output, cpu_seconds)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        start = time.monotonic()
        proc = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name] + cmd, env=env, cwd=cwd,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.monotonic() - start
        text = tf.read()
    match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    rss = int(match.group(1)) / 1024.0 if match else float("nan")
    cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([0-9.]+)", text))
    return seconds, rss, proc.returncode, proc.stdout, cpu


class Bench:
    def __init__(self, services, system_root, dbname, workdir):
        ceph = services["services"]["ceph"]
        pg = services["services"]["postgres"]
        self.endpoint = ceph["https_endpoint"]
        self.ca = ceph["ca_bundle"]
        self.ak = ceph["access_key"]
        self.sk = ceph["secret_key"]
        self.pg = pg
        self.system_root = system_root
        self.src = os.path.join(system_root, "cache")
        self.dbname = dbname
        self.workdir = workdir
        self.s3 = s3_client(self.endpoint, access_key=self.ak, secret_key=self.sk, ca_bundle=self.ca,
                            max_pool_connections=20)
        self.files = sum(len(f) for _d, _s, f in os.walk(self.src))
        self.tiny = False
        self.fixed_changes = None

    def new_bucket(self, tool):
        name = "bench-%s-%s" % (tool, uuid.uuid4().hex[:6])
        self.s3.create_bucket(Bucket=name)
        return name

    def count(self, bucket):
        n = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            n += len(page.get("Contents", []))
        return n

    def present(self, bucket, paths):
        """How many of the files ``paths`` are objects in ``bucket`` (one HEAD each)."""
        from botocore.exceptions import ClientError

        n = 0
        for path in paths:
            try:
                self.s3.head_object(Bucket=bucket, Key=os.path.relpath(path, self.system_root))
                n += 1
            except ClientError:
                pass
        return n

    def newer_than(self, bucket, since):
        """(objects, objects written at or after the wall-clock time ``since``): one full listing."""
        n = newer = 0
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                n += 1
                newer += obj["LastModified"].timestamp() >= since
        return n, newer

    def drop(self, bucket):
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
        for up in self.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []):
            self.s3.abort_multipart_upload(Bucket=bucket, Key=up["Key"], UploadId=up["UploadId"])
        self.s3.delete_bucket(Bucket=bucket)

    # --- commands ---------------------------------------------------------------------------
    def module_args(self, bucket, **extra):
        args = dict(db_host=self.pg["host"], db_port=self.pg["port"], db_name=self.dbname, db_user=self.pg["user"],
                    db_password=self.pg["password"], system_root=self.system_root, endpoint=self.endpoint,
                    ca_bundle=self.ca, access_key=self.ak, secret_key=self.sk, bucket=bucket)
        args.update(extra)
        return args

    def cmd_module(self, bucket, **extra):
        play = os.path.join(self.workdir, "play-%s.yml" % bucket)
        with open(play, "w") as f:
            f.write("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - name: Copy media\n      fediverse.object_storage.media_copy: %s\n"
                    % json.dumps(self.module_args(bucket, **extra)))
        return self.cmd_playbook(play)

    def cmd_playbook(self, play):
        """ansible-playbook of ``play`` on localhost, with the module's interpreter and the timing callback."""
        inv = os.path.join(self.workdir, "inv.ini")
        with open(inv, "w") as f:
            f.write("localhost ansible_connection=local ansible_python_interpreter=%s\n"
                    % os.path.join(VENV_BIN, "python"))
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".cache", "collections"),
                   ANSIBLE_LOCALHOST_WARNING="False", ANSIBLE_NOCOLOR="1",
                   ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "bench", "callback_plugins"),
                   ANSIBLE_CALLBACKS_ENABLED="task_seconds", BENCH_TASK_SECONDS=self.task_seconds_file)
        return [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inv, play], env

    def cmd_pass2(self, bucket, record_dir):
        """migrate's copy pass 2 as the migrate role runs it: the media_copy role's copy (the module started
        in the background, then media_copy_wait), incremental, in a play whose dependency step is done."""
        play = os.path.join(self.workdir, "play-pass2-%s.yml" % bucket)
        role_vars = dict(media_copy_python="none", media_copy_env_file="",
                         media_copy_python_interpreter=os.path.join(VENV_BIN, "python"),
                         media_copy_db_host=self.pg["host"], media_copy_db_port=self.pg["port"],
                         media_copy_db_name=self.dbname, media_copy_db_user=self.pg["user"],
                         media_copy_db_password=self.pg["password"], media_copy_system_root=self.system_root,
                         media_copy_endpoint=self.endpoint, media_copy_ca_bundle=self.ca, media_copy_access_key=self.ak,
                         media_copy_secret_key=self.sk, media_copy_bucket=bucket, media_copy_record_dir=record_dir,
                         media_copy_since_last_run=True, media_copy_label="pass 2",
                         media_copy_progress_file=os.path.join(self.workdir, "progress-%s.json" % bucket))
        with open(play, "w") as f:
            f.write("- hosts: localhost\n  gather_facts: false\n  tasks:\n"
                    "    - name: Copy pass 2\n      ansible.builtin.include_role:\n"
                    "        name: fediverse.object_storage.media_copy\n      vars: %s\n" % json.dumps(role_vars))
        return self.cmd_playbook(play)

    @property
    def task_seconds_file(self):
        return os.path.join(self.workdir, "task-seconds.json")

    PASS2_TASKS = ("Start the copy (pass 2)", "Wait for the copy, showing progress (pass 2)")

    def task_seconds(self):
        """The wall seconds of pass 2's two tasks (start, wait) inside the play of the last run
        (bench/callback_plugins/task_seconds.py)."""
        try:
            with open(self.task_seconds_file) as fh:
                seconds = json.load(fh)
        except (OSError, ValueError):
            return None
        found = [v for k, v in seconds.items() if k.split(" : ")[-1] in self.PASS2_TASKS]
        return sum(found) if len(found) == len(self.PASS2_TASKS) else None

    def env_aws(self):
        return dict(os.environ, AWS_ACCESS_KEY_ID=self.ak, AWS_SECRET_ACCESS_KEY=self.sk, AWS_DEFAULT_REGION="us-east-1",
                    AWS_REQUEST_CHECKSUM_CALCULATION="when_required", AWS_RESPONSE_CHECKSUM_VALIDATION="when_required",
                    AWS_CA_BUNDLE=self.ca, AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")

    def cmd_aws(self, bucket):
        return [os.path.join(BENCH_BIN, "aws"), "s3", "sync", self.src, "s3://%s/cache" % bucket, "--endpoint-url",
                self.endpoint, "--ca-bundle", self.ca, "--only-show-errors", "--acl", "public-read",
                "--cache-control", CACHE_CONTROL], self.env_aws()

    def cmd_s3cmd(self, bucket):
        cfg = os.path.join(self.workdir, "s3cmd.cfg")
        host = self.endpoint.split("://", 1)[1]
        with open(cfg, "w") as f:
            f.write("[default]\naccess_key = %s\nsecret_key = %s\nhost_base = %s\nhost_bucket = %s\nuse_https = True\n"
                    "ca_certs_file = %s\ncheck_ssl_certificate = True\nsignature_v2 = False\nbucket_location = us-east-1\n"
                    % (self.ak, self.sk, host, host, self.ca))
        return [os.path.join(BENCH_BIN, "python"), os.path.join(BENCH_BIN, "s3cmd"), "-c", cfg, "sync", "--acl-public",
                "--no-progress", "--quiet", "--add-header=Cache-Control:%s" % CACHE_CONTROL,
                self.src + "/", "s3://%s/cache/" % bucket], dict(os.environ)

    def cmd_rclone(self, bucket):
        env = dict(os.environ, RCLONE_CONFIG_BENCH_TYPE="s3", RCLONE_CONFIG_BENCH_PROVIDER="Ceph",
                   RCLONE_CONFIG_BENCH_ENDPOINT=self.endpoint, RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=self.ak,
                   RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=self.sk, RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE="true",
                   RCLONE_CONFIG_BENCH_ACL="public-read", RCLONE_CONFIG="/dev/null")
        return [os.path.join(BENCH_BIN, "rclone"), "copy", self.src, "bench:%s/cache" % bucket, "--ca-cert", self.ca,
                "--header-upload", "Cache-Control: %s" % CACHE_CONTROL], env

    def cmd_s5cmd(self, bucket):
        return [os.path.join(BENCH_BIN, "s5cmd"), "--endpoint-url", self.endpoint, "sync", "--acl", "public-read",
                "--cache-control", CACHE_CONTROL, self.src + "/", "s3://%s/cache/" % bucket], self.env_aws()

    # --- the incremental scenario -------------------------------------------------------------
    def db(self):
        import psycopg2

        return psycopg2.connect(host=self.pg["host"], port=self.pg["port"], user=self.pg["user"],
                                password=self.pg["password"], dbname=self.dbname)

    def mutate(self):
        """Add 1 % new rows with files, update 0.5 % of the rows in place (new file name, new file); with
        ``fixed_changes`` (the scale scenario) the same counts at every size: 100 new rows and 50 updated
        (300 objects, as 1 % + 0.5 % of 20,000 objects). Returns what revert() needs and the number of new
        objects."""
        from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon import layout

        conn = self.db()
        with conn, conn.cursor() as cur:
            cur.execute("SELECT min(id), max(id), count(*) FROM media_attachments")
            low, high, count = cur.fetchone()
            new_rows, updated_rows = self.fixed_changes or (max(1, count // 100), max(1, count // 200))
            new_ids = list(range(high + 1, high + 1 + new_rows))
            cur.execute("INSERT INTO media_attachments (id, account_id, remote_url, file_file_name, file_content_type,"
                        " file_storage_schema_version, type, created_at, updated_at, file_updated_at)"
                        " SELECT g, 1, 'https://remote.example/n/' || g || '.jpg', 'n' || g || '.jpg', 'image/jpeg',"
                        " 1, 0, now(), now(), now() FROM unnest(%s::bigint[]) g", (new_ids,))
            cur.execute("SELECT id, file_file_name, updated_at, file_updated_at FROM media_attachments"
                        " WHERE id <= %s AND (id - %s) %% %s = 7 ORDER BY id LIMIT %s",
                        (high, low, max(8, count // updated_rows), updated_rows))
            updated = cur.fetchall()
            cur.execute("UPDATE media_attachments SET file_file_name = 'u' || id || '.jpg', updated_at = now(),"
                        " file_updated_at = now() WHERE id = ANY(%s)", ([u[0] for u in updated],))
        conn.close()
        written = []
        rows = [(i, "n%d.jpg" % i) for i in new_ids] + [(u[0], "u%d.jpg" % u[0]) for u in updated]
        for rid, name in rows:
            ro = layout.row_objects(layout.MEDIA_FILES, {"id": rid, "file_name": name, "content_type": "image/jpeg"},
                                    remote=True, storage_schema_version=1)
            for obj in ro.objects:
                path = os.path.join(self.system_root, obj.key)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(os.urandom(64 if self.tiny else 20 * 1024))
                written.append(path)
        return (new_ids, updated, written), len(written)

    def revert(self, undo, bucket=None):
        """Put the rows and files back; with ``bucket``, delete the objects the tool copied for them too, so
        that the next round starts from the same state."""
        new_ids, updated, written = undo
        if bucket:
            keys = [{"Key": os.path.relpath(path, self.system_root)} for path in written]
            for start in range(0, len(keys), 1000):
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys[start:start + 1000], "Quiet": True})
        conn = self.db()
        with conn, conn.cursor() as cur:
            cur.execute("DELETE FROM media_attachments WHERE id = ANY(%s)", (new_ids,))
            for rid, name, updated_at, file_updated_at in updated:
                cur.execute("UPDATE media_attachments SET file_file_name = %s, updated_at = %s, file_updated_at = %s"
                            " WHERE id = %s", (name, updated_at, file_updated_at, rid))
        conn.close()
        for path in written:
            os.unlink(path)

    def incremental_rounds(self, incr_cmd, env, bucket, copied, record_dir, rounds):
        """``rounds`` runs of the incremental scenario from the same state; the medians."""
        runs = []
        for _round in range(rounds):
            saved = None
            if record_dir:
                saved = record_dir + ".saved"
                shutil.rmtree(saved, ignore_errors=True)
                shutil.copytree(record_dir, saved)
            undo, added = self.mutate()
            try:
                if os.path.exists(self.task_seconds_file):
                    os.unlink(self.task_seconds_file)
                third = timed(incr_cmd, env)
                # At scale, listing the bucket after every round would cost more than the round: HEAD the
                # objects the round added instead (all there, and the bucket's count grew by as many).
                now = copied + self.present(bucket, undo[2]) if self.fixed_changes else self.count(bucket)
                task = self.task_seconds() if record_dir else None
            finally:
                self.revert(undo, bucket)
                if saved:
                    shutil.rmtree(record_dir)
                    os.rename(saved, record_dir)
            runs.append(dict(s=third[0], cpu=third[4], rss=third[1], task_s=task, rc=third[2],
                             ok=third[2] == 0 and now == copied + added, added=added,
                             error=third[3][-2000:] if third[2] else None))
        def med(name):
            values = sorted(r[name] for r in runs if r[name] is not None)
            return values[len(values) // 2] if values else None

        row = dict(incr_s=med("s"), incr_cpu=med("cpu"), incr_rss=med("rss"), incr_added=runs[0]["added"],
                   incr_ok=all(r["ok"] for r in runs), incr_rounds=[dict((k, v) for k, v in r.items() if k != "error")
                                                               for r in runs])
        if record_dir:
            row["incr_task_s"] = med("task_s")
        errors = [r["error"] for r in runs if r["error"]]
        if errors:
            row["incr_error"] = errors[0]
        return row

    def run_tool(self, tool, incremental=False, rounds=3, noop_runs=3, **extra):
        bucket = self.new_bucket(tool.split(":")[0])
        is_module = tool.startswith("module")
        try:
            if is_module:
                record_dir = os.path.join(self.workdir, "records-%s" % bucket)
                cmd, env = self.cmd_module(bucket, record_dir=record_dir, **extra)
                incr_cmd, _env = self.cmd_pass2(bucket, record_dir)
            else:
                cmd, env = getattr(self, "cmd_" + tool)(bucket)
                incr_cmd = cmd
            first = timed(cmd, env)
            copied = self.count(bucket)
            # The no-op re-run is repeatable: ``noop_runs`` runs (one when it takes over a minute), the median
            # run by wall time is reported.
            noops = [timed(cmd, env)]
            while len(noops) < noop_runs and noops[0][0] < 60:
                noops.append(timed(cmd, env))
            noops.sort(key=lambda r: r[0])
            second = noops[len(noops) // 2]
            ok = first[2] == 0 and all(r[2] == 0 for r in noops) and copied == self.files
            row = dict(tool=tool, copy_s=first[0], copy_rss=first[1], copy_cpu=first[4], noop_s=second[0],
                       noop_rss=second[1], noop_cpu=second[4], objects=copied, expected=self.files, ok=ok,
                       noop_runs_s=[round(r[0], 3) for r in noops])
            if not ok:
                row["error"] = (first[3] if first[2] else second[3])[-2000:]
            if is_module and incremental:
                quiet = timed(incr_cmd, env)
                row.update(noop_incr_s=quiet[0], noop_incr_cpu=quiet[4])
                ok = ok and quiet[2] == 0
            if incremental and ok:
                row.update(self.incremental_rounds(incr_cmd, env, bucket, copied, record_dir if is_module else None,
                                                   rounds))
            return row
        finally:
            self.drop(bucket)


    # --- the scale scenario (issue 22) ----------------------------------------------------------
    def noop_median(self, cmd, env, runs):
        """``runs`` no-op re-runs (always all of them): (median run by wall time, wall seconds of each)."""
        done = sorted((timed(cmd, env) for _ in range(runs)), key=lambda r: r[0])
        return done[len(done) // 2], [round(r[0], 3) for r in done], all(r[2] == 0 for r in done)

    def scale(self, tools, rounds, noop_runs, save=None):
        """One bucket, populated once by media_copy (its full copy through ansible-playbook, which writes
        the record pass 2 needs); then for each tool, against that same bucket: the no-op re-run
        (``noop_runs``, median) and the incremental scenario with the same 300 changed objects at every
        size (``rounds``, median). media_copy runs twice: as users run the module (a full listing) and as
        migrate runs pass 2 (the role, ``since_last_run``). A peer's no-op must upload nothing: one listing
        after its no-op runs counts the objects written since they started. ``save(result)`` is called
        after each row (and before the bucket is dropped, which takes minutes at 200,000 objects)."""
        save = save or (lambda result: None)
        self.fixed_changes = (100, 50)
        bucket = self.new_bucket("scale")
        record_dir = os.path.join(self.workdir, "records-%s" % bucket)
        try:
            cmd, env = self.cmd_module(bucket, record_dir=record_dir)
            first = timed(cmd, env)
            copied = self.count(bucket)
            populate = dict(tool="module", copy_s=first[0], copy_cpu=first[4], copy_rss=first[1], objects=copied,
                            expected=self.files, ok=first[2] == 0 and copied == self.files,
                            load=os.getloadavg())
            print(json.dumps(dict(populate=populate)), flush=True)
            if not populate["ok"]:
                populate["error"] = first[3][-2000:]
                save(dict(populate=populate, tools=[]))
                return dict(populate=populate, tools=[])
            pass2, _env = self.cmd_pass2(bucket, record_dir)
            runs = []
            for tool in tools:
                if tool == "module":
                    variants = [("module, full listing", cmd, env, False), ("module, pass 2 (since_last_run)", pass2, env, True)]
                else:
                    tool_cmd, tool_env = getattr(self, "cmd_" + tool)(bucket)
                    variants = [(tool, tool_cmd, tool_env, True)]
                for name, vcmd, venv, incremental in variants:
                    print("== %s ..." % name, flush=True)
                    start, load_before = time.time(), os.getloadavg()
                    second, noop_s, noop_ok = self.noop_median(vcmd, venv, noop_runs)
                    total, written = self.newer_than(bucket, start)
                    # media_copy's full-listing runs rewrite nothing either; its record does change (a
                    # full run writes one), which is what pass 2 then reads, as in a migration.
                    row = dict(tool=name, objects=total, expected=self.files, noop_s=second[0], noop_cpu=second[4],
                               noop_rss=second[1], noop_runs_s=noop_s, noop_uploaded=written,
                               ok=noop_ok and written == 0 and total == self.files, load_before=load_before)
                    if not noop_ok:
                        row["error"] = second[3][-2000:]
                    if incremental and row["ok"]:
                        row.update(self.incremental_rounds(vcmd, venv, bucket, copied,
                                                           record_dir if tool == "module" else None, rounds))
                    row["load_after"] = os.getloadavg()
                    print(json.dumps(row), flush=True)
                    runs.append(row)
                    save(dict(populate=populate, tools=runs))
            return dict(populate=populate, tools=runs)
        finally:
            self.drop(bucket)


def scale_table(reports):
    """Rows at each size side by side: {objects: report} -> markdown. Wall seconds, then the client's CPU
    seconds (user + sys of the whole process tree), which a loaded machine distorts less."""
    sizes = sorted(reports)
    columns = (("no-op (s)", "noop_s"), ("no-op CPU (s)", "noop_cpu"), ("incremental (s)", "incr_s"),
               ("incremental CPU (s)", "incr_cpu"))
    head = ["run"] + ["%s, %s" % (label, "{:,}".format(n)) for label, _key in columns for n in sizes]
    lines = ["| " + " | ".join(head) + " |", "|---" + "|---:" * (len(head) - 1) + "|"]
    names = []
    for n in sizes:
        for r in reports[n]["tools"]:
            if r["tool"] not in names:
                names.append(r["tool"])

    def cell(n, name, key):
        r = next((r for r in reports[n]["tools"] if r["tool"] == name), None)
        if not r or r.get(key) is None:
            return "-"
        ok = r.get("incr_ok", True) if key.startswith("incr") else r.get("ok", True)
        return "%.1f%s" % (r[key], "" if ok else " FAILED")

    for name in names:
        lines.append("| " + " | ".join([name] + [cell(n, name, key) for _label, key in columns for n in sizes]) + " |")
        if any(r.get("incr_task_s") is not None for n in sizes for r in reports[n]["tools"] if r["tool"] == name):
            lines.append("| " + " | ".join(["%s: its two tasks inside the play" % name] + ["" for n in sizes] * 2
                                           + [cell(n, name, "incr_task_s") for n in sizes] + ["" for n in sizes]) + " |")
    pop = [reports[n]["populate"] for n in sizes]
    lines.append("| media_copy's full copy that populated the bucket (s, CPU s) | " + " | ".join(
        ["%.1f" % p["copy_s"] for p in pop] + ["%.1f" % p["copy_cpu"] for p in pop] + [""] * (2 * len(sizes))) + " |")
    lines.append("| load average (1 min) at the start / end of the run | " + " | ".join(
        ["%.1f / %.1f" % (reports[n]["load_at_start"][0], reports[n]["load_at_end"][0]) for n in sizes]
        + [""] * (3 * len(sizes))) + " |")
    return "\n".join(lines)


def scale_targets(reports):
    """Issue 22's scale targets from the largest size (and the smallest, for the growth)."""
    sizes = sorted(reports)
    big = dict((r["tool"], r) for r in reports[sizes[-1]]["tools"])
    small = dict((r["tool"], r) for r in reports[sizes[0]]["tools"])
    p2 = "module, pass 2 (since_last_run)"
    out = {}
    for key, label in (("incr_s", "ansible-playbook"), ("incr_task_s", "pass 2's tasks in the play")):
        if p2 in big and p2 in small and big[p2].get(key) and small[p2].get(key) and len(sizes) > 1:
            out["incremental (%s), %d / %d objects (target <= 1.5)" % (label, sizes[-1], sizes[0])] = \
                big[p2][key] / small[p2][key]
        if p2 in big and "s5cmd" in big and big[p2].get(key) and big["s5cmd"].get("incr_s"):
            out["incremental (%s) / s5cmd's re-run at %d (target <= 0.1)" % (label, sizes[-1])] = \
                big[p2][key] / big["s5cmd"]["incr_s"]
    if p2 in big and p2 in small and big[p2].get("incr_cpu") and small[p2].get("incr_cpu") and len(sizes) > 1:
        out["(context) incremental CPU, %d / %d objects" % (sizes[-1], sizes[0])] = big[p2]["incr_cpu"] / small[p2]["incr_cpu"]
    if p2 in big and "s5cmd" in big and big[p2].get("incr_cpu") and big["s5cmd"].get("incr_cpu"):
        out["(context) incremental CPU / s5cmd's at %d" % sizes[-1]] = big[p2]["incr_cpu"] / big["s5cmd"]["incr_cpu"]
    full = "module, full listing"
    if full in big and "aws" in big:
        out["no-op with a full listing / aws s3 sync's at %d (target <= 0.33)" % sizes[-1]] = \
            big[full]["noop_s"] / big["aws"]["noop_s"]
        out["(context) no-op CPU with a full listing / aws s3 sync's at %d" % sizes[-1]] = \
            big[full]["noop_cpu"] / big["aws"]["noop_cpu"]
    return out


def rss_200k(services, workdir, rows, gen_args):
    """Peak RSS of the module (its own python, run directly) with `rows` DB rows."""
    ceph = services["services"]["ceph"]
    pg = services["services"]["postgres"]
    root = os.path.join(workdir, "rss-system")
    dsn = "host=%s port=%s user=%s password=%s" % (pg["host"], pg["port"], pg["user"], pg["password"])
    t0 = time.monotonic()
    subprocess.run([sys.executable, os.path.join(REPO, "bench", "gen_instance.py"), "--dsn", dsn, "--dbname", "bench_rss",
                    "--objects", str(rows * 2), "--system-root", root] + gen_args, check=True)
    gen_s = time.monotonic() - t0
    client = s3_client(ceph["https_endpoint"], access_key=ceph["access_key"], secret_key=ceph["secret_key"],
                       ca_bundle=ceph["ca_bundle"])
    bucket = "bench-rss-" + uuid.uuid4().hex[:6]
    client.create_bucket(Bucket=bucket)
    args = dict(db_host=pg["host"], db_port=pg["port"], db_name="bench_rss", db_user=pg["user"], db_password=pg["password"],
                system_root=root, endpoint=ceph["https_endpoint"], ca_bundle=ceph["ca_bundle"], access_key=ceph["access_key"],
                secret_key=ceph["secret_key"], bucket=bucket, progress_file=os.path.join(workdir, "rss-progress.json"))
    argfile = os.path.join(workdir, "rss-args.json")
    with open(argfile, "w") as f:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, f)
    env = dict(os.environ, PYTHONPATH=os.path.join(REPO, ".cache", "collections"))
    cmd = [os.path.join(VENV_BIN, "python"), os.path.join(REPO, "plugins", "modules", "media_copy.py"), argfile]
    out = []
    for label in ("copy", "no-op re-run"):
        seconds, rss, rc, text, cpu = timed(cmd, env)
        try:
            result = json.loads(text[text.find("{"):])
        except ValueError:
            result = {"msg": text[-500:]}
        out.append(dict(run=label, seconds=seconds, rss=rss, rc=rc, cpu=cpu, totals=result.get("totals")))
    # drop the bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)
    shutil.rmtree(root, ignore_errors=True)
    return dict(rows=rows, generate_s=gen_s, runs=out)


def per_1000(cpu, objects):
    return 1000.0 * cpu / objects if objects else float("nan")


def table(rows):
    base = next((r for r in rows if r["tool"] == "module"), None)
    lines = ["| tool | full copy (s) | vs module | CPU s / 1,000 objects | no-op re-run (s) | vs module "
             "| no-op CPU (s) | incremental re-run (s) | incremental CPU (s) | peak RSS copy / no-op (MB) | objects |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        rc = "%.2fx" % (r["copy_s"] / base["copy_s"]) if base else "-"
        rn = "%.2fx" % (r["noop_s"] / base["noop_s"]) if base else "-"
        incr = "%.1f%s" % (r["incr_s"], "" if r.get("incr_ok") else " FAILED") if "incr_s" in r else "-"
        incr_cpu = "%.1f" % r["incr_cpu"] if "incr_cpu" in r else "-"
        lines.append("| %s | %.1f | %s | %.2f | %.1f | %s | %.1f | %s | %s | %.0f / %.0f | %d/%d%s |" % (
            r["tool"], r["copy_s"], rc, per_1000(r["copy_cpu"], r["expected"]), r["noop_s"], rn, r["noop_cpu"],
            incr, incr_cpu, r["copy_rss"], r["noop_rss"], r["objects"], r["expected"], "" if r["ok"] else " FAILED"))
        if "incr_task_s" in r:
            lines.append("| %s, incremental re-run: pass 2's tasks (start, wait) inside the running play "
                         "| | | | | | | %.2f | | | |" % (r["tool"], r["incr_task_s"]))
        if "noop_incr_s" in r:
            lines.append("| %s, no-op re-run as pass 2 (role, incremental) | | | | %.1f | %s | %.1f | | | | |" % (
                r["tool"], r["noop_incr_s"], "%.2fx" % (r["noop_incr_s"] / base["noop_s"]) if base else "-",
                r["noop_incr_cpu"]))
    return "\n".join(lines)


def targets(rows):
    """The issue's three ratios, from this run (None where a tool did not run)."""
    by = dict((r["tool"], r) for r in rows)
    module, aws, s5cmd = by.get("module"), by.get("aws"), by.get("s5cmd")
    out = {}
    if module and s5cmd:
        out["full copy, module / s5cmd (target <= 0.85)"] = module["copy_s"] / s5cmd["copy_s"]
    if module and aws:
        out["no-op re-run, module / aws (target <= 0.33)"] = module["noop_s"] / aws["noop_s"]
    peers = [r["incr_s"] for r in (aws, s5cmd) if r and "incr_s" in r]
    if module and "incr_s" in module and peers:
        out["incremental, module pass 2's tasks in the play / faster peer (target <= 0.2)"] = module["incr_task_s"] / min(peers)
        out["incremental, module ansible-playbook / faster peer"] = module["incr_s"] / min(peers)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", help="services.json of `python -m tests.services up`")
    ap.add_argument("--system-root")
    ap.add_argument("--dbname")
    ap.add_argument("--workdir")
    ap.add_argument("--tools", default="module,aws,s3cmd,rclone,s5cmd")
    ap.add_argument("--rss-rows", type=int, default=200000)
    ap.add_argument("--rss-files-every", type=int, default=10)
    ap.add_argument("--module-concurrency", type=int, default=0, help="also run the module with this concurrency")
    ap.add_argument("--out")
    ap.add_argument("--incremental", default="module,aws,s5cmd",
                    help="tools that also run the incremental scenario ('' for none)")
    ap.add_argument("--tiny", action="store_true", help="the instance was generated with --tiny")
    ap.add_argument("--rounds", type=int, default=3, help="incremental scenario rounds per tool (median reported)")
    ap.add_argument("--noop-runs", type=int, default=3, help="no-op re-runs per tool (median reported)")
    ap.add_argument("--scale", action="store_true",
                    help="the scale scenario: one bucket populated by media_copy, every tool's re-runs against it")
    ap.add_argument("--compare", nargs="+", metavar="JSON",
                    help="only print the scale table of these results of --scale side by side")
    args = ap.parse_args()
    if args.compare:
        reports = {}
        for name in args.compare:
            with open(name) as f:
                report = json.load(f)
            reports[report["objects"]] = report
        print(scale_table(reports))
        for name, ratio in scale_targets(reports).items():
            print("%s: %.3f" % (name, ratio))
        return
    for name in ("services", "system_root", "dbname", "workdir", "out"):
        if not getattr(args, name):
            ap.error("--%s is required" % name.replace("_", "-"))
    with open(args.services) as f:
        services = json.load(f)
    bench = Bench(services, args.system_root, args.dbname, args.workdir)
    bench.tiny = args.tiny
    if args.scale:
        load = os.getloadavg()
        report = dict(objects=bench.files, scenario="scale", load_at_start=load)
        def save(result):
            report.update(result)
            report["load_at_end"] = os.getloadavg()
            with open(args.out, "w") as f:
                json.dump(report, f, indent=1)

        save(bench.scale([t for t in args.tools.split(",") if t], args.rounds, args.noop_runs, save))
        print()
        print(scale_table({bench.files: report}))
        print("load average at the start: %.1f %.1f %.1f, at the end: %.1f %.1f %.1f"
              % (tuple(report["load_at_start"]) + tuple(report["load_at_end"])))
        return
    incremental = set(t for t in args.incremental.split(",") if t)
    rows = []
    for tool in [t for t in args.tools.split(",") if t]:
        print("== %s ..." % tool, flush=True)
        row = bench.run_tool(tool, incremental=tool in incremental, rounds=args.rounds, noop_runs=args.noop_runs)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.module_concurrency:
        print("== module, concurrency %d ..." % args.module_concurrency, flush=True)
        row = bench.run_tool("module:c%d" % args.module_concurrency, concurrency=args.module_concurrency)
        print(json.dumps(row), flush=True)
        rows.append(row)
    report = {"objects": bench.files, "tools": rows, "targets": targets(rows), "load_at_end": os.getloadavg()}
    if args.rss_rows:
        print("== module peak RSS with %d DB rows ..." % args.rss_rows, flush=True)
        report["rss"] = rss_200k(services, args.workdir, args.rss_rows,
                                 ["--files-every", str(args.rss_files_every), "--tiny"])
        print(json.dumps(report["rss"]), flush=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)
    print()
    print("%d objects under cache/ (%s)" % (bench.files, args.system_root))
    print(table(rows))
    for name, ratio in report["targets"].items():
        print("%s: %.2f" % (name, ratio))
    print("load average at the end: %.1f %.1f %.1f" % report["load_at_end"])
    if "rss" in report:
        for r in report["rss"]["runs"]:
            print("module with %d DB rows, %s: %.1f s, peak RSS %.0f MB, totals %s" % (
                args.rss_rows, r["run"], r["seconds"], r["rss"], r["totals"]))


if __name__ == "__main__":
    main()
