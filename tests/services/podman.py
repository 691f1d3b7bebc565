"""Podman for the test suite and molecule: runc runtime, lowered ulimits, a local base image.

No registry is reachable on the test machines and the host's podman defaults do not work there
(crun: "cgroups in hybrid mode not supported"; default ulimits: "setrlimit RLIMIT_NOFILE:
Operation not permitted"). This module

* writes a containers.conf (runtime runc, lowered default ulimits) and gives the environment that
  points every podman call at it (``podman_env()``: CONTAINERS_CONF);
* builds the Debian bookworm systemd image ``localhost/fos-bookworm-systemd:latest`` with
  debootstrap from the mirror apt uses on this machine, caching the root filesystem tarball under
  /var/cache/fediverse-object-storage/ keyed by the recipe, so later runs only re-import it
  (``ensure_image()``);
* runs systemd containers labelled ``fos-test=1`` and removes them (``run_systemd_container``,
  ``exec``, ``wait_system_running``, ``remove``, ``cleanup_owned``, ``cleanup_all``).

CLI: ``python -m tests.services image`` (see cli.py), or ``python -m tests.services.podman
ensure-image [--rebuild] | cleanup | env``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

IMAGE = "localhost/fos-bookworm-systemd:latest"
SUITE = "bookworm"
# Debian releases the harness can build (same mirror, same packages): bookworm is the default app host;
# bullseye (Python 3.9, nginx 1.18) is the oldest target the seeds name (ansible-core 2.21 needs >= 3.9).
IMAGES = {
    "bookworm": IMAGE,
    "bullseye": "localhost/fos-bullseye-systemd:latest",
}
VARIANT = "minbase"
# Enough for molecule and for the collection's modules on an app host (media_copy needs boto3 and
# psycopg2 there); sudo for `become`, python3-apt for ansible.builtin.apt.
PACKAGES = (
    "python3",
    "systemd",
    "systemd-sysv",
    "dbus",
    "sudo",
    "procps",
    "iproute2",
    "ca-certificates",
    "curl",
    "python3-apt",
    "python3-boto3",
    "python3-psycopg2",
)
# Changing the post-processing of the root filesystem must change the cache key: bump this.
RECIPE_VERSION = "3"

LABEL = "fos-test"
OWNER_LABEL = "fos-test.owner"
IMAGE_KEY_LABEL = "fos.image.key"
NAME_PREFIX = "fos-test-"
ULIMITS = ("nofile=1024:4096", "nproc=1024:4096")
RUNTIME = "runc"

CACHE_DIR = Path(os.environ.get("FOS_IMAGE_CACHE", "/var/cache/fediverse-object-storage"))
CONF_DIR = Path(os.environ.get("FOS_PODMAN_CONF_DIR", str(REPO_ROOT / ".cache" / "podman")))

CONTAINERS_CONF_TEXT = """\
# Written by tests/services/podman.py: used through CONTAINERS_CONF by the test suite and molecule.
[containers]
default_ulimits = [{ulimits}]

[engine]
runtime = "{runtime}"
""".format(ulimits=", ".join('"%s"' % u for u in ULIMITS), runtime=RUNTIME)

FALLBACK_MIRROR = "http://deb.debian.org/debian"


class PodmanError(RuntimeError):
    """A podman or debootstrap command failed."""


def log(msg):
    print("[podman] %s" % msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- configuration


def _write_if_changed(path, text):
    path = Path(path)
    if path.is_file() and path.read_text() == text:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=str(path.parent), prefix=".%s." % path.name)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)  # atomic: parallel sessions never see a half-written file
    return path


def containers_conf():
    """Write (if needed) the harness's containers.conf and return its path."""
    return _write_if_changed(CONF_DIR / "containers.conf", CONTAINERS_CONF_TEXT)


def podman_env(base=None):
    """The environment for every podman call (the harness's and molecule's): CONTAINERS_CONF set."""
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(containers_conf())
    return env


