# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether nginx will load a TLS certificate and key, and whether browsers will accept them for a name.

The migrate role's pre-flight asks this (module ``tls_certificate_info``) for every certificate the
proxy names, before anything changes: nginx itself only finds a missing or wrong certificate at
``nginx -t``, after the bucket and the cache directory exist.

A pair is checked the way nginx and a browser see it: each file exists and is a regular file
(read as root through safe_fs_open.read_admin_file: no link a user other than root could plant), is
PEM (the first certificate of the file is the server's, the rest its chain), the key belongs to the
certificate (same public key), the certificate is valid now, and one of its subjectAltName DNS names
covers the name (RFC 6125 section 6.4: case-insensitive, a wildcard only as the whole left-most label,
matching exactly one label; the Common Name is not used, as browsers no longer do).

``server_certificates`` reads which certificates an existing server block uses (modes directory and
system: the media are served by the app's own server block, with the app's certificate).

Uses the ``cryptography`` package (imported inside ``try:``; the module reports it missing).
Plain Python, unit-tested in tests/unit/test_tls_certificate.py.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

import datetime
import errno

from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx.conf import read_dump
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import UnsafePath
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs_open import read_admin_file

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    HAS_CRYPTOGRAPHY = True
    CRYPTOGRAPHY_ERROR = None
except ImportError as exc:  # pragma: no cover - reported by the module
    HAS_CRYPTOGRAPHY = False
    CRYPTOGRAPHY_ERROR = exc

LIMIT = 1024 * 1024  # a certificate chain or a key is a few kilobytes
_UTC = datetime.timezone.utc


def name_matches(pattern, name):
    """Whether the DNS name ``pattern`` of a certificate (maybe ``*.example.com``) covers ``name``
    (RFC 6125 6.4.1-6.4.3): compared case-insensitively without a trailing dot; ``*`` only as the
    whole left-most label, followed by at least two labels, standing for exactly one non-empty label;
    a partial wildcard (``f*.example.com``) or one elsewhere never matches."""
    pattern = (pattern or "").lower().rstrip(".")
    name = (name or "").lower().rstrip(".")
    if not pattern or not name:
        return False
    if "*" not in pattern:
        return pattern == name
    labels = pattern.split(".")
    if labels[0] != "*" or "*" in ".".join(labels[1:]) or len(labels) < 3:
        return False
    wanted = name.split(".")
    return len(wanted) == len(labels) and wanted[0] != "" and wanted[1:] == labels[1:]


def _read(path, what):
    """(bytes, None) or (None, problem)."""
    try:
        return read_admin_file(path, LIMIT), None
    except FileNotFoundError:
        return None, "the %s %s does not exist" % (what, path)
    except UnsafePath as exc:
        if exc.errno == errno.EFBIG:
            return None, "the %s %s is larger than %d bytes: not a certificate or key file" % (what, path, LIMIT)
        return None, "the %s %s cannot be used: %s" % (what, path, exc.strerror or exc)
    except OSError as exc:
        return None, "the %s %s cannot be read: %s" % (what, path, exc.strerror or exc)


def _utc(cert, name):
    value = getattr(cert, name + "_utc", None)  # cryptography 42+
    if value is None:
        value = getattr(cert, name).replace(tzinfo=_UTC)
    return value


def _dns_names(cert):
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return list(san.get_values_for_type(x509.DNSName))


def _public(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_pair(certificate, private_key, names, now=None, absent_ok=False, acme_webroot=""):
    """What nginx and a browser will say about the certificate file ``certificate`` with the key file
    ``private_key`` for the host names ``names``: a dict with ``problems`` (sentences, each naming the
    file and what is wrong; empty when all is well), ``absent`` (the certificate file does not exist)
    and, when the certificate could be read, ``dns_names``, ``not_before``, ``not_after`` (ISO 8601,
    UTC) and ``subject``. ``absent_ok``: a certificate file that does not exist is no problem (the
    caller obtains one later); the pair is then not checked further. ``acme_webroot``: the directory
    port 80 serves ``/.well-known/acme-challenge/`` from, for the ``advice`` on a problem (how to obtain
    a certificate with certbot)."""
    now = now or datetime.datetime.now(_UTC)
    result = dict(certificate=certificate, private_key=private_key, names=list(names), problems=[], absent=False)
    problems = result["problems"]
    _check(result, now, absent_ok)
    if problems and acme_webroot and names:
        result["advice"] = (
            "To obtain a certificate for %s: certbot certonly --webroot -w %s %s (with the DNS record of each name "
            "pointing to this server and port 80 serving %s for it, as a default site does)"
            % (", ".join(names), acme_webroot, " ".join("-d %s" % n for n in names), acme_webroot))
    return result


def _check(result, now, absent_ok):
    certificate, private_key, names, problems = (result["certificate"], result["private_key"], result["names"],
                                                 result["problems"])
    cert_data, problem = _read(certificate, "certificate")
    result["absent"] = problem is not None and problem.endswith(" does not exist")
    if result["absent"] and absent_ok:
        return
    if problem:
        problems.append(problem)
    key_data, problem = _read(private_key, "private key")
    if problem:
        problems.append(problem)

    cert = key = None
    if cert_data is not None:
        if b"-----BEGIN CERTIFICATE-----" not in cert_data:
            problems.append("the certificate %s is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)" % certificate)
        else:
            try:
                cert = x509.load_pem_x509_certificate(cert_data)
            except ValueError as exc:
                problems.append("the certificate %s cannot be parsed: %s" % (certificate, exc))
    if key_data is not None:
        if b"PRIVATE KEY-----" not in key_data:
            problems.append("the private key %s is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- line)"
                            % private_key)
        else:
            try:
                key = serialization.load_pem_private_key(key_data, password=None)
            except TypeError:
                problems.append("the private key %s is protected by a passphrase: nginx cannot load it without "
                                "ssl_password_file" % private_key)
            except Exception as exc:  # ValueError, UnsupportedAlgorithm: what cryptography cannot read, nginx neither
                problems.append("the private key %s cannot be parsed: %s" % (private_key, exc))

    if cert is None:
        return
    not_before, not_after = _utc(cert, "not_valid_before"), _utc(cert, "not_valid_after")
    dns_names = _dns_names(cert)
    result.update(dns_names=dns_names, not_before=not_before.isoformat(), not_after=not_after.isoformat(),
                  subject=cert.subject.rfc4514_string())
    if key is not None and _public(cert.public_key()) != _public(key.public_key()):
        problems.append("the private key %s does not belong to the certificate %s (their public keys differ): "
                        "nginx refuses the pair" % (private_key, certificate))
    if now > not_after:
        problems.append("the certificate %s expired on %s" % (certificate, not_after.strftime("%Y-%m-%d %H:%M UTC")))
    elif now < not_before:
        problems.append("the certificate %s is not valid before %s" % (certificate, not_before.strftime("%Y-%m-%d %H:%M UTC")))
    for name in names:
        if not any(name_matches(pattern, name) for pattern in dns_names):
            problems.append("the certificate %s is not for %s: its names (subjectAltName) are %s" % (
                certificate, name, ", ".join(dns_names) if dns_names else "none (browsers ignore the Common Name %s)"
                % cert.subject.rfc4514_string()))


def check_server_blocks(dump, name, now=None):
    """``check_pair`` of each certificate ``server_certificates`` finds for ``name``, with its advice."""
    results = []
    for cert, key, path in server_certificates(dump, name):
        result = check_pair(cert, key, [name], now=now)
        if result["problems"]:
            result["advice"] = ("%s serves %s with this certificate: renew or replace it (certbot renew) and fix "
                                "the server block's ssl_certificate and ssl_certificate_key" % (path, name))
        results.append(result)
    return results


def _serves(server_names, name):
    name = name.lower()
    for pattern in server_names:
        pattern = pattern.lower()
        if pattern == name or (pattern.startswith(".") and (name == pattern[1:] or name.endswith(pattern))):
            return True
        if pattern.startswith("*.") and name_matches(pattern, name):
            return True
    return False


def server_certificates(dump, name):
    """``[(certificate, key, file)]`` of the TLS server blocks serving ``name`` (its ``server_name``, a
    ``listen ... ssl``) in ``nginx -T`` output ``dump``: the i-th ``ssl_certificate`` with the i-th
    ``ssl_certificate_key``, the http block's when the server has none. Only what is written in the server
    block itself (a directive in a file it includes is not attributed) and absolute paths without
    variables (nginx resolves those at run time)."""
    blocks, current, http_level = [], {}, {"ssl_certificate": [], "ssl_certificate_key": []}
    directives, _problems = read_dump(dump)
    for d in directives:
        if d.name == "server" and (d.context == () or d.context[-1:] == ("http",)):
            block = {"file": d.file, "names": [], "ssl": False, "ssl_certificate": [], "ssl_certificate_key": []}
            current[d.context] = block
            blocks.append(block)
            continue
        if d.name in http_level and d.context[-1:] == ("http",):
            http_level[d.name].append(d.args[0] if d.args else "")
            continue
        block = current.get(d.context[:-1]) if d.context[-1:] == ("server",) else None
        if block is None:
            continue
        if d.name == "server_name":
            block["names"].extend(d.args)
        elif (d.name == "listen" and "ssl" in d.args[1:]) or (d.name == "ssl" and d.args == ["on"]):
            block["ssl"] = True
        elif d.name in ("ssl_certificate", "ssl_certificate_key") and d.args:
            block[d.name].append(d.args[0])
    found = []
    for block in blocks:
        if not block["ssl"] or not _serves(block["names"], name):
            continue
        certs = block["ssl_certificate"] or http_level["ssl_certificate"]
        keys = block["ssl_certificate_key"] or http_level["ssl_certificate_key"]
        for cert, key in zip(certs, keys):
            usable = cert.startswith("/") and key.startswith("/") and "$" not in cert + key
            if usable and (cert, key, block["file"]) not in found:
                found.append((cert, key, block["file"]))
    return found
