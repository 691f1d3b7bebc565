"""The TLS certificate check of the pre-flight (plugins/module_utils/nginx/tls_certificate.py), on certificates
made here with cryptography, and reading an admin's file (safe_fs_open.read_admin_file)."""

import datetime
import os

import pytest
from ansible_collections.fediverse.object_storage.plugins.module_utils.nginx import tls_certificate as tc
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs import UnsafePath
from ansible_collections.fediverse.object_storage.plugins.module_utils.fs.safe_fs_open import read_admin_file
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

NOW = datetime.datetime.now(datetime.timezone.utc)
DAY = datetime.timedelta(days=1)


def make_pair(directory, names, not_before=None, not_after=None, key=None, cn=None, base="site"):
    """(cert path, key path) of a self-signed certificate for DNS ``names`` (none: no subjectAltName)."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn or (names[0] if names else "nobody"))])
    builder = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(not_before or NOW - DAY).not_valid_after(not_after or NOW + 30 * DAY))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False)
    cert = builder.sign(key, hashes.SHA256())
    cert_path, key_path = os.path.join(directory, base + ".crt"), os.path.join(directory, base + ".key")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def tls(tmp_path):
    os.chmod(tmp_path, 0o755)
    return str(tmp_path)


def test_a_good_pair_has_no_problem(tls):
    cert, key = make_pair(tls, ["s3.example.social"])
    result = tc.check_pair(cert, key, ["s3.example.social"])
    assert result["problems"] == []
    assert result["dns_names"] == ["s3.example.social"]
    assert result["not_after"] > NOW.isoformat()


def test_absent_certificate_and_key(tls):
    result = tc.check_pair(tls + "/live/s3.example.social/fullchain.pem", tls + "/live/s3.example.social/privkey.pem",
                           ["s3.example.social"])
    assert result["problems"] == [
        "the certificate %s/live/s3.example.social/fullchain.pem does not exist" % tls,
        "the private key %s/live/s3.example.social/privkey.pem does not exist" % tls]


def test_an_absent_certificate_the_caller_obtains_later(tls):
    result = tc.check_pair(tls + "/fullchain.pem", tls + "/privkey.pem", ["s3.example.social"], absent_ok=True)
    assert result["problems"] == [] and result["absent"] is True
    cert, key = make_pair(tls, ["example.social"])  # present: checked as any other
    result = tc.check_pair(cert, key, ["s3.example.social"], absent_ok=True)
    assert result["absent"] is False and len(result["problems"]) == 1


def test_a_directory_is_not_a_certificate(tls):
    _cert, key = make_pair(tls, ["s3.example.social"])
    os.mkdir(tls + "/dir.pem")
    problems = tc.check_pair(tls + "/dir.pem", key, ["s3.example.social"])["problems"]
    assert problems == ["the certificate %s/dir.pem cannot be used: %s/dir.pem is not a regular file" % (tls, tls)]


def test_a_fifo_is_refused_without_blocking(tls):
    cert, _key = make_pair(tls, ["s3.example.social"])
    os.mkfifo(tls + "/key.fifo")
    problems = tc.check_pair(cert, tls + "/key.fifo", ["s3.example.social"])["problems"]
    assert problems == ["the private key %s/key.fifo cannot be used: %s/key.fifo is not a regular file" % (tls, tls)]


def test_a_link_another_user_could_plant_is_not_followed(tls):
    cert, key = make_pair(tls, ["s3.example.social"])
    planted = os.path.join(tls, "shared")
    os.mkdir(planted)
    os.chmod(planted, 0o1777)  # like /tmp: anyone may create a name here
    os.symlink(key, planted + "/privkey.pem")
    problems = tc.check_pair(cert, planted + "/privkey.pem", ["s3.example.social"])["problems"]
    assert len(problems) == 1
    assert problems[0].startswith("the private key %s/privkey.pem cannot be used: " % planted)
    assert "symbolic link that a user other than root can change" in problems[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="root's links: the test makes root-owned, root-only directories")
def test_lets_encrypt_links_are_followed(tls):
    """live/NAME/fullchain.pem -> ../../archive/NAME/fullchain1.pem, all root's: followed."""
    archive = os.path.join(tls, "archive", "s3.example.social")
    live = os.path.join(tls, "live", "s3.example.social")
    os.makedirs(archive)
    os.makedirs(live)
    cert, key = make_pair(archive, ["s3.example.social"], base="fullchain1")
    os.symlink("../../archive/s3.example.social/fullchain1.crt", live + "/fullchain.pem")
    os.symlink(key, live + "/privkey.pem")
    assert read_admin_file(live + "/fullchain.pem", 100000).startswith(b"-----BEGIN CERTIFICATE-----")
    assert tc.check_pair(live + "/fullchain.pem", live + "/privkey.pem", ["s3.example.social"])["problems"] == []
    os.chmod(live, 0o775)  # a group may now swap the link
    with pytest.raises(UnsafePath, match="symbolic link that a user other than root can change"):
        read_admin_file(live + "/fullchain.pem", 100000)


