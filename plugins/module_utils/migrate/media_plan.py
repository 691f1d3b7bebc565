# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where the media are served once they live in the bucket: the one computation of the media URL.

``media_plan(values)`` takes the app, the proxy mode and the names the user gave and returns what every
phase needs to agree on: the host nginx serves the media under (its ``server_name`` in mode subdomain,
the app's own name otherwise), the location, Mastodon's ``S3_ALIAS_HOST``, Misskey's ``baseUrl`` and
``prefix``, the base of every media URL (the summary prints it, the verify fetches under it) and the
URL and Host header the verify uses. The migrate role, the mastodon and misskey roles and the summary
read this plan; none of them composes a media URL itself (tests/unit/test_media_plan.py checks that
for the roles' and templates' text).

The modes (nginx_proxy's templates serve them):

- ``subdomain``: ``https://MEDIA_DOMAIN/KEY`` (``MEDIA_DOMAIN`` defaults to ``s3.`` + the domain);
- ``directory``: ``https://DOMAIN/storage/KEY`` (the location is nginx_proxy_directory_path);
- ``system`` (Mastodon only): ``https://DOMAIN/system/KEY``, the bucket behind Mastodon's own path.

Misskey keys its objects ``PREFIX/NAME`` and writes ``baseUrl/PREFIX/NAME``: in mode directory its
``baseUrl`` is the app's origin and the prefix the location's name, so the URL is the same as above.

Plain Python, no Ansible import; the filter ``media_plan`` (plugins/filter/media_plan.py) calls it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 (ansible-test sanity requires it)

MODES = ("subdomain", "directory", "system")
DEFAULT_DIRECTORY = "/storage/"


class MediaPlanError(ValueError):
    pass


def default_media_domain(domain):
    """Mode subdomain's media host when none is given: ``s3.`` + the app's domain."""
    return "s3." + domain


def _text(value):
    return "" if value is None else str(value).strip()


def media_plan(values):
    """The plan for ``values``: a dict with ``app``, ``proxy_mode``, ``domain`` and optionally
    ``media_domain`` (mode subdomain; default ``s3.`` + domain), ``directory_path`` (mode directory; default
    ``/storage/``), ``verify_base_url`` and ``verify_host_header`` (the verify's overrides).

    Returns a dict:

    - ``media_host``: the host the media URLs name, nginx's ``server_name`` for them;
    - ``location``: the path nginx serves them under (``/``, ``/storage/``, ``/system/``);
    - ``alias_host``: Mastodon's ``S3_ALIAS_HOST`` (host and path, no scheme, no trailing slash);
    - ``media_url``: ``https://`` + alias_host, the base of every media URL;
    - ``media_domain``: the media host of mode subdomain, ``""`` in the other modes;
    - ``misskey_base_url`` and ``misskey_prefix``: Misskey's ``baseUrl`` and, in mode directory, its
      ``prefix`` (``None`` in mode subdomain: the misskey role keeps its own ``misskey_s3_prefix``);
    - ``verify_base_url``: where the verify fetches the media (its override, else media_url);
    - ``verify_host_header``: the Host header it sends (``""``: the URL's own).

    Raises MediaPlanError on a mode it does not know (the input checks say so first, in the user's words;
    they also refuse mode system for Misskey).
    """
    app = _text(values.get("app")) or "mastodon"
    mode = _text(values.get("proxy_mode"))
    domain = _text(values.get("domain"))
    if mode not in MODES:
        raise MediaPlanError("proxy mode must be one of %s, not %r" % (", ".join(MODES), mode))
    if mode == "subdomain":
        media_domain = _text(values.get("media_domain")) or default_media_domain(domain)
        host, location = media_domain, "/"
    else:
        media_domain = ""
        host = domain
        location = "/system/" if mode == "system" else "/%s/" % (
            _text(values.get("directory_path")) or DEFAULT_DIRECTORY).strip("/")
    alias_host = host + location.rstrip("/")
    media_url = "https://" + alias_host
    return {
        "app": app,
        "proxy_mode": mode,
        "domain": domain,
        "media_host": host,
        "location": location,
        "alias_host": alias_host,
        "media_url": media_url,
        "media_domain": media_domain,
        "misskey_base_url": "https://" + host,
        "misskey_prefix": location.strip("/") if mode == "directory" else None,
        "verify_base_url": (_text(values.get("verify_base_url")) or media_url).rstrip("/"),
        "verify_host_header": _text(values.get("verify_host_header")),
    }
