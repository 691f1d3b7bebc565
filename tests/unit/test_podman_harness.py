"""Pure parts of the podman harness: apt mirror discovery, containers.conf, image cache key."""

import tomllib

from tests.services import podman as pm

DEB822 = """\
Types: deb
URIs: http://security.example.org/debian-security
Suites: bookworm-security
Components: main

Types: deb-src
URIs: http://src.example.org/debian
Suites: bookworm
Components: main

Types: deb
# a comment inside the stanza
URIs: http://mirror.example.org/debian/
Suites: bookworm bookworm-updates
Components: main contrib
"""


def _root(tmp_path, files):
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_apt_mirror_from_deb822_skips_security_and_sources(tmp_path):
    root = _root(tmp_path, {"etc/apt/sources.list.d/debian.sources": DEB822})
    assert pm.apt_mirror(root) == "http://mirror.example.org/debian"


def test_apt_mirror_from_one_line_list_with_options(tmp_path):
    root = _root(
        tmp_path,
        {
            "etc/apt/sources.list.d/other.list": "deb https://vendor.example.com/apt stable main\n",
            "etc/apt/sources.list": (
                "# deb http://commented.example.org/debian bookworm main\n"
                "deb [arch=amd64 signed-by=/usr/share/keyrings/k.gpg] http://proxy.lan:3142/debian bookworm main\n"
            ),
        },
    )
    assert pm.apt_mirror(root) == "http://proxy.lan:3142/debian"


def test_apt_mirror_disabled_stanza_and_fallback(tmp_path):
    root = _root(tmp_path, {"etc/apt/sources.list.d/debian.sources": "Enabled: no\n" + DEB822.split("\n\n")[2]})
    assert pm.apt_mirror(root) == pm.FALLBACK_MIRROR


def test_containers_conf_sets_runc_and_lowered_ulimits(tmp_path, monkeypatch):
    monkeypatch.setattr(pm, "CONF_DIR", tmp_path / "conf")
    env = pm.podman_env({"PATH": "/usr/bin"})
    conf = tomllib.loads((tmp_path / "conf" / "containers.conf").read_text())
    assert env["CONTAINERS_CONF"] == str(tmp_path / "conf" / "containers.conf")
    assert env["PATH"] == "/usr/bin"
    assert conf["engine"]["runtime"] == "runc"
    assert conf["containers"]["default_ulimits"] == ["nofile=1024:4096", "nproc=1024:4096"]


def test_image_key_follows_the_package_list_not_its_order():
    base = pm.image_key(pm.PACKAGES)
    assert pm.image_key(tuple(reversed(pm.PACKAGES))) == base
    assert pm.image_key(pm.PACKAGES + ("nginx-light",)) != base
    assert pm.tarball_path(pm.PACKAGES).name == "bookworm-systemd-%s.tar" % base
    for needed in ("python3", "systemd", "systemd-sysv", "dbus", "python3-boto3", "python3-psycopg2", "python3-apt"):
        assert needed in pm.PACKAGES
