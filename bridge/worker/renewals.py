"""Keeping the leases we hold: renewal rounds and the heartbeat, on a task of their own.

A busy processor can never starve them. With ``coordination.liveness: lease`` each lease's
counter is renewed every renew interval (KCL's way) and the heartbeat rides along; with
``heartbeat`` the heartbeat alone keeps every lease (one write a round, however many leases
are held) and one read of the held rows hears handoff requests and leases lost. Either way,
each round ends by answering the handoff requests heard.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

from bridge.config import BridgeConfig
from bridge.leases.store import LeaseStore
from bridge.metrics import Metrics
from bridge.worker.handoffs import Handoffs
from bridge.worker.lease_holder import observe_rows
from bridge.worker.lease_table_retry import renewal_backoff, retry_passing
from bridge.worker.membership import Membership
from bridge.worker.tenures import Tenures


class Renewals:
    def __init__(
        self,
        config: BridgeConfig,
        *,
        tenures: Tenures,
        store: LeaseStore,
        membership: Membership,
        handoffs: Handoffs,
        metrics: Metrics,
        stopping: asyncio.Event,
        clock: Callable[[], float],
        rng: random.Random,
        log: Any,
    ) -> None:
        self.config = config
        self.tenures = tenures
        self.store = store
        self.membership = membership
        self.handoffs = handoffs
        self.metrics = metrics
        self.stopping = stopping
        self.clock = clock
        self.rng = rng
        self.lease_duration = config.coordination.lease_duration.total_seconds()
        self.by_heartbeat = config.coordination.liveness == "heartbeat"
        self._log = log

    async def rounds(self, until: asyncio.Event) -> None:
        """A renewal round every renew interval, counted from the previous round's start, not
        its end: a round's retries (throttling) end when the next round is due, so a lease is
        renewed at least every two intervals however slow the lease table is."""
        interval = self.config.coordination.effective_renew_interval.total_seconds()
        while not until.is_set():
            next_round = self.clock() + interval
            if self.by_heartbeat:
                await self._vouch(next_round)
            else:
                beat = asyncio.ensure_future(self._beat(next_round))
                await asyncio.gather(*(h.renew(next_round) for h in self.tenures.holders()))
                await beat  # after the renewals: a failing heartbeat must not delay them
            self.handoffs.answer()
            self.tenures.forget_lost()
            self.tenures.update_gauges()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(until.wait(), max(0.0, next_round - self.clock()))

    async def _vouch(self, give_up_at: float) -> None:
        """Heartbeat liveness: the heartbeat keeps every lease we hold (no lease-table write),
        and one read of their rows hears handoff requests and leases lost."""
        sent = await self._beat(give_up_at)
        holders = self.tenures.holders()
        if sent is not None:
            for holder in holders:
                holder.vouch(sent)
        try:
            await observe_rows(self.store, holders)
        except Exception as exc:  # the deadline decides; the next round reads again
            self._log.warning("could not read the held leases", error=repr(exc))

    async def _beat(self, give_up_at: float) -> float | None:
        """The heartbeat, tried again at once after a passing failure (like a renewal) until
        ``give_up_at``: other workers count us by it, and a worker that looks gone is owed no
        share, so its leases would look stealable. Returns when the beat that went through
        was sent (None if none did); never raises: the renewals go on."""

        def failed(attempt: int, error: BaseException, retrying: bool) -> None:
            self.metrics.errors_transient.inc()
            self._log.warning("heartbeat failed", attempt=attempt, error=repr(error))

        async def pause(delay: float) -> None:
            delay = min(delay, give_up_at - self.clock())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), max(0.0, delay))

        async def beat() -> float:
            sent = self.clock()
            await self.membership.beat()
            return sent

        return await retry_passing(
            beat,
            failed=failed,
            backoff=renewal_backoff(self.lease_duration),
            rng=self.rng,
            may_retry=lambda: self.clock() < give_up_at and not self.stopping.is_set(),
            pause=pause,
        )
