"""Benchmark scenario "gateway" (issue 22 item 2): every tool copies small objects through a Vultr-like
gateway - a real nginx in front of the Ceph RGW, TLS there, ``limit_req`` at ``--rate`` requests/s with a
burst of a tenth of a second, 503 with an S3 SlowDown body over it (tests/s3_gateway.py) - once with its
defaults and once with its documented rate option. Reported per run: wall time against the floor
(objects / rate), the 503s the gateway answered (its access log), the objects missing from the bucket.
Then media_copy's check-mode estimate against the real copy's time through the same gateway (issue 22
item 4): with the cap (``max_requests_per_second``), and with the rate the last run held (its copy record).

Driven by bench/run.sh --gateway RATE (see there). Not a test: prints a table and writes JSON.
"""

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for p in (os.path.join(REPO, ".cache", "collections"), REPO, os.path.join(REPO, "bench")):
    if p not in sys.path:
        sys.path.insert(0, p)

from bench import Bench, timed  # noqa: E402

from tests.s3_gateway import Gateway  # noqa: E402
from tests.services.nginx import Nginx  # noqa: E402


class _RGW(object):
    def __init__(self, ceph):
        self.http_endpoint = ceph["http_endpoint"]


# Each tool's documented way to hold a request rate (None: it has none).
RATE_OPTIONS = {
    "module": "max_requests_per_second: RATE",
    "aws": "AWS_RETRY_MODE=adaptive (botocore's client-side rate limiter)",
    "s3cmd": None,
    "rclone": "--tpslimit RATE",
    "s5cmd": None,
}


class GatewayBench(Bench):
    """Bench's tools, pointed at the gateway; buckets are made, counted and dropped directly on the RGW."""

    def __init__(self, services, system_root, dbname, workdir, gateway):
        super().__init__(services, system_root, dbname, workdir)
        self.gateway = gateway
        self.endpoint = gateway.endpoint
        self.ca = gateway.ca_bundle

    def module_json(self, bucket, check=False, **extra):
        cmd, env = self.cmd_module(bucket, **extra)
        if check:
            cmd = cmd + ["--check"]
        return cmd, dict(env, ANSIBLE_STDOUT_CALLBACK="json")

    @staticmethod
    def module_result(output):
        try:
            data = json.loads(output[output.index("{"):])
            return data["plays"][0]["tasks"][0]["hosts"]["localhost"]
        except (ValueError, KeyError, IndexError):
            return {}

    def one(self, tool, variant, rate, timeout=600):
        bucket = self.new_bucket(tool)
        result = {}
        try:
            extra_env = {}
            if tool == "module":
                extra = dict(max_requests_per_second=rate) if variant == "rate" else {}
                cmd, env = self.module_json(bucket, record_dir=os.path.join(self.workdir, "records-" + bucket), **extra)
            else:
                cmd, env = getattr(self, "cmd_" + tool)(bucket)
                if variant == "rate" and tool == "rclone":
                    cmd = cmd + ["--tpslimit", str(rate)]
                if variant == "rate" and tool == "aws":
                    extra_env = dict(AWS_RETRY_MODE="adaptive", AWS_MAX_ATTEMPTS="10")
            self.gateway.reset_log()
            seconds, rss, rc, output, cpu = timed(["timeout", str(timeout)] + cmd, dict(env, **extra_env))
            requests, refused = self.gateway.counts()
            copied = self.count(bucket)
            row = dict(tool=tool, variant=variant, option=RATE_OPTIONS[tool] if variant == "rate" else "defaults",
                       seconds=round(seconds, 2), floor=round(self.files / float(rate), 2),
                       ratio=round(seconds / (self.files / float(rate)), 3), requests=requests, refused=refused,
                       refused_per_object=round(refused / float(self.files), 4), objects=copied, expected=self.files,
                       missing=self.files - copied, rc=rc, cpu=round(cpu, 1))
            if tool == "module":
                result = self.module_result(output)
                row["module_seconds"] = result.get("seconds")
                row["module_requests"] = result.get("requests")
                row["pacing"] = result.get("pacing")
                row["record_dir"] = os.path.join(self.workdir, "records-" + bucket)
            if rc != 0:
                row["error"] = output[-1500:]
            return row, bucket
        except BaseException:
            self.drop(bucket)
            raise

    def estimate(self, bucket, **extra):
        """media_copy in check mode on ``bucket`` (emptied first): its estimate."""
        self.empty(bucket)
        cmd, env = self.module_json(bucket, check=True, **extra)
        self.gateway.reset_log()
        _seconds, _rss, rc, output, _cpu = timed(cmd, env)
        result = self.module_result(output)
        return result.get("estimate") or {"error": output[-1500:], "rc": rc}

    def empty(self, bucket):
        for page in self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})


