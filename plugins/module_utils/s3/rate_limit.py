# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The token-bucket rate limiter shared by everything that sends an S3 request.

Plain Python (no Ansible import). Every sender - the destination listing, the sources
(plugins/module_utils/copy/sources.py), the engine's PUTs and parts, copy_head_index's HeadObjects -
calls ``acquire()`` once per request, so one cap (``max_requests_per_second``) and one request count
cover a whole run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import threading
import time


class RateLimiter(object):
    """Token bucket shared by every thread: ``acquire()`` before each S3 request.

    ``rate`` requests per second on average, bursts up to ``burst`` (default: one second's worth,
    at least 1). ``rate`` 0 or None means no cap. ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(self, rate, burst=None, clock=time.monotonic, sleep=time.sleep):
        self.rate = float(rate or 0)
        self.capacity = float(burst if burst is not None else max(1.0, self.rate))
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._last = clock()
        self.requests = 0

    def acquire(self, n=1):
        if self.rate <= 0:
            with self._lock:
                self.requests += n
            return 0.0
        with self._lock:
            # Debt-based bucket: take the tokens now, then sleep off any deficit while holding the
            # lock. Waiters are serialised, which keeps the rate exact (a waiting thread could not
            # send anything anyway).
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._last) * self.rate)
            self._last = now
            self._tokens -= n
            self.requests += n
            if self._tokens >= 0:
                return 0.0
            delay = -self._tokens / self.rate
            self._sleep(delay)
            return delay


def acquire(limiter, n=1):
    """``limiter.acquire(n)``, or nothing when there is no limiter."""
    if limiter is not None:
        limiter.acquire(n)
