"""Rollback's copy back (plugins/module_utils/copy/back.py) against the real Ceph RGW over HTTPS, on a
public/system tree owned by the real unprivileged app user (the `appuser` fixture):

* a file already on disk of another size than its object (truncated) is reported, never skipped;
* what is written back has the tree owner's uid/gid and Mastodon's mode, and the temporaries a killed
  run left are removed (only ours);
* a body shorter than announced, or not matching the ETag's MD5, leaves nothing under the final name;
* the kill test (issue 20's acceptance): the copy back runs in a subprocess and is killed with SIGKILL
  while a file is partly written; no final name holds a partial file then, and the next run ends with
  every file byte-identical to its object, with the owner and mode, the partial one written, not skipped.
"""

import hashlib
import io
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest

from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import back as cb
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import steps
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.progress import Stats
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import BucketIndex

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FILES = "media_attachments/files"
AVATARS = "accounts/avatars"
TMP = re.compile(r"\A\.(?P<name>.+)\.fos-[0-9a-f]{16}\.tmp\Z")


@pytest.fixture
def system(appuser):
    """An app directory whose public/system belongs to the app user (parents 0755: it can reach it)."""
    root = tempfile.mkdtemp(prefix="fos-test-copyback-")
    os.chmod(root, 0o755)
    path = os.path.join(root, "public", "system")
    os.makedirs(path, mode=0o755)
    appuser.own(os.path.join(root, "public"))
    yield path
    shutil.rmtree(root)


def rows_of(objects):
    """RowObjects for ``[(kind, key, acl), ...]``, one row each."""
    return [RowObjects(kind, number, [MediaObject(kind, key, "application/octet-stream", acl, number)])
            for number, (kind, key, acl) in enumerate(objects, 1)]


def run_copy_back(client, bucket, system, objects, concurrency=4):
    stats = Stats()
    index = BucketIndex.from_listing(client, bucket, "")
    written = cb.copy_back(client, bucket, system, rows_of(objects), stats=stats, concurrency=concurrency, index=index)
    return stats, written


def result_of(stats):
    """What handle_copy_back returns for these counters (the fields check_result reads)."""
    return {"mode": "copy_back", "totals": stats.totals(), "failed_sample": list(stats.failed_sample),
            "different_on_disk": stats.different_on_disk,
            "different_on_disk_sample": list(stats.different_on_disk_sample)}


def temporaries(top):
    """{path: lstat} of every file named like safe_fs's temporaries below ``top``."""
    found = {}
    for dirpath, _dirs, files in os.walk(top):
        for name in files:
            if TMP.match(name):
                try:
                    found[os.path.join(dirpath, name)] = os.lstat(os.path.join(dirpath, name))
                except FileNotFoundError:
                    pass
    return found


def put(s3, bucket, key, body):
    s3.put_object(Bucket=bucket, Key=key, Body=body)


