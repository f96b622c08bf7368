"""Test-only: a process started with this directory on PYTHONPATH sees its wall clock shifted
by ``CHAOS_CLOCK_OFFSET`` seconds (time.time, time.time_ns, datetime.now/utcnow), while
time.monotonic stays real. It stands in for faketime, which this machine does not have.

Only ``bridge run`` workers of the clock-skew scenario get it (the worker's environment).
"""

import datetime as _datetime
import os
import time as _time

_OFFSET = float(os.environ.get("CHAOS_CLOCK_OFFSET", "0"))

if _OFFSET:
    _real_time, _real_time_ns = _time.time, _time.time_ns
    _time.time = lambda: _real_time() + _OFFSET
    _time.time_ns = lambda: _real_time_ns() + int(_OFFSET * 1e9)

    class _ShiftedDatetime(_datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return cls.fromtimestamp(_time.time(), tz)

        @classmethod
        def utcnow(cls):
            return cls.fromtimestamp(_time.time(), _datetime.UTC).replace(tzinfo=None)

    _datetime.datetime = _ShiftedDatetime