def test_not_pem(tls):
    cert, key = make_pair(tls, ["s3.example.social"])
    with open(cert, "w") as f:
        f.write("not a certificate\n")
    with open(key, "w") as f:
        f.write("")
    assert tc.check_pair(cert, key, ["s3.example.social"])["problems"] == [
        "the certificate %s is not a PEM certificate (no -----BEGIN CERTIFICATE----- line)" % cert,
        "the private key %s is not a PEM private key (no -----BEGIN ... PRIVATE KEY----- line)" % key]


def test_a_key_that_does_not_match(tls):
    cert, _key = make_pair(tls, ["s3.example.social"])
    _other_cert, other_key = make_pair(tls, ["s3.example.social"], base="other")
    assert tc.check_pair(cert, other_key, ["s3.example.social"])["problems"] == [
        "the private key %s does not belong to the certificate %s (their public keys differ): nginx refuses the pair"
        % (other_key, cert)]


def test_a_key_with_a_passphrase(tls):
    key = ec.generate_private_key(ec.SECP256R1())
    cert, key_path = make_pair(tls, ["s3.example.social"], key=key)
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.BestAvailableEncryption(b"secret")))
    problems = tc.check_pair(cert, key_path, ["s3.example.social"])["problems"]
    assert problems == ["the private key %s is protected by a passphrase: nginx cannot load it without "
                        "ssl_password_file" % key_path]


def test_a_certificate_for_another_name(tls):
    cert, key = make_pair(tls, ["example.social", "www.example.social"])
    assert tc.check_pair(cert, key, ["s3.example.social"])["problems"] == [
        "the certificate %s is not for s3.example.social: its names (subjectAltName) are example.social, "
        "www.example.social" % cert]


def test_the_common_name_alone_does_not_count(tls):
    cert, key = make_pair(tls, [], cn="s3.example.social")
    problems = tc.check_pair(cert, key, ["s3.example.social"])["problems"]
    assert problems == ["the certificate %s is not for s3.example.social: its names (subjectAltName) are none "
                        "(browsers ignore the Common Name CN=s3.example.social)" % cert]


def test_expired(tls):
    cert, key = make_pair(tls, ["s3.example.social"], not_before=NOW - 100 * DAY, not_after=NOW - 10 * DAY)
    problems = tc.check_pair(cert, key, ["s3.example.social"])["problems"]
    assert problems == ["the certificate %s expired on %s" % (cert, (NOW - 10 * DAY).strftime("%Y-%m-%d %H:%M UTC"))]


def test_not_yet_valid(tls):
    cert, key = make_pair(tls, ["s3.example.social"], not_before=NOW + 2 * DAY, not_after=NOW + 30 * DAY)
    problems = tc.check_pair(cert, key, ["s3.example.social"])["problems"]
    assert problems == ["the certificate %s is not valid before %s" % (cert, (NOW + 2 * DAY).strftime("%Y-%m-%d %H:%M UTC"))]