def test_a_truncated_file_on_disk_is_reported_not_skipped(s3, bucket, system, appuser):
    truncated = "media_attachments/files/000/000/001/original/a.png"
    complete = "media_attachments/files/000/000/002/original/b.png"
    linked = "media_attachments/files/000/000/003/original/c.png"
    missing = "media_attachments/files/000/000/004/original/d.png"
    bodies = {key: os.urandom(size) for key, size in ((truncated, 10000), (complete, 3000), (linked, 2000),
                                                     (missing, 5000))}
    for key, body in bodies.items():
        put(s3, bucket, key, body)
    # What a copy back of main killed mid-file left: the first 4096 bytes, root's, 0600, under the final name.
    for key, data in ((truncated, bodies[truncated][:4096]), (complete, bodies[complete])):
        path = os.path.join(system, key)
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as fh:
            fh.write(data)
    os.chmod(os.path.join(system, truncated), 0o600)
    os.makedirs(os.path.join(system, os.path.dirname(linked)))
    appuser.own(os.path.join(system, "media_attachments"))
    os.chown(os.path.join(system, truncated), 0, 0)
    # The app user puts a link where a medium belongs.
    appuser.call(os.symlink, "/etc/passwd", os.path.join(system, linked))

    stats, written = run_copy_back(s3, bucket, system, [(FILES, k, "public-read") for k in sorted(bodies)])

    totals = stats.totals()
    assert (totals["copied"], totals["skipped"], totals["failed"]) == (1, 1, 2), stats.failed_sample
    assert written == [missing]
    assert stats.different_on_disk_sample == [{"kind": FILES, "key": truncated, "size": 4096, "bucket_size": 10000}]
    reasons = {f["key"]: f["reason"] for f in stats.failed_sample}
    assert "4096" in reasons[truncated] and "10000" in reasons[truncated]
    assert "not a regular file" in reasons[linked]
    # Nothing replaced: the truncated file stays as it is (the admin decides), the link too.
    with open(os.path.join(system, truncated), "rb") as fh:
        assert fh.read() == bodies[truncated][:4096]
    assert os.readlink(os.path.join(system, linked)) == "/etc/passwd"
    # The task fails and says which file, both sizes and what to do.
    with pytest.raises(steps.MediaCopyError) as info:
        steps.check_result({"mode": "copy_back", "ignore_failures": False}, result_of(stats))
    assert "%s: 4096 bytes on disk, 10000 in the bucket" % truncated in info.value.msg
    assert "move the file on disk away" in info.value.msg


def multipart_put(s3, bucket, key, body, part=5 * 1024 * 1024):
    upload = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    parts = []
    for number, start in enumerate(range(0, len(body), part), 1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload, PartNumber=number,
                              Body=body[start:start + part])["ETag"]
        parts.append({"ETag": etag, "PartNumber": number})
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload, MultipartUpload={"Parts": parts})


def test_files_written_back_get_the_tree_owner_and_mode_and_our_leftovers_go(s3, bucket, system, appuser):
    """A re-run after a killed one: the root-owned temporary the killed run left next to a file is removed
    (what the app user made under that naming is not); every file gets the owner of public/system (the app
    user), 0644 or 0600 for a suspended account's media attachment, new directories 0755 and the owner."""
    public = "media_attachments/files/000/000/001/original/a.png"
    private = "media_attachments/files/000/000/002/original/b.png"
    avatar = "accounts/avatars/000/000/003/original/c.png"
    big = "media_attachments/files/000/000/004/original/d.mp4"  # multipart: its ETag is no MD5
    bodies = {public: os.urandom(7000), private: os.urandom(6000), avatar: os.urandom(500),
              big: os.urandom(5 * 1024 * 1024 + 1000)}
    for key in (public, private, avatar):
        put(s3, bucket, key, bodies[key])
    multipart_put(s3, bucket, big, bodies[big])
    assert "-" in s3.head_object(Bucket=bucket, Key=big)["ETag"]
    directory = os.path.join(system, os.path.dirname(public))
    os.makedirs(directory)
    appuser.own(os.path.join(system, "media_attachments"))
    leftover = os.path.join(directory, ".a.png.fos-0123456789abcdef.tmp")
    with open(leftover, "wb") as fh:
        fh.write(bodies[public][:1000])
    os.chmod(leftover, 0o600)
    users = os.path.join(directory, ".a.png.fos-1111111111111111.tmp")

    def plant():
        with open(users, "wb") as fh:
            fh.write(b"the app user's own")

    appuser.call(plant)

    stats, _written = run_copy_back(s3, bucket, system, [(FILES, public, "public-read"), (FILES, private, "private"),
                                                         (AVATARS, avatar, "private"), (FILES, big, "public-read")])
    assert stats.totals()["copied"] == 4, stats.failed_sample
    modes = {public: 0o644, private: 0o600, avatar: 0o644, big: 0o644}
    for key, body in bodies.items():
        path = os.path.join(system, key)
        with open(path, "rb") as fh:
            assert fh.read() == body, key
        st = os.lstat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink) == (
            modes[key], appuser.uid, appuser.gid, 1), key
    for new in ("media_attachments/files/000/000/002", "accounts", "accounts/avatars/000/000/003/original"):
        st = os.lstat(os.path.join(system, new))
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o755, appuser.uid, appuser.gid), new
    assert not os.path.lexists(leftover)
    assert os.lstat(users).st_uid == appuser.uid
    assert list(temporaries(system)) == [users]


