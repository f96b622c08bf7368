"""The endpoint's clock: wall time that never steps back, plus an offset tests can advance.

Retention, iterator expiry and time-based rotation all read this clock, so advancing it through
the control API makes a day pass in a request, with no sleeping and no waiting in tests. Only a
reset of the endpoint takes the offset back to zero: it also drops every stream and iterator
that could have noticed time going backwards.
"""

from __future__ import annotations

import threading
import time


class EndpointClock:
    def __init__(self) -> None:
        self._wall_at_start = time.time()
        self._mono_at_start = time.monotonic()
        self._offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        """Epoch seconds: real elapsed time on a monotonic base, plus every advance so far."""
        return self._wall_at_start + (time.monotonic() - self._mono_at_start) + self._offset

    @property
    def offset(self) -> float:
        return self._offset

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._offset += seconds
        return self.now()

    def reset(self) -> None:
        """Real time again, as when the endpoint started."""
        with self._lock:
            self._offset = 0.0