def podman(*args, check=True, timeout=300, input=None):
    """Run ``podman ARGS`` with the harness's environment; return the CompletedProcess."""
    cmd = ["podman", *[str(a) for a in args]]
    proc = subprocess.run(cmd, env=podman_env(), capture_output=True, text=True, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise PodmanError("%s failed (rc=%s): %s" % (shlex.join(cmd), proc.returncode, proc.stderr.strip()[-2000:]))
    return proc


# --------------------------------------------------------------------------- the base image


def _deb822_mirrors(text):
    """URIs of `Types: deb` stanzas in a deb822 .sources file that carry the given suite."""
    found = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if not line or line.startswith("#") or line[0].isspace() or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key.strip().lower()] = value.split()
        if fields.get("enabled", ["yes"])[0].lower() == "no":
            continue
        if "deb" in fields.get("types", []) and SUITE in fields.get("suites", []) and "main" in fields.get("components", []):
            found.extend(fields.get("uris", []))
    return found


def _one_line_mirrors(text):
    """URIs of one-line ``deb [options] URI SUITE COMPONENTS`` entries for SUITE main."""
    found = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options, possibly several words: skip to the "]"
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 3 and words[1] == SUITE and "main" in words[2:]:
            found.append(words[0])
    return found


def apt_mirror(root="/"):
    """The Debian mirror this machine's apt uses for bookworm main (so proxies/mirrors are honoured)."""
    etc = Path(root) / "etc" / "apt"
    candidates = []
    sources_d = etc / "sources.list.d"
    if sources_d.is_dir():
        for f in sorted(sources_d.iterdir()):
            if f.suffix == ".sources":
                candidates += _deb822_mirrors(f.read_text())
            elif f.suffix == ".list":
                candidates += _one_line_mirrors(f.read_text())
    if (etc / "sources.list").is_file():
        candidates += _one_line_mirrors((etc / "sources.list").read_text())
    for uri in candidates:
        if "security" not in uri:
            return uri.rstrip("/")
    return FALLBACK_MIRROR


def apt_proxy():
    """Acquire::http::Proxy from apt's configuration, or None."""
    try:
        out = subprocess.run(["apt-config", "shell", "P", "Acquire::http::Proxy"], capture_output=True, text=True).stdout
    except FileNotFoundError:
        return None
    # apt-config shell prints: P='http://proxy:3142/'
    value = out.strip().partition("=")[2].strip("'\"")
    return value or None