class Tampered(object):
    """The real client; the bodies of some keys altered on the way (a connection cut early by a proxy, a bit
    flipped in transit), ContentLength and ETag as RGW sent them."""

    def __init__(self, real, tamper):
        self.real = real
        self.tamper = tamper

    def get_object(self, **kwargs):
        response = self.real.get_object(**kwargs)
        change = self.tamper.get(kwargs["Key"])
        if change is not None:
            data = response["Body"].read()
            response["Body"] = io.BytesIO(change(data))
        return response

    def __getattr__(self, name):
        return getattr(self.real, name)


def test_a_short_or_altered_body_leaves_nothing_under_the_final_name(s3, bucket, system):
    short = "media_attachments/files/000/000/001/original/a.png"
    flipped = "media_attachments/files/000/000/002/original/b.png"
    fine = "media_attachments/files/000/000/003/original/c.png"
    bodies = {short: os.urandom(300000), flipped: os.urandom(4000), fine: os.urandom(4000)}
    for key, body in bodies.items():
        put(s3, bucket, key, body)
    client = Tampered(s3, {short: lambda data: data[:100000],
                           flipped: lambda data: data[:10] + bytes([data[10] ^ 1]) + data[11:]})

    stats, written = run_copy_back(client, bucket, system, [(FILES, k, "public-read") for k in sorted(bodies)])

    assert written == [fine]
    totals = stats.totals()
    assert (totals["copied"], totals["failed"]) == (1, 2)
    reasons = {f["key"]: f["reason"] for f in stats.failed_sample}
    assert "received 100000 bytes, the object has 300000" in reasons[short]
    assert "ETag" in reasons[flipped]
    assert not os.path.lexists(os.path.join(system, short))
    assert not os.path.lexists(os.path.join(system, flipped))
    assert temporaries(system) == {}
    # Run again with the real client: both written, whole.
    stats, written = run_copy_back(s3, bucket, system, [(FILES, k, "public-read") for k in sorted(bodies)])
    assert sorted(written) == sorted([short, flipped]) and stats.totals()["skipped"] == 1
    for key, body in bodies.items():
        with open(os.path.join(system, key), "rb") as fh:
            assert fh.read() == body, key


# --- the kill test ----------------------------------------------------------------------------

CHILD = r"""
import json, sys
paths, config = json.loads(sys.argv[1]), json.loads(sys.argv[2])
sys.path[:0] = paths
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy import back as cb
from ansible_collections.fediverse.object_storage.plugins.module_utils.copy.progress import Stats
from ansible_collections.fediverse.object_storage.plugins.module_utils.mastodon.layout import MediaObject, RowObjects
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.client import s3_client
from ansible_collections.fediverse.object_storage.plugins.module_utils.s3.listing import BucketIndex

client = s3_client(config["endpoint"], access_key=config["access_key"], secret_key=config["secret_key"],
                   ca_bundle=config["ca_bundle"])
rows = [RowObjects(kind, n, [MediaObject(kind, key, "application/octet-stream", acl, n)])
        for n, (kind, key, acl) in enumerate(config["objects"], 1)]
stats = Stats()
index = BucketIndex.from_listing(client, config["bucket"], "")
cb.copy_back(client, config["bucket"], config["system"], rows, stats=stats, concurrency=2, index=index)
print(json.dumps({"totals": stats.totals(), "failed": stats.failed_sample}))
"""


def child_argv(rgw, bucket, system, objects):
    config = {"endpoint": rgw.https_endpoint, "access_key": rgw.access_key, "secret_key": rgw.secret_key,
              "ca_bundle": rgw.ca_bundle, "bucket": bucket, "system": system, "objects": objects}
    return [sys.executable, "-c", CHILD, json.dumps([os.path.join(REPO, ".cache", "collections"), REPO]),
            json.dumps(config)]


