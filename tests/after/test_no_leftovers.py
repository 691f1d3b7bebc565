"""Run AFTER the main suite, as a separate invocation:

    pytest tests/unit tests/integration && pytest -q tests/after

Fails when anything the test-services harness starts is still there: a ceph-mon/ceph-osd/radosgw,
postgres or nginx whose command line carries the ``fos-test-`` marker, a podman container named
``fos-test-*`` or labelled ``fos-test=1``, or a ``fos-test-*`` temp dir. It starts nothing itself
(no fixture of tests/conftest.py is used). Services of a suite still running in parallel on the same
machine count as leftovers too: run it when no other suite is running.
"""

import tempfile

from tests.services import procs


def test_no_harness_process_left():
    left = procs.marker_processes()
    assert not left, "harness daemons still running:\n" + "\n".join("%d %s" % pc for pc in left)


def test_no_harness_container_left():
    left = procs.marker_containers()
    assert not left, "fos-test containers still there (python -m tests.services.podman cleanup): %s" % left


def test_no_harness_temp_dir_left():
    left = procs.marker_dirs(tempfile.gettempdir())
    assert not left, "fos-test temp dirs still there: %s" % left
