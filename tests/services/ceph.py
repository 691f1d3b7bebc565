"""A throwaway single-node Ceph RGW (the engine Vultr Object Storage runs).

One ceph-mon, one memstore ceph-osd (data in RAM), one radosgw with a beast frontend serving
HTTP and HTTPS on loopback. Auth is off inside the cluster (``ms mon client mode = crc secure``
keeps radosgw from looping on ``get_initial_auth_request returned -13``); S3 requests are signed
with a user created with known keys. A self-signed CA signs the server certificate
(SAN IP:127.0.0.1, DNS:s3.localhost, DNS:*.s3.localhost); clients get the CA as ``ca_bundle``.
``rgw dns name = s3.localhost`` enables virtual-host style (``Host: BUCKET.s3.localhost:PORT``).
"""

import json
import os
import secrets
import string
import urllib.request
import uuid

from .base import Service, ServiceError, free_port, port_open, run, tail, wait_for

DEFAULT_MEMSTORE_BYTES = 1536 * 1024 * 1024
RGW_NAME = "client.rgw.fos"


def _key(n, alphabet=string.ascii_uppercase + string.digits):
    return "".join(secrets.choice(alphabet) for _ in range(n))


def make_ca_and_server_cert(directory, names=("s3.localhost", "*.s3.localhost"), ips=("127.0.0.1",), days=7):
    """Self-signed CA + server cert signed by it. Returns (ca_pem, server_crt, server_key)."""
    ca_key, ca_pem = os.path.join(directory, "ca.key"), os.path.join(directory, "ca.pem")
    key, csr, crt = (os.path.join(directory, n) for n in ("server.key", "server.csr", "server.crt"))
    ext = os.path.join(directory, "server.ext")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]  # EC: instant, unlike RSA keygen
    run(["openssl", "req", "-x509"] + ec + ["-keyout", ca_key, "-out", ca_pem,
         "-days", str(days), "-subj", "/CN=fos-test throwaway CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
         "-addext", "subjectKeyIdentifier=hash"])
    run(["openssl", "req"] + ec + ["-keyout", key, "-out", csr, "-subj", "/CN=%s" % names[0]])
    san = ",".join(["IP:%s" % ip for ip in ips] + ["DNS:%s" % n for n in names])
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                "extendedKeyUsage=serverAuth\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid,issuer\n" % san)
    run(["openssl", "x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
         "-out", crt, "-days", str(days), "-extfile", ext])
    return ca_pem, crt, key


