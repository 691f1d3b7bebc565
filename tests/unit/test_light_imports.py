"""What an entry point loads of plugins/module_utils (issue 21 item 5): only the rooms it uses.

Each entry point is imported in a fresh Python (the collection on sys.path as tests/conftest.py puts it),
and the module_utils rooms in its sys.modules are compared with an allow-list: a filter that resolves an
endpoint does not load the copy's lean S3 path, a module that reads Misskey's package.json does not load
Mastodon's database or .env editing, and a module that counts Mastodon's media rows reads the database
through the PostgreSQL room both apps share and loads no S3 client. A new import that brings a heavier
room fails here: put it where it is used (an import inside the function) or give the small part a room
of its own.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS_PATH = ROOT / ".cache" / "collections"
COLLECTION = "ansible_collections.fediverse.object_storage"
ROOMS = COLLECTION + ".plugins.module_utils."

# Imports the entry point given in argv[2] with argv[1] on sys.path, prints the rooms it loaded (the
# sub-packages themselves, e.g. `s3`, are folders, not rooms).
PROBE = """
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
importlib.import_module(sys.argv[2])
prefix = sys.argv[3]
print(json.dumps(sorted(name[len(prefix):] for name, mod in list(sys.modules.items())
                        if name.startswith(prefix) and not getattr(mod, "__path__", None))))
"""

# entry point -> (the rooms it may load, the rooms it must load: what it is about)
ALLOWED = {
    # resolve_endpoint / region_for only: s3.client without the lean path (s3.lean, s3.wire, s3.listing, s3.rate_limit)
    "plugins.filter.s3_endpoint": ({"s3.client"}, {"s3.client"}),
    # package.json's name and version (misskey.fork) and run_module: Misskey's rooms, the shared PostgreSQL
    # room and s3's endpoint rules; no Mastodon room (mastodon.*), no copy, no lean S3 path
    "plugins.modules.misskey_info": (
        {"misskey.config", "misskey.fork", "misskey.db", "db.postgres", "s3.client", "fs.atomic", "fs.safe_fs"},
        {"misskey.config", "misskey.fork", "misskey.db", "fs.atomic"},
    ),
    # Mastodon's database through the shared PostgreSQL room, s3.listing's join_key for the sample's keys;
    # no S3 client, no copy
    "plugins.modules.media_info": (
        {"mastodon.db", "db.postgres", "mastodon.layout", "mastodon.envfile", "fs.atomic", "fs.safe_fs",
         "s3.listing", "s3.rate_limit"},
        {"mastodon.db", "db.postgres"},
    ),
}


def rooms_loaded_by(entry_point, cwd):
    done = subprocess.run([sys.executable, "-c", PROBE, str(COLLECTIONS_PATH), COLLECTION + "." + entry_point, ROOMS],
                          capture_output=True, text=True, cwd=cwd, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout))


@pytest.mark.parametrize("entry_point", sorted(ALLOWED))
def test_entry_point_loads_only_the_rooms_it_uses(entry_point, tmp_path):
    allowed, needed = ALLOWED[entry_point]
    loaded = rooms_loaded_by(entry_point, tmp_path)
    assert loaded <= allowed, "%s loads rooms it does not use: %s" % (entry_point, sorted(loaded - allowed))
    assert needed <= loaded, "%s does not load %s" % (entry_point, sorted(needed - loaded))

