# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which Misskey-family software a ``package.json`` describes, and which upload code it follows.

* ``detect(package_json_text)`` -> ``Software``: the fork (from ``name``), its own version, the
  upstream Misskey version it is based on (``MisskeyVersion`` of misskey_config) and the generation
  of upload headers of its ``DriveService`` (``upload_headers``). A fork whose numbering is not
  Misskey's and that does not name its upstream version is refused with a message that says so:
  nothing is ever guessed from a number that merely looks like Misskey's (Iceshrimp's 2023.12 is
  not Misskey 2023.12, Calckey's 13.1 is not Misskey 13.1).
* ``upload_headers_of(version)`` -> ``(generation, source)`` for an upstream Misskey version.

Package shapes read (``name``/``version`` of the root ``package.json``):
  Misskey   misskey-dev/misskey        "misskey"    "13.9.2", "2025.4.0" (forks keeping the name add a
                                                    suffix: Type4ny "2026.3.2-alpha.2-tp.1")
  meisskey  mei23/misskey              "misskey"    "10.102.x-m544" (v10 line; misskey_config)
  Sharkey   transfem-org/Sharkey       "sharkey"    "2023.9.0-beta.10", "2023.11.2.beta1" (CalVer of its own)
  CherryPick kokonect-link/cherrypick  "cherrypick" "1.0.1-4.14.0-alpha.3" with "basedMisskeyVersion":
                                                    "2024.11.0-beta.4"
  Iceshrimp Ernous/iceshrimp (mirror)  "iceshrimp"  "2026.5.1" (a Firefish fork, CalVer of its own)
  Firefish  tag v1.0.5-rc (YunoHost-Apps/firefish_ynh manifest; its package.json not in reach)
  Calckey   nodeinfo "calckey" "13.1.2", "14.0.0-rc2c-jp3" (Firefish's former name)

Upload headers (``DriveService.upload``, the ``filename`` argument of each variant; read per version):
  "v12"    11.x-13.8.x: original and webpublic ``inline; filename=<drive_file.name>`` as stored,
           thumbnail without Content-Disposition. Read: v12's services/drive/add-file.ts
           (``upload(key, stream, type, name)``, the thumbnail without a name) and the 13.0-era
           DriveService that ports it (misskey-dev/misskey 0c72afc4); 11.x (same add-file.ts lineage)
           not read separately.
  "13.9"   13.9.0 (PR #10150, correctFilename) up to 13.14.1: original correctFilename(name, key ext),
           webpublic correctFilename(name, its ext), thumbnail still without a name. Read: 13.9.2
           (misskey-dev/misskey 00fc261d, package.json 13.9.2).
  "named"  13.14.2 and later, CalVer and Sharkey: original with the name as stored (addFile already
           corrected it), webpublic correctFilename(name, ext), thumbnail
           correctFilename("<name>.thumbnail", ext). Read: a 13.14.2-based tree (okayurisotto/misskey,
           package.json 13.14.2), Misskey 2023.x, Sharkey (transfem-org/Sharkey 829ce4f8).
  The change to a named thumbnail happened between 13.9.2 and 13.14.2; no tree of 13.10.0-13.14.1
  was in reach, so those versions keep the last generation read before it ("13.9") and say so
  (``source``).

Plain Python: unit-tested in tests/unit/test_misskey_fork.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import re

from ansible_collections.fediverse.object_storage.plugins.module_utils.misskey.config import (
    MisskeyConfigError,
    MisskeyVersion,
    parse_version,
    read_package_json,
)

GENERATIONS = ("v12", "13.9", "named")

_SOURCES = {
    "v12": "Misskey 13.0 DriveService.upload (misskey-dev/misskey 0c72afc4; v12's add-file.ts ported)",
    "13.9": "Misskey 13.9.2 DriveService.upload (misskey-dev/misskey 00fc261d)",
    "13.9-unpinned": ("Misskey 13.9.2 DriveService.upload; 13.10.0-13.14.1 were not read (the named thumbnail "
                      "appears between 13.9.2 and 13.14.2)"),
    "named": "Misskey 13.14.2/2023.x+ DriveService.upload (named thumbnail)",
    "sharkey": "Sharkey DriveService.upload (transfem-org/Sharkey 829ce4f8: named thumbnail)",
}

_NUMBERS = re.compile(r"^v?([0-9]+)\.([0-9]+)(?:\.([0-9]+))?")


def _numbers(version):
    match = _NUMBERS.match(str(version).strip())
    if not match:
        raise MisskeyConfigError("cannot read the version %r" % version)
    return tuple(int(part or 0) for part in match.groups())


def upload_headers_of(version):
    """``(generation, source)`` of the upload headers of an upstream Misskey ``version``."""
    numbers = _numbers(version)
    if numbers < (13, 9, 0):
        return "v12", _SOURCES["v12"]
    if numbers < (13, 10, 0):
        return "13.9", _SOURCES["13.9"]
    if numbers < (13, 14, 2):
        return "13.9", _SOURCES["13.9-unpinned"]
    return "named", _SOURCES["named"]


class Software(object):
    """What a package.json says: ``fork`` (display name), ``package`` (its name), ``version`` (the
    fork's own), ``upstream`` (MisskeyVersion of the Misskey version it follows), ``upload_headers``
    and ``upload_headers_source``."""

    def __init__(self, fork, package, version, upstream, upload_headers, source, note="", upstream_version=True):
        self.fork = fork
        self.package = package
        self.version = version
        self.upstream = upstream
        self.upload_headers = upload_headers
        self.upload_headers_source = source
        self.note = note
        self.upstream_version = upstream.version if upstream_version is True else upstream_version

    def as_dict(self):
        result = self.upstream.as_dict()
        # ``version``/``major``/``line`` stay those of the upstream Misskey version (what the roles test).
        result.update(fork=self.fork, package=self.package, fork_version=self.version,
                      upstream_version=self.upstream_version, upload_headers=self.upload_headers,
                      upload_headers_source=self.upload_headers_source, fork_note=self.note)
        return result

    def describe(self):
        if self.fork == "Misskey":
            return "Misskey %s" % self.version
        return "%s %s (%s)" % (self.fork, self.version, self.note)


def _refuse(fork, version, why):
    raise MisskeyConfigError(
        "%s %s is not supported: %s. Nothing was changed; set misskey_version (migrate_misskey_version) to "
        "the upstream Misskey version only if you know its tables and uploads are Misskey's" % (fork, version, why))


def _misskey(package, version):
    upstream = parse_version(version)
    if upstream.major == 10 and "-m" in str(version):
        return Software("meisskey", package, version, upstream, None, "v10 (drive: in default.yml; no drive move)",
                        note="the mei23 fork of Misskey 10")
    generation, source = upload_headers_of(version) if upstream.uses_postgresql else (None, "v10")
    return Software("Misskey", package, version, upstream, generation, source)


def _sharkey(package, version):
    numbers = _numbers(version)
    if numbers[0] < 2023:
        _refuse("Sharkey", version, "Sharkey versions are CalVer from 2023.x; this one cannot be placed")
    # Sharkey numbers its releases by date (its CalVer is its own, not a Misskey version): what matters
    # here is read from its own code and migrations, not derived from the number.
    # Sharkey's own shapes include "2023.11.2.beta1" (a fourth dotted part), not Misskey's.
    return Software("Sharkey", package, version, MisskeyVersion(version, numbers[0]), "named", _SOURCES["sharkey"],
                    note="a Misskey fork with a CalVer of its own, not a Misskey version; its meta, drive_file "
                         "and uploads read from its own code", upstream_version=None)


def _cherrypick(package, version, data):
    based = data.get("basedMisskeyVersion")
    if not based:
        _refuse("CherryPick", version, "its version numbering is not Misskey's and package.json has no "
                "basedMisskeyVersion to tell the Misskey version it is based on")
    upstream = parse_version(based)
    generation, source = upload_headers_of(based)
    return Software("CherryPick", package, version, upstream, generation, source,
                    note="based on Misskey %s (basedMisskeyVersion)" % based)


_REFUSED = {
    "firefish": ("Firefish", "Firefish numbers its versions 1.x and its tables left Misskey's after 12.119 (its own "
                 "migrations); the upstream version it is based on does not describe them"),
    "calckey": ("Calckey", "Calckey (Firefish's former name) numbers its versions 13.x/14.x of its own, which are not "
                "Misskey 13/14; its tables left Misskey's after 12.119"),
    "iceshrimp": ("Iceshrimp", "Iceshrimp (the JS one, a Firefish fork) numbers its versions by date (CalVer of its "
                  "own, not a Misskey version) and its tables are Firefish's, not Misskey's"),
    "foundkey": ("FoundKey", "FoundKey numbers its versions of its own (v13.0.0-preview...) and its tables left "
                 "Misskey's after 12.x"),
}


def detect(package_json_text, source="package.json"):
    """The ``Software`` of a package.json's text (``MisskeyConfigError`` for what cannot be placed)."""
    data = read_package_json(package_json_text, source)
    version = str(data["version"]).strip()
    package = str(data.get("name") or "").strip()
    key = package.lower()
    if key in ("misskey", ""):
        return _misskey(package, version)
    if key == "sharkey":
        return _sharkey(package, version)
    if key == "cherrypick":
        return _cherrypick(package, version, data)
    if key in _REFUSED:
        fork, why = _REFUSED[key]
        _refuse(fork, version, why)
    raise MisskeyConfigError(
        "%s names %r %s, neither Misskey nor a fork this collection knows (Sharkey, CherryPick; refused: Firefish, "
        "Calckey, Iceshrimp, FoundKey). Nothing was changed; set misskey_version (migrate_misskey_version) to the "
        "upstream Misskey version only if you know its tables and uploads are Misskey's" % (
            source, package[:64], version[:64]))


def from_version(version):
    """The ``Software`` for an explicitly given version (misskey_version): taken as Misskey's."""
    software = _misskey("", version)
    software.note = "version given explicitly (misskey_version), not read from package.json"
    if software.fork == "Misskey":
        software.fork = "Misskey (version given)"
    return software