@pytest.mark.parametrize("pattern, name, matches", [
    ("*.example.social", "s3.example.social", True),
    ("*.example.social", "S3.Example.Social.", True),
    ("*.example.social", "example.social", False),          # the wildcard stands for one label, not none
    ("*.example.social", "a.s3.example.social", False),     # nor for two
    ("*.social", "example.social", False),                  # not directly under a top-level label
    ("s3.*.social", "s3.example.social", False),            # only as the left-most label
    ("s*.example.social", "s3.example.social", False),      # no partial wildcard
    ("*.*.example.social", "a.b.example.social", False),
    ("S3.EXAMPLE.SOCIAL", "s3.example.social", True),
    ("s3.example.social.", "s3.example.social", True),
    ("s3.example.social", "s3.example.socia", False),
])
def test_name_matching_rfc6125(pattern, name, matches):
    assert tc.name_matches(pattern, name) is matches


def test_a_wildcard_certificate(tls):
    cert, key = make_pair(tls, ["example.social", "*.example.social"])
    assert tc.check_pair(cert, key, ["s3.example.social"])["problems"] == []
    problems = tc.check_pair(cert, key, ["media.s3.example.social"])["problems"]
    assert problems == ["the certificate %s is not for media.s3.example.social: its names (subjectAltName) are "
                        "example.social, *.example.social" % cert]


def test_the_first_certificate_of_a_chain_is_the_servers(tls):
    cert, key = make_pair(tls, ["s3.example.social"])
    other_cert, _other_key = make_pair(tls, ["ca.example"], base="ca")
    with open(cert, "ab") as f, open(other_cert, "rb") as g:
        f.write(g.read())
    assert tc.check_pair(cert, key, ["s3.example.social"])["problems"] == []


DUMP = """# configuration file /etc/nginx/nginx.conf:
http {
    ssl_certificate /etc/ssl/http-level.pem;
    ssl_certificate_key /etc/ssl/http-level.key;
    include /etc/nginx/sites-enabled/*;
    upstream backend { server 127.0.0.1:3000; }
}

# configuration file /etc/nginx/sites-enabled/mastodon:
server {
  listen 80;
  server_name example.social;
  ssl_certificate /etc/ssl/port80-only.pem;
  ssl_certificate_key /etc/ssl/port80-only.key;
}
server {
  listen 443 ssl http2;
  server_name example.social www.example.social;
  ssl_certificate     /etc/letsencrypt/live/example.social/fullchain.pem;
  ssl_certificate_key /etc/letsencrypt/live/example.social/privkey.pem;
  ssl_certificate     /etc/letsencrypt/live/example.social-ecdsa/fullchain.pem;
  ssl_certificate_key /etc/letsencrypt/live/example.social-ecdsa/privkey.pem;
  location / { proxy_pass http://backend; }
}
server {
  listen 443 ssl;
  server_name other.example;
  ssl_certificate /etc/ssl/other.pem;
  ssl_certificate_key /etc/ssl/other.key;
}
server {
  listen 443 ssl;
  server_name .wild.example;
  ssl_certificate /etc/ssl/$ssl_server_name.pem;
  ssl_certificate_key /etc/ssl/$ssl_server_name.key;
}
server {
  listen 443 ssl;
  server_name inherits.example;
}
"""


def test_server_certificates_of_the_apps_tls_server_block():
    site = "/etc/nginx/sites-enabled/mastodon"
    assert tc.server_certificates(DUMP, "Example.Social") == [
        ("/etc/letsencrypt/live/example.social/fullchain.pem", "/etc/letsencrypt/live/example.social/privkey.pem", site),
        ("/etc/letsencrypt/live/example.social-ecdsa/fullchain.pem",
         "/etc/letsencrypt/live/example.social-ecdsa/privkey.pem", site)]
    assert tc.server_certificates(DUMP, "inherits.example") == [
        ("/etc/ssl/http-level.pem", "/etc/ssl/http-level.key", site)]
    assert tc.server_certificates(DUMP, "a.wild.example") == []  # a variable: nginx decides at run time
    assert tc.server_certificates(DUMP, "unknown.example") == []
