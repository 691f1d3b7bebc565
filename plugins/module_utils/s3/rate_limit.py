# -*- coding: utf-8 -*-
# Copyright: fediverse.object_storage contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The rate limiter shared by everything that sends an S3 request, and its pacing to the provider's limit.

Plain Python (no Ansible import), unit-tested with a fake clock in tests/unit/test_rate_limit.py.

One ``RateLimiter`` per run. Where it takes its tokens:

* **on the wire** (issue 22): ``s3.pace_client`` attaches it to a client; then every HTTP attempt that
  client sends - first attempts and retries alike, of the lean path (s3_lean.LeanS3) and of boto3
  (botocore's ``before-send`` event) - calls ``before_send()``, and every answer is told back with
  ``observe(status, code)``. ``acquire()`` from the callers is then a no-op (the request is counted
  when it is sent), so ``requests`` is what the server received;
* **at the call** otherwise (a client it is not attached to, the unit tests' fake clients): every
  sender - the destination listing, the sources (copy/sources.py), the engine's PUTs and parts,
  copy_head_index's HeadObjects - calls ``acquire()`` once per request, as before.

The pace (GCRA, the "virtual scheduling" form of a token bucket): requests are spaced ``1/rate``
apart, with a burst of ``burst`` requests at most (a hundredth of a second's worth by default: a
gateway that counts requests per short window sees no bursts). A thread waits outside the lock.

Adaptive pacing (``adaptive=True``, media_copy's default): additive increase, multiplicative decrease,
as TCP does with its window.

* The start: ``start`` (Vultr's tier rate, ``TIER_RATES``), else the cap, else unpaced (as fast as the
  client goes) until the gateway first pushes back.
* A push-back is a 503 (SlowDown, ServiceUnavailable: Ceph RGW's and Vultr's answer over the limit) or a
  429 / a throttling code (RequestLimitExceeded...). The rate becomes ``decrease`` (0.85) times the
  lower of the current rate and the rate the gateway accepted lately (the last RECENT seconds, else
  the last ``window``; unpaced: the accepted rate), never below ``floor``. One decrease per round: a
  push-back to a request sent before the last decrease, or within HOLD seconds after it (the gateway's
  own bucket drains), is counted but does not decrease again.
* Between push-backs the rate grows by ``increase`` (1.5 %) of the rate before the last decrease per
  second, a growth that doubles (ACCELERATION) with each second without a push-back: gentle near the
  limit just after a cut, quick back up when a cut went too deep. Up to the cap
  (``max_requests_per_second``, else the tier's rate when known, else none). The growth and the cut
  are proportions of the limit, so the saw-tooth has the same shape at 150, 800 or 4,000 requests/s
  (tests/unit/test_rate_limit.py simulates a gateway at each).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type  # noqa: UP001 - required by ansible-test sanity

import collections
import math
import threading
import time

# Vultr Object Storage's request limits per subscription (operations per second), by tier: Vultr's
# storage-performance page (issue 22). Keys are the tiers' slugs/sales names, lower case.
TIER_RATES = {"standard": 800.0, "premium": 1000.0, "performance": 4000.0, "accelerated": 10000.0}

DECREASE = 0.85
INCREASE = 0.015
# Each second without a push-back the growth speeds up by this factor: gentle just after a cut (near the
# limit), fast when the cut went too deep or the limit rose (CUBIC's idea, in its simplest form).
ACCELERATION = 2.0
WINDOW = 0.5
GAP = 0.25
RECENT = 0.15
# After a cut, push-backs to requests sent within HOLD seconds are counted but cut no further: the
# gateway's own bucket, filled by the pace before the cut, takes that long to drain.
HOLD = 0.2
# A burst of at most BURST_SECONDS of the rate (at least one request).
BURST_SECONDS = 0.01
# The floor: a fraction of the start rate or cap, and never less than MIN_FLOOR requests/s.
FLOOR_FRACTION = 0.05
MIN_FLOOR = 2.0
# What the gateway says when it pushes back (429 and 503 by status, these codes whatever the status).
THROTTLE_STATUS = frozenset((429, 503))
THROTTLE_CODES = frozenset((
    "SlowDown", "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
    "RequestThrottledException", "TooManyRequests", "TooManyRequestsException", "RequestLimitExceeded",
    "BandwidthLimitExceeded", "ServiceUnavailable",
))


def tier_rate(tier):
    """The request rate of a Vultr tier (``standard``, ``premium``, ``performance``, ``accelerated``;
    any case), or None."""
    if not tier:
        return None
    return TIER_RATES.get(str(tier).strip().lower())


def is_throttle(status, code=None):
    return status in THROTTLE_STATUS or (code or "") in THROTTLE_CODES


class RateLimiter(object):
    """The run's limiter, shared by every thread (see the module's docstring).

    ``rate``: the cap in requests per second (0 or None: none). ``burst``: requests that may go at
    once (default BURST_SECONDS of the rate, at least 1). ``adaptive``: pace by AIMD from ``start``
    (default the cap; 0: unpaced until the first push-back). ``clock``/``sleep`` are injectable for tests.
    """

    def __init__(self, rate=0, burst=None, clock=time.monotonic, sleep=time.sleep, adaptive=False, start=None,
                 floor=None, decrease=DECREASE, increase=INCREASE, window=WINDOW, hold=HOLD):
        self.cap = float(rate or 0)
        self.adaptive = bool(adaptive)
        start = float(start or 0)
        if self.cap and (not start or start > self.cap):
            start = self.cap
        self.start_rate = start
        self.rate = start  # the current pace; 0: unpaced
        reference = start or self.cap
        self.floor = float(floor) if floor is not None else max(MIN_FLOOR, FLOOR_FRACTION * reference)
        self._burst = burst
        self.decrease = float(decrease)
        self.increase = float(increase)
        self.window = float(window)
        self.hold = float(hold)
        self._step = self.increase * reference  # requests/s gained per second between push-backs
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._local = threading.local()
        self._tat = clock()  # the theoretical arrival time of the next request (GCRA)
        self._grown_at = self._created = self._tat
        self._decreased_at = None
        self._accepted = collections.deque()  # times of the answers that were not push-backs, last ``window`` s
        self._first = None
        self._last = None
        self.wired = False
        self.requests = 0
        self.accepted = 0
        self.throttled = 0
        self.decreases = 0
        self.min_rate = None
        self.max_rate = None

    # --- pacing ------------------------------------------------------------------------------------
    def burst_for(self, rate):
        if self._burst is not None:
            return max(1.0, float(self._burst))
        return max(1.0, rate * BURST_SECONDS)

    def _grow(self, now):
        """The increase since the last call (adaptive and paced only): ``_step`` per second just after a
        cut, ACCELERATION times more with each quiet second; the caller holds the lock."""
        if self.adaptive and self.rate > 0 and self._step > 0 and now > self._grown_at:
            if self.cap and self.rate >= self.cap:
                self.rate = self.cap
            else:
                since = self._decreased_at if self._decreased_at is not None else self._created
                t0, t1 = min(self._grown_at - since, 60.0), min(now - since, 60.0)
                log_g = math.log(ACCELERATION)
                grown = self.rate + self._step * (ACCELERATION ** t1 - ACCELERATION ** t0) / log_g
                self.rate = min(grown, self.cap) if self.cap else grown
        self._grown_at = now

    def reserve(self, n=1):
        """Reserve ``n`` requests; returns the seconds to wait before sending them (0: at once). This
        thread's next ``observe`` is taken as the answer to them."""
        with self._lock:
            now = self._clock()
            self.requests += n
            if self._first is None:
                self._first = now
            self._grow(now)
            if self.rate <= 0:
                self._local.sent = now
                return 0.0
            interval = n / self.rate
            tolerance = (self.burst_for(self.rate) - 1.0) / self.rate
            at = max(now, self._tat - tolerance)
            self._tat = max(self._tat, at) + interval
            self._local.sent = at
            if self.min_rate is None or self.rate < self.min_rate:
                self.min_rate = self.rate
            if self.max_rate is None or self.rate > self.max_rate:
                self.max_rate = self.rate
            delay = at - now
            return delay if delay > 1e-9 else 0.0

    def _wait(self, delay):
        if delay > 0:
            self._sleep(delay)
        return delay

    def before_send(self, n=1):
        """One HTTP attempt is about to be sent (the wire's hook): wait for its turn."""
        return self._wait(self.reserve(n))

    def acquire(self, n=1):
        """A caller is about to send ``n`` requests: wait for their turn - unless the limiter is on the
        wire (``wired``), where each attempt takes its own token (``before_send``)."""
        if self.wired:
            return 0.0
        return self._wait(self.reserve(n))

    # --- feedback ----------------------------------------------------------------------------------
    def _accepted_rate(self, now):
        """Answers that were not push-backs per second over the last ``window`` seconds (None: no data)."""
        while self._accepted and self._accepted[0] < now - self.window:
            self._accepted.popleft()
        # A sample followed by a quiet gap (the probe and the listing before the copy began) is no part
        # of the current flow.
        while len(self._accepted) > 1 and self._accepted[1] - self._accepted[0] > GAP:
            self._accepted.popleft()
        if not self._accepted:
            return None
        # The last RECENT seconds when they hold enough answers: at the first push-back the flow was still
        # ramping up (connections, the first rows), and only its end shows what the gateway takes.
        recent = [t for t in self._accepted if t >= now - RECENT] if len(self._accepted) > 10 else ()
        if len(recent) >= 10:
            return len(recent) / max(now - recent[0], 0.05)
        return len(self._accepted) / max(now - self._accepted[0], 0.05)

    def observe(self, status, code=None, sent=None):
        """The answer to the last request this thread sent (or to the one sent at ``sent``, the clock's
        time): a push-back (503, 429, SlowDown...) slows the pace (adaptive), anything else counts as
        accepted. Returns True for a push-back."""
        with self._lock:
            now = self._clock()
            self._last = now
            if not is_throttle(status, code):
                self.accepted += 1
                self._accepted.append(now)
                return False
            self.throttled += 1
            if sent is None:
                sent = getattr(self._local, "sent", None)
            if not self.adaptive:
                return True
            if self._decreased_at is not None and sent is not None and sent < self._decreased_at + self.hold:
                return True  # sent at the old pace, or while the gateway drained: this round was answered
            self._grow(now)
            base = self.rate
            accepted = self._accepted_rate(now)
            if accepted is not None and (base <= 0 or accepted < base):
                base = accepted
            if base <= 0:  # unpaced and nothing accepted yet: what was sent so far
                span = max(now - self._first, 1e-3)
                base = self.requests / span
            self.rate = max(self.floor, base * self.decrease)
            if self.cap:
                self.rate = min(self.rate, self.cap)
            self._step = self.increase * max(base, self.rate)
            self._decreased_at = now
            self.decreases += 1
            # Requests already reserved at the old pace keep their slots; the next one waits its new turn.
            self._tat = max(self._tat, now)
            if self.min_rate is None or self.rate < self.min_rate:
                self.min_rate = self.rate
            return True

    # --- what the run reports ----------------------------------------------------------------------
    def held_rate(self):
        """Accepted requests per second between the first request and the last answer (None: too
        few to say)."""
        if self._first is None or self._last is None or self._last - self._first < 0.5 or self.accepted < 2:
            return None
        return self.accepted / (self._last - self._first)

    def report(self):
        """What the result says of the pace: ``held_rate`` (requests/s the gateway accepted), the pace
        at the start and at the end, ``throttled`` (503/429 answers: how often the gateway pushed back)..."""
        held = self.held_rate()
        return {
            "adaptive": self.adaptive,
            "cap": self.cap or None,
            "start_rate": round(self.start_rate, 1) or None,
            "rate": round(self.rate, 1) or None,
            "min_rate": round(self.min_rate, 1) if self.min_rate else None,
            "held_rate": round(held, 1) if held is not None else None,
            "requests": self.requests,
            "throttled": self.throttled,
            "decreases": self.decreases,
            "on_wire": self.wired,
        }


def acquire(limiter, n=1):
    """``limiter.acquire(n)``, or nothing when there is no limiter."""
    if limiter is not None:
        limiter.acquire(n)