def table(rows, rate):
    head = "%-8s %-60s %8s %8s %6s %6s %8s %9s" % ("tool", "options", "wall s", "floor s", "x floor", "503s",
                                                   "503/obj", "missing")
    lines = ["through the gateway at %s requests/s (burst %s), %d objects" % (rate, rows[0]["burst"], rows[0]["expected"]),
             head]
    for r in rows:
        lines.append("%-8s %-60s %8.1f %8.1f %6.2f %6d %8.3f %9d%s" % (
            r["tool"], r["option"][:60], r["seconds"], r["floor"], r["ratio"], r["refused"], r["refused_per_object"],
            r["missing"], "" if r["rc"] == 0 else "  (exit %d)" % r["rc"]))
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--services", required=True)
    ap.add_argument("--system-root", required=True)
    ap.add_argument("--dbname", required=True)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--tools", default="module,aws,s3cmd,rclone,s5cmd")
    ap.add_argument("--rate", type=int, default=150)
    ap.add_argument("--burst", type=int, default=0, help="default: a tenth of a second's worth of --rate")
    ap.add_argument("--timeout", type=int, default=600, help="seconds one tool's run may take")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.services) as fh:
        services = json.load(fh)
    burst = args.burst or max(1, args.rate // 10)
    nginx = Nginx()
    gateway = Gateway(nginx, _RGW(services["services"]["ceph"]), args.rate, burst, workers=2).start()
    rows = []
    out = {"rate": args.rate, "burst": burst, "rows": rows, "estimates": []}
    try:
        bench = GatewayBench(services, args.system_root, args.dbname, args.workdir, gateway)
        for tool in args.tools.split(","):
            variants = ["defaults"] + (["rate"] if RATE_OPTIONS[tool] else [])
            for variant in variants:
                row, bucket = bench.one(tool, variant, args.rate, args.timeout)
                row["burst"] = burst
                rows.append(row)
                print(json.dumps(dict((k, v) for k, v in row.items() if k != "error")), flush=True)
                try:
                    if tool == "module":
                        # Check mode's estimate for the same copy: with the cap, and with the rate this
                        # run held (its copy record), against this run's real time.
                        if variant == "rate":
                            est = bench.estimate(bucket, max_requests_per_second=args.rate)
                        else:
                            est = bench.estimate(bucket, record_dir=row["record_dir"])
                        entry = dict(variant=variant, estimate=est, real_seconds=row["seconds"],
                                     real_module_seconds=row.get("module_seconds"))
                        if est.get("seconds"):
                            entry["estimate_vs_real"] = round(est["seconds"] / row["seconds"], 3)
                            if row.get("module_seconds"):
                                entry["estimate_vs_module_seconds"] = round(est["seconds"] / row["module_seconds"], 3)
                        out["estimates"].append(entry)
                        print(json.dumps(entry), flush=True)
                finally:
                    bench.drop(bucket)
                time.sleep(2)  # the gateway's bucket drains between runs
    finally:
        nginx.stop()
        with open(args.out, "w") as fh:
            json.dump(out, fh, indent=1)
    if rows:
        print(table(rows, args.rate))
    for e in out["estimates"]:
        print("check-mode estimate (%s run): %s s at %s requests/s (%s); real copy %s s (module %s s): %s" % (
            e["variant"], e["estimate"].get("seconds"), e["estimate"].get("rate"), e["estimate"].get("rate_from"),
            e["real_seconds"], e["real_module_seconds"], e.get("estimate_vs_real")))


if __name__ == "__main__":
    main()
