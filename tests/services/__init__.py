"""Throwaway real services for the tests, the demo and molecule (issue 2).

    from tests.services.ceph import CephRGW        # single-node Ceph RGW, HTTP + HTTPS
    from tests.services.postgres import Postgres   # PostgreSQL cluster as the postgres user
    from tests.services.nginx import Nginx         # nginx with a temp prefix

Each runs from a ``fos-test-*`` temp dir and is stopped by PID (see base.py, procs.py);
``python -m tests.services up|down|leftovers`` is the command line (cli.py).
"""