class CephRGW(Service):
    """Single-node Ceph RGW. After start(): http_endpoint, https_endpoint, ca_bundle, access_key,
    secret_key, dns_name, http_port, https_port, start_seconds."""

    kind = "ceph"
    retries = 1

    def __init__(self, workdir=None, memstore_bytes=None, access_key=None, secret_key=None, persistent=False):
        super().__init__(workdir, persistent=persistent)
        self.memstore_bytes = int(memstore_bytes or os.environ.get("FOS_TEST_MEMSTORE_BYTES") or DEFAULT_MEMSTORE_BYTES)
        self.access_key = access_key or "FOS" + _key(17)
        self.secret_key = secret_key or _key(40, string.ascii_letters + string.digits)
        self.dns_name = "s3.localhost"
        self.uid = "fos-test"
        self.conf = self.path("ceph.conf")
        self.mon_v2_port = self.mon_v1_port = self.http_port = self.https_port = None
        self.ca_bundle = None
        self.fsid = str(uuid.uuid4())
        self.pg_num = int(os.environ.get("FOS_TEST_CEPH_PG_NUM", "8"))
        self.paxos_propose_interval = os.environ.get("FOS_TEST_CEPH_PAXOS", "0.1")

    # --- endpoints ---
    @property
    def http_endpoint(self):
        return "http://127.0.0.1:%d" % self.http_port

    @property
    def https_endpoint(self):
        return "https://127.0.0.1:%d" % self.https_port

    def virtual_host(self, bucket, https=True):
        """The Host header of a virtual-host style request for ``bucket``."""
        return "%s.%s:%d" % (bucket, self.dns_name, self.https_port if https else self.http_port)

    def info(self):
        data = super().info()
        data.update(
            http_endpoint=self.http_endpoint, https_endpoint=self.https_endpoint, ca_bundle=self.ca_bundle,
            access_key=self.access_key, secret_key=self.secret_key, dns_name=self.dns_name,
            http_port=self.http_port, https_port=self.https_port, conf=self.conf,
            memstore_bytes=self.memstore_bytes,
        )
        return data

    # --- start ---
    def ceph(self, *args, timeout=30, check=True):
        return run(["ceph", "-c", self.conf, "--connect-timeout", "5"] + list(args), timeout=timeout, check=check)

    def _write_conf(self):
        w = self.workdir
        for d in ("run", "log", "mon", "osd", "rgw", "tls"):
            os.makedirs(os.path.join(w, d), exist_ok=True)
        ca_pem, crt, key = make_ca_and_server_cert(os.path.join(w, "tls"))
        pem = os.path.join(w, "tls", "rgw.pem")
        with open(pem, "w") as out:
            for src in (crt, key):
                with open(src) as f:
                    out.write(f.read())
        os.chmod(pem, 0o600)
        self.ca_bundle = ca_pem
        self.mon_v2_port, self.mon_v1_port = free_port(), free_port()
        self.http_port, self.https_port = free_port(), free_port()
        conf = """[global]
fsid = {fsid}
mon host = [v2:127.0.0.1:{v2},v1:127.0.0.1:{v1}]
mon initial members = a
public addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc secure
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = {pgs}
osd pool default pgp num = {pgs}
paxos propose interval = {paxos}
paxos min wait = 0.01
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
mon allow pool size one = true
mon allow pool delete = true
mon warn on pool no redundancy = false
run dir = {w}/run
exec dir = {w}/run
log file = {w}/log/$name.log
pid file = {w}/run/$name.pid
admin socket = {w}/run/$name.asok
keyring = {w}/keyring
mon data = {w}/mon/$cluster-$id
osd data = {w}/osd/$cluster-$id
crash dir = {w}/run/crash
log to stderr = false
err to stderr = true

[osd]
osd objectstore = memstore
memstore device bytes = {mem}

[{rgw}]
rgw frontends = beast endpoint=127.0.0.1:{http} ssl_endpoint=127.0.0.1:{https} ssl_certificate={pem}
rgw dns name = {dns}
rgw data = {w}/rgw
rgw thread pool size = 64
""".format(fsid=self.fsid, v2=self.mon_v2_port, v1=self.mon_v1_port, w=w, mem=self.memstore_bytes,
           pgs=self.pg_num, paxos=self.paxos_propose_interval,
           rgw=RGW_NAME, http=self.http_port, https=self.https_port, pem=pem, dns=self.dns_name)
        with open(self.conf, "w") as f:
            f.write(conf)

    def _start(self):
        self._write_conf()
        keyring = self.path("keyring")
        run(["ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"])
        run(["ceph-authtool", keyring, "--gen-key", "-n", "client.admin", "--cap", "mon", "allow *",
             "--cap", "osd", "allow *", "--cap", "mgr", "allow *"])
        monmap = self.path("monmap")
        run(["monmaptool", "--create", "--fsid", self.fsid, "--addv", "a",
             "[v2:127.0.0.1:%d,v1:127.0.0.1:%d]" % (self.mon_v2_port, self.mon_v1_port), monmap])
        run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring])
        self.spawn("ceph-mon", ["ceph-mon", "-c", self.conf, "-i", "a", "-f"], self.path("log", "mon.stdout"))

        osd_uuid = str(uuid.uuid4())
        osd_id = None
        last = None
        for _ in range(60):
            proc = self.ceph("osd", "new", osd_uuid, check=False, timeout=30)
            if proc.returncode == 0:
                osd_id = int(proc.stdout.strip().splitlines()[-1])
                break
            last = proc.stderr
            if self._children[0].poll() is not None:
                break
        if osd_id is None:
            raise ServiceError("ceph-mon did not answer `ceph osd new`: %s\n%s" % (last, tail(self.path("log", "mon.a.log"))))
        os.makedirs(self.path("osd", "ceph-%d" % osd_id), exist_ok=True)
        run(["ceph-osd", "-c", self.conf, "-i", str(osd_id), "--mkfs", "--osd-uuid", osd_uuid])
        self.spawn("ceph-osd", ["ceph-osd", "-c", self.conf, "-i", str(osd_id), "-f"], self.path("log", "osd.stdout"))

        def osd_up():
            proc = self.ceph("osd", "dump", "-f", "json", check=False)
            if proc.returncode != 0:
                return False
            return any(o.get("osd") == osd_id and o.get("up") for o in json.loads(proc.stdout).get("osds", []))

        wait_for(osd_up, 90, "osd.%d up" % osd_id, interval=0.2, log=self.path("log", "osd.%d.log" % osd_id))

        rgw = self.spawn("radosgw", ["radosgw", "-c", self.conf, "-n", RGW_NAME, "-f"], self.path("log", "rgw.stdout"))

        def rgw_answers():
            if rgw.poll() is not None:
                raise ServiceError("radosgw exited (rc=%s):\n%s\n%s" % (
                    rgw.returncode, tail(self.path("log", "rgw.stdout")), tail(self.path("log", RGW_NAME + ".log"))))
            if not port_open(self.http_port):
                return False
            try:
                urllib.request.urlopen(self.http_endpoint + "/", timeout=2).read()
            except urllib.error.HTTPError:
                return True  # any S3 answer (403...) means it serves
            except OSError:
                return False
            return True

        wait_for(rgw_answers, 120, "radosgw on %s" % self.http_endpoint, interval=0.2,
                 log=self.path("log", RGW_NAME + ".log"))
        wait_for(lambda: port_open(self.https_port), 30, "radosgw TLS port %d" % self.https_port)
        run(["radosgw-admin", "-c", self.conf, "user", "create", "--uid", self.uid, "--display-name", "fos test user",
             "--access-key", self.access_key, "--secret-key", self.secret_key], timeout=60)

    def admin(self, *args, timeout=60):
        """Run radosgw-admin against this cluster; returns stdout."""
        return run(["radosgw-admin", "-c", self.conf] + list(args), timeout=timeout).stdout