def image_key(packages=PACKAGES, suite=SUITE):
    """The cache key of a root filesystem: suite, variant, architecture, packages, recipe version."""
    recipe = {
        "suite": suite,
        "variant": VARIANT,
        "arch": platform.machine(),
        "packages": sorted(set(packages)),
        "recipe": RECIPE_VERSION,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def tarball_path(packages=PACKAGES, suite=SUITE):
    return CACHE_DIR / ("%s-systemd-%s.tar" % (suite, image_key(packages, suite)))


@contextlib.contextmanager
def _lock(name):
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    with open(CACHE_DIR / name, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _mounts_below(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1].replace("\\040", " ") for line in fh]
    return sorted((p for p in points if p == path or p.startswith(path + "/")), key=len, reverse=True)


def _remove_rootfs(rootfs):
    for point in _mounts_below(rootfs):  # a failed debootstrap can leave proc/sys mounted
        subprocess.run(["umount", "-l", point], check=False)
    shutil.rmtree(rootfs, ignore_errors=True)


def _prepare_rootfs(rootfs, suite=SUITE):
    """Make the debootstrapped tree a container image: small, systemd-friendly."""
    root = Path(rootfs)
    # A fresh machine-id per container (systemd creates it at boot when the file is empty).
    (root / "etc/machine-id").write_text("")
    dbus_id = root / "var/lib/dbus/machine-id"
    if dbus_id.is_symlink() or dbus_id.exists():
        dbus_id.unlink()
    (root / "etc/hostname").write_text("fos-%s\n" % suite)
    # Units that only make sense on real hardware / consoles: keep the boot clean ("running").
    wants = root / "etc/systemd/system"
    for unit in (
        "getty.target",
        "console-getty.service",
        "systemd-remount-fs.service",
        "sys-kernel-debug.mount",
        "sys-kernel-tracing.mount",
        "dev-hugepages.mount",
        "systemd-modules-load.service",
        "e2scrub_reap.service",
        "apt-daily.timer",
        "apt-daily-upgrade.timer",
    ):
        link = wants / unit
        if not link.exists() and not link.is_symlink():
            link.symlink_to("/dev/null")
    # apt inside the container: no docs/translations on later installs, lists dropped here.
    (root / "etc/dpkg/dpkg.cfg.d/01-fos-nodoc").write_text(
        "path-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\n"
        "path-exclude=/usr/share/man/*\npath-exclude=/usr/share/locale/*\npath-exclude=/usr/share/info/*\n"
    )
    # podman mounts a fresh tmpfs on /tmp; systemd-tmpfiles' boot-time purge of /tmp (`D /tmp`) then
    # only races with whatever `podman exec` runs while the container boots: apt-get update right after
    # start failed ("InRelease is not signed") when its /tmp/apt.sig.* files vanished. Keep /tmp as is.
    (root / "etc/tmpfiles.d/tmp.conf").write_text("d /tmp 1777 root root -\n")
    subprocess.run(["chroot", str(root), "apt-get", "clean"], check=False, capture_output=True)
    keep = {"lock", "partial", "copyright"}
    cruft = ("var/lib/apt/lists", "var/cache/apt/archives", "usr/share/man", "usr/share/locale", "usr/share/info")
    cruft += ("tmp", "var/tmp")
    for sub in cruft:
        _empty_dir(root / sub, keep)
    doc = root / "usr/share/doc"
    if doc.is_dir():  # keep the copyright files only
        for package in doc.iterdir():
            if package.is_dir() and not package.is_symlink():
                _empty_dir(package, keep)


def _empty_dir(path, keep=()):
    if not path.is_dir() or path.is_symlink():
        return
    for child in path.iterdir():
        if child.name in keep:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def build_rootfs_tarball(packages=PACKAGES, mirror=None, suite=SUITE):
    """debootstrap a root filesystem of SUITE and store it as the cached tarball; return its path.

    The mirror is the one apt uses on this machine for bookworm: a Debian mirror serves every release.
    """
    if shutil.which("debootstrap") is None:
        raise PodmanError("debootstrap is not installed (apt-get install debootstrap)")
    target = tarball_path(packages, suite)
    mirror = mirror or apt_mirror()
    env = dict(os.environ)
    proxy = apt_proxy()
    if proxy and not env.get("http_proxy"):
        env["http_proxy"] = proxy
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="build-", dir=str(CACHE_DIR)))
    rootfs = work / "rootfs"
    started = time.monotonic()
    try:
        cmd = [
            "debootstrap",
            "--variant=%s" % VARIANT,
            "--include=%s" % ",".join(sorted(set(packages))),
            suite,
            str(rootfs),
            mirror,
        ]
        log("building %s with: %s" % (target.name, shlex.join(cmd)))
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            debootstrap_log = rootfs / "debootstrap" / "debootstrap.log"
            tail = debootstrap_log.read_text()[-3000:] if debootstrap_log.is_file() else proc.stderr[-3000:]
            raise PodmanError("debootstrap failed (rc=%s):\n%s" % (proc.returncode, tail))
        _prepare_rootfs(rootfs, suite)
        partial = work / "rootfs.tar"
        subprocess.run(["tar", "--numeric-owner", "--xattrs", "-C", str(rootfs), "-cf", str(partial), "."], check=True)
        os.replace(partial, target)
    finally:
        _remove_rootfs(rootfs)
        shutil.rmtree(work, ignore_errors=True)
    log("built %s in %.0f s (%d MB)" % (target, time.monotonic() - started, target.stat().st_size // 2**20))
    return target


def image_exists(image=IMAGE):
    return podman("image", "exists", image, check=False).returncode == 0


def _image_label(image, label):
    proc = podman("image", "inspect", "--format", "{{ json .Labels }}", image, check=False)
    if proc.returncode != 0:
        return None
    labels = json.loads(proc.stdout.strip() or "null") or {}
    return labels.get(label)


def import_tarball(tarball, image=IMAGE, key=None):
    """podman import the root filesystem tarball as IMAGE (CMD /sbin/init, key recorded as a label)."""
    changes = ['CMD ["/sbin/init"]', "STOPSIGNAL SIGRTMIN+3", "ENV container=podman"]
    if key:
        changes.append("LABEL %s=%s" % (IMAGE_KEY_LABEL, key))
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    podman(*args, str(tarball), image, timeout=900)


def ensure_image(image=None, packages=PACKAGES, rebuild=False, suite=SUITE):
    """Make sure podman has IMAGE (default: the image of SUITE) built from PACKAGES; return its name.

    Fast path: podman already has the image with the same recipe key. Otherwise import the cached
    tarball, building it with debootstrap first when there is none (or when rebuild=True).
    """
    image = image or IMAGES[suite]
    key = image_key(packages, suite)
    if not rebuild and _image_label(image, IMAGE_KEY_LABEL) == key:
        return image
    # Parallel sessions: one builds, the others wait and re-import.
    with _lock("image-%s.lock" % suite if suite != SUITE else "image.lock"):
        if not rebuild and _image_label(image, IMAGE_KEY_LABEL) == key:
            return image
        tarball = tarball_path(packages, suite)
        if rebuild or not tarball.is_file():
            build_rootfs_tarball(packages, suite=suite)
            if tuple(packages) == PACKAGES:
                _prune_tarballs(keep=tarball, suite=suite)
        previous = _image_id(image)
        started = time.monotonic()
        import_tarball(tarball, image, key)
        log("imported %s as %s in %.1f s" % (tarball.name, image, time.monotonic() - started))
        if previous and previous != _image_id(image):
            podman("rmi", previous, check=False)  # the replaced image, unless a container still uses it
    return image


def _image_id(image):
    proc = podman("image", "inspect", "--format", "{{.Id}}", image, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _prune_tarballs(keep, suite=SUITE):
    """Drop cached tarballs of older recipes of the suite's default image."""
    for old in CACHE_DIR.glob("%s-systemd-*.tar" % suite):
        if old != keep:
            log("removing stale cache %s" % old.name)
            old.unlink()


def remove_image(image=IMAGE):
    podman("rmi", "-f", image, check=False)


# --------------------------------------------------------------------------- containers


def container_name(name):
    return name if name.startswith(NAME_PREFIX) else NAME_PREFIX + name


def run_systemd_container(
    name, image=IMAGE, network=None, volumes=(), env=None, extra_args=(), command=("/sbin/init",), owner=None
):
    """Start a detached container running systemd as PID 1; return its full name (``fos-test-NAME``).

    network: e.g. ``"slirp4netns:allow_host_loopback=true"`` (the host's 127.0.0.1 is 10.0.2.2 inside)
    or ``"host"``; None keeps podman's default.
    owner: the pid recorded in the ``fos-test.owner`` label (default: this process), which
    ``cleanup_owned`` uses to tell this session's containers from a parallel session's.
    """
    full = container_name(name)
    args = [
        "run",
        "-d",
        "--name",
        full,
        "--hostname",
        full,
        "--label",
        "%s=1" % LABEL,
        "--label",
        "%s=%d" % (OWNER_LABEL, os.getpid() if owner is None else owner),
        "--systemd=always",
        "--runtime",
        RUNTIME,
    ]
    for ulimit in ULIMITS:
        args += ["--ulimit", ulimit]
    if network:
        args += ["--network", network]
    for volume in volumes:
        args += ["-v", volume]
    for key, value in (env or {}).items():
        args += ["-e", "%s=%s" % (key, value)]
    args += list(extra_args)
    args += [image, *command]
    podman(*args, timeout=120)
    return full


def exec(name, cmd, check=True, timeout=120, input=None, user=None):  # noqa: A001 - the harness's verb
    """Run CMD (a list, or a string for ``sh -c``) inside the container; return the CompletedProcess."""
    argv = ["sh", "-c", cmd] if isinstance(cmd, str) else list(cmd)
    args = ["exec"]
    if input is not None:
        args.append("-i")
    if user:
        args += ["--user", user]
    proc = podman(*args, container_name(name), *argv, check=False, timeout=timeout, input=input)
    if check and proc.returncode != 0:
        raise PodmanError(
            "in %s: %s failed (rc=%s): %s%s" % (name, shlex.join(argv), proc.returncode, proc.stdout[-1000:], proc.stderr[-1000:])
        )
    return proc


def system_state(name):
    """What ``systemctl is-system-running`` answers inside the container (e.g. starting, running)."""
    proc = exec(name, ["systemctl", "is-system-running"], check=False, timeout=30)
    return proc.stdout.strip() or proc.stderr.strip()


def wait_system_running(name, timeout=60, interval=0.5):
    """Wait until systemd has finished booting; return the final state (running or degraded, or the
    last state seen when the timeout expires)."""
    deadline = time.monotonic() + timeout
    state = ""
    while True:
        state = system_state(name)
        if state in ("running", "degraded", "maintenance", "stopping", "offline"):
            return state
        if time.monotonic() >= deadline:
            return state
        time.sleep(interval)


def failed_units(name):
    proc = exec(name, ["systemctl", "--failed", "--no-legend", "--plain"], check=False, timeout=30)
    return [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]


def remove(name):
    """Remove the container (stopping it first, no grace period). Missing containers are fine."""
    podman("rm", "-f", "-t", "0", container_name(name), check=False, timeout=120)


def list_containers(owner=None):
    """Names of the harness's containers (label fos-test=1), optionally only those of OWNER (a pid)."""
    args = ["ps", "-a", "--filter", "label=%s=1" % LABEL, "--format", "{{.Names}}\t{{.Labels}}"]
    out = podman(*args, check=False).stdout
    names = []
    for line in out.splitlines():
        if not line.strip():
            continue
        container, _, labels = line.partition("\t")
        if owner is None or ("%s:%s" % (OWNER_LABEL, owner)) in labels:
            names.append(container)
    return names


def _owner_of(container):
    proc = podman("inspect", "--format", "{{ index .Config.Labels %s }}" % json.dumps(OWNER_LABEL), container, check=False)
    value = proc.stdout.strip()
    return int(value) if value.isdigit() else None


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _rm(names):
    if names:
        podman("rm", "-f", "-t", "0", *names, check=False, timeout=300)
    return names


def cleanup_owned(pid=None):
    """Remove the containers this process started, and those left by dead processes (crashed runs).

    Safe while other test sessions run in parallel: their containers belong to live processes.
    Containers without an owner label (e.g. started by molecule with ``--label=fos-test=1``) are
    left alone: ``cleanup_all`` removes those.
    """
    pid = os.getpid() if pid is None else pid
    doomed = []
    for container in list_containers():
        owner = _owner_of(container)
        if owner is not None and (owner == pid or not _alive(owner)):
            doomed.append(container)
    return _rm(doomed)


def cleanup_all():
    """Remove every container labelled fos-test=1, whoever started it."""
    return _rm(list_containers())


# --------------------------------------------------------------------------- CLI


def main(argv=None):
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.services.podman", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_image = sub.add_parser("ensure-image", help="build (or re-import from cache) %s" % ", ".join(IMAGES.values()))
    p_image.add_argument("--rebuild", action="store_true", help="run debootstrap again even if a cached tarball exists")
    p_image.add_argument("--suite", action="append", choices=sorted(IMAGES),
                         help="the Debian release(s) to build (default: bookworm; repeat for several)")
    sub.add_parser("cleanup", help="remove every fos-test container")
    sub.add_parser("env", help="print the CONTAINERS_CONF export line for a shell (molecule)")
    args = parser.parse_args(argv)
    if args.command == "ensure-image":
        started = time.monotonic()
        for suite in args.suite or [SUITE]:
            print(ensure_image(rebuild=args.rebuild, suite=suite))
        log("ready in %.1f s" % (time.monotonic() - started))
    elif args.command == "cleanup":
        for name in cleanup_all():
            print("removed %s" % name)
    elif args.command == "env":
        print("export CONTAINERS_CONF=%s" % shlex.quote(str(containers_conf())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
