"""A fake monotonic clock for the rate limiter's tests (tests/unit/test_rate_limit.py, test_copy_engine.py):
``clock()`` reads it, ``clock.sleep(s)`` advances it and notes the sleep."""


class FakeClock:
    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds
