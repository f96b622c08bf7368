"""Cooperative handoffs: a lease changes hands at a batch boundary, never under a batch.

A worker that wants a lease (below its fair share, or claiming a leaving worker's) does not
take it: it writes its name on the row (``request_handoff``) and watches the row. The owner
hears the request with its next renewal (the row comes back with the write), or within a poll
interval while it is leaving; it stops that shard's consumer after the batch in hand is
checkpointed and writes the new owner in one conditional write (``hand_over``). The asker,
reading the row every watch interval, starts from that checkpoint at once: no record is read
twice, and the shard goes unread for little more than a poll and a watch interval. An owner
that does not answer within ``patience`` (an older bridge, a stuck batch) has the lease taken
from it, as before.

The giver's side runs on the renewal rounds and, while leaving, on its own short polls; the
asker's side is one watch task per lease asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

from bridge.core.leasing import Lease
from bridge.leases.store import LeaseConflictError, LeaseStore
from bridge.worker.lease_holder import observe_rows
from bridge.worker.membership import Membership
from bridge.worker.tenures import Tenure, Tenures

log = structlog.get_logger("bridge.handoffs")

_GIVE_TRIES = 3
"""Askers that replace one another's request while the owner hands over: this many tries."""
_WATCH_INTERVAL = 0.05
"""Seconds between an asker's reads of the row it waits for: one consistent read of a small
row (one read unit), for the second or so until the owner answers."""