def on_disk(system, sizes):
    """{key: size} of the final names present below ``system``."""
    found = {}
    for key in sizes:
        try:
            found[key] = os.lstat(os.path.join(system, key)).st_size
        except FileNotFoundError:
            pass
    return found


def partial_temporaries(system, sizes):
    """Temporaries with some but not all of their object's bytes."""
    partial = []
    for path, st in temporaries(system).items():
        key = os.path.relpath(os.path.join(os.path.dirname(path), TMP.match(os.path.basename(path)).group("name")),
                              system)
        if key in sizes and 0 < st.st_size < sizes[key]:
            partial.append(path)
    return partial


def test_a_copy_back_killed_mid_file_then_run_again_leaves_every_file_whole(rgw, s3, bucket, system, appuser):
    objects = []
    bodies = {}
    for number in range(6):
        kind, acl = (FILES, "private") if number == 2 else (FILES, "public-read")
        key = "media_attachments/files/000/001/%03d/original/m%d.mp4" % (number, number)
        bodies[key] = os.urandom((3 + number % 3) * 1024 * 1024 + 4321 * number)
        put(s3, bucket, key, bodies[key])
        objects.append((kind, key, acl))
    sizes = {key: len(body) for key, body in bodies.items()}
    modes = {key: 0o600 if acl == "private" else 0o644 for _kind, key, acl in objects}

    caught = None
    for _attempt in range(8):
        for name in os.listdir(system):
            shutil.rmtree(os.path.join(system, name))
        wrong_finals = []
        child = subprocess.Popen(child_argv(rgw, bucket, system, objects), stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
        killed = False
        try:
            deadline = time.monotonic() + 120
            while child.poll() is None and time.monotonic() < deadline:
                # Every final name seen, at any moment, has its object's size (main writes the final name itself).
                finals = on_disk(system, sizes)
                wrong_finals += [(k, s) for k, s in finals.items() if s != sizes[k]]
                # Killed once some files are complete (the next run skips them) and another is half-written.
                if wrong_finals or (len(finals) >= 2 and partial_temporaries(system, sizes)):
                    child.send_signal(signal.SIGKILL)
                    killed = True
                    break
        finally:
            if child.poll() is None and not killed:
                child.kill()
            _out, err = child.communicate()
        if killed:
            assert child.returncode == -signal.SIGKILL
            caught = on_disk(system, sizes)
            wrong_finals += [(k, s) for k, s in caught.items() if s != sizes[k]]
            break
        assert child.returncode == 0, err.decode()[-2000:]
    assert caught is not None, "the copy back always finished before a file was seen half-written"
    # Killed mid-file: the half-written file is a temporary, no final name holds part of an object.
    assert wrong_finals == []
    assert partial_temporaries(system, sizes)
    complete = sorted(caught)
    assert len(complete) >= 2

    again = subprocess.run(child_argv(rgw, bucket, system, objects), capture_output=True, check=False, timeout=300)
    assert again.returncode == 0, again.stderr.decode()[-2000:]
    totals = json.loads(again.stdout.decode().strip().splitlines()[-1])
    # Only the files complete at the kill are skipped; the half-written one (and the rest) are written.
    assert (totals["totals"]["skipped"], totals["totals"]["copied"], totals["totals"]["failed"]) == (
        len(complete), len(objects) - len(complete), 0), totals
    for key, body in bodies.items():
        path = os.path.join(system, key)
        with open(path, "rb") as fh:
            assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(body).digest(), key
        st = os.lstat(path)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (modes[key], appuser.uid, appuser.gid), key
    # The killed run's temporaries are gone (a complete file's second name, linked just before the kill
    # and not yet unlinked, would have two links: none here has one).
    assert [p for p, st in temporaries(system).items() if st.st_nlink == 1] == []