class Handoffs:
    def __init__(
        self,
        *,
        worker_id: str,
        store: LeaseStore,
        tenures: Tenures,
        membership: Membership,
        adopt: Callable[[Lease, float], Awaitable[None]],
        force: Callable[[Lease], Awaitable[None]],
        poll_interval: float,
        patience: float,
        stopping: asyncio.Event,
        clock: Callable[[], float],
    ) -> None:
        """``adopt(lease, read_at)`` starts reading a lease handed to us (read at ``read_at``,
        our clock); ``force(lease)`` takes it from an owner that did not answer."""
        self.worker_id = worker_id
        self.store = store
        self.tenures = tenures
        self.membership = membership
        self.adopt = adopt
        self.force = force
        self.poll_interval = poll_interval
        self.patience = patience
        self.stopping = stopping
        self.clock = clock
        self.watch_interval = min(poll_interval, _WATCH_INTERVAL)
        """How often an asker reads the row: the shard goes unread from the owner's last
        batch until the asker sees the row, so this is most of a handoff's gap."""
        self._watches: dict[str, asyncio.Task[None]] = {}
        self._giving: set[asyncio.Task[None]] = set()
        self._log = log.bind(worker=worker_id)

    # -- asking ------------------------------------------------------------------------------

    def asked(self) -> set[str]:
        """The leases asked for and not yet settled: counted as ours by the take plan, so
        that a pending request is not asked again, nor one more lease besides."""
        return {key for key, task in self._watches.items() if not task.done()}

    async def ask(self, lease: Lease) -> None:
        if lease.key in self.asked():
            return
        sent = self.clock()
        try:
            await self.store.request_handoff(lease, self.worker_id)
        except LeaseConflictError:
            return  # its owner changed since the scan: the next take cycle sees it anew
        self._log.info("lease asked for", shard=lease.key, owner=lease.owner)
        self._watches[lease.key] = asyncio.create_task(
            self._watch(lease, sent), name=f"handoff-{lease.key}"
        )

    async def _watch(self, lease: Lease, asked_at: float) -> None:
        """Read the row every watch interval until it is ours (adopt it), goes elsewhere, or
        its owner kept it past ``patience`` (take it).

        An adopted lease is held from when the read *before* the one that showed it ours was
        sent (at first, from when we asked): that read saw the old owner, so the handoff was
        written after it was sent, and the others credit the change no earlier than that."""
        deadline = self.clock() + self.patience
        before = asked_at
        while not self.stopping.is_set():
            sent = self.clock()
            try:
                row = next(iter(await self.store.get_leases([lease.key])), None)
            except Exception as exc:  # a passing failure: the next read tries again
                self._log.warning("could not read an asked-for lease", error=repr(exc))
            else:
                if row is None:
                    return
                if row.owner == self.worker_id:
                    await self.adopt(row, before)
                    return
                if row.owner != lease.owner or row.handoff_to != self.worker_id:
                    return  # taken, released or asked for by another: the take cycle decides
                if self.clock() >= deadline:
                    self._log.warning("owner did not hand the lease over", shard=lease.key)
                    await self.force(row)
                    return
                before = sent
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), self.watch_interval)

    async def settle(self) -> None:
        """At our own stop: the handoffs we give finished, no more watching, and a lease
        handed to us meanwhile given back at once rather than left to expire."""
        await asyncio.gather(*self._giving, return_exceptions=True)
        watches, self._watches = list(self._watches.items()), {}
        for _, task in watches:
            task.cancel()
        await asyncio.gather(*(task for _, task in watches), return_exceptions=True)
        keys = [key for key, _ in watches if self.tenures.get(key) is None]
        if not keys:
            return
        with contextlib.suppress(Exception):
            # Withdrawn first: an owner handing over now is refused (the row no longer
            # names us) and keeps the lease; one that handed it over already is read below.
            for key in keys:
                await self.store.withdraw_request(key, self.worker_id)
            for row in await self.store.get_leases(keys):
                if row.owner == self.worker_id:
                    await self.store.release(row)

    # -- answering ---------------------------------------------------------------------------

    def answer(self, *, leaving: bool = False) -> None:
        """Stop, at their next batch boundary, the consumers of the leases another worker
        asked for (unless it is leaving too, or we are), and hand each lease over once its
        consumer stopped (``consumer_stopped``), or at once when none is running."""
        refuse = frozenset() if leaving else self.membership.leaving
        for tenure in list(self.tenures.values()):
            to = tenure.holder.asked_for_by
            if to is None or to in refuse or tenure.handing_to is not None or tenure.failed:
                continue
            if tenure.holder.lost.is_set() or tenure.holder.lease.finished:
                continue
            tenure.handing_to = to
            tenure.ask_to_hand_off()
            self._log.info("handing lease over", shard=tenure.holder.key, to=to)
            if not tenure.running:
                self.consumer_stopped(tenure)

    def consumer_stopped(self, tenure: Tenure) -> None:
        """The consumer of a lease being handed over stopped after its last checkpoint."""
        task = asyncio.get_running_loop().create_task(self._give(tenure))
        self._giving.add(task)
        task.add_done_callback(self._giving.discard)

    async def _give(self, tenure: Tenure) -> None:
        """Hand the lease to its asker; to the one asking now if another replaced it. If
        nobody asks any more, the lease stays ours: read again from the next take cycle (or
        released by the drain, when we are leaving)."""
        to = tenure.handing_to
        for _ in range(_GIVE_TRIES):
            if to is None:
                return
            answer = await tenure.holder.hand_over(to)
            if answer is None:
                if tenure.holder.lost.is_set():
                    self.tenures.drop(tenure.holder.key)
                return
            if not answer:
                break
            tenure.handing_to = to = answer
        self._log.info("handoff not taken up; keeping the lease", shard=tenure.holder.key)
        tenure.resume()

    async def leave(self, until: float) -> None:
        """Leaving: say so, and hand each lease to the worker that asks for it, while still
        reading it, until every lease is asked for, no other worker stays to ask (all of them
        leaving too, as when a whole deployment stops), or ``until`` (our clock). The others
        ask at their next take cycle; we read our rows and the heartbeat rows every poll
        interval meanwhile."""
        if not self.tenures.held() or not self.membership.anyone_staying():
            return
        if not await self.membership.announce_leaving():
            return
        while self.clock() < until:
            with contextlib.suppress(Exception):  # a passing failure: the renewals hear too
                await observe_rows(
                    self.store, [t.holder for t in self.tenures.values() if t.handing_to is None]
                )
                await self.membership.live_workers()
            self.answer(leaving=True)
            if all(t.handing_to is not None for t in self.tenures.values()):
                break
            if not self.membership.anyone_staying():
                break
            await asyncio.sleep(min(self.poll_interval, max(0.0, until - self.clock())))
        # Each consumer stops after its next read; then its lease goes to its asker.
        reading = [t.task for t in self.tenures.values() if t.handing_to and t.task]
        if reading:
            await asyncio.wait(reading, timeout=max(0.0, until - self.clock()))
        await asyncio.gather(*self._giving, return_exceptions=True)
