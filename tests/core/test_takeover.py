"""Judging a takeover of a KCL lease table, lease by lease and shard by shard. Pure."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from bridge.core import sync_plan
from bridge.core.lease_keys import StreamId, StreamKeys
from bridge.core.leasing import Lease
from bridge.core.takeover import TakeoverReport, Verdict, judge_takeover


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parent_shard_id: str | None
    closed: bool


# p (closed) -> c1 (closed) -> c2 (open); q (open) with no lease yet
SHARDS = {
    "p": Shard("p", None, True),
    "c1": Shard("c1", "p", True),
    "c2": Shard("c2", "c1", False),
    "q": Shard("q", None, False),
}


def judge(leases: list[Lease], **options: object) -> TakeoverReport:
    arguments: dict[str, object] = {
        "shards": SHARDS,
        "leases": leases,
        "other_rows": [],
        "trimmed": set(),
        "live_owners": set(),
        "initial": "trim_horizon",
        **options,
    }
    return judge_takeover(**arguments)  # type: ignore[arg-type]


def verdicts(report: TakeoverReport) -> dict[str, Verdict]:
    return {finding.key: finding.verdict for finding in report.findings}


def test_parents_whose_leases_kcl_deleted_are_skipped_and_the_takeover_is_safe() -> None:
    report = judge([Lease("c2", owner="kcl-1", counter=4, checkpoint="40")])
    assert verdicts(report) == {
        "c2": Verdict.RESUME,
        "q": Verdict.CREATE,
        "p": Verdict.SKIP,
        "c1": Verdict.SKIP,
    }
    assert report.safe
    (resume,) = [f for f in report.findings if f.key == "c2"]
    assert "after 40" in resume.detail and "kcl-1" in resume.detail


def test_without_the_lineage_rule_the_deleted_parents_would_be_read_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What the shard sync did before it knew the rule: lease every shard without a lease.
    monkeypatch.setattr(sync_plan, "ancestors_of_leased", lambda shards, leases: frozenset())
    report = judge([Lease("c2", checkpoint="40")])
    assert verdicts(report)["p"] is Verdict.REPLAY and verdicts(report)["c1"] is Verdict.REPLAY
    assert not report.safe


@pytest.mark.parametrize(
    ("lease", "options", "verdict"),
    [
        (Lease("c2", checkpoint="AT_TIMESTAMP"), {}, Verdict.UNKNOWN),
        (Lease("c2", checkpoint="40"), {"trimmed": {"c2"}}, Verdict.LOSE),
        (Lease("gone", checkpoint="40"), {}, Verdict.LOSE),
        (Lease("gone", checkpoint="SHARD_END"), {}, Verdict.DONE),
        (Lease("c2", checkpoint="TRIM_HORIZON"), {}, Verdict.START),
    ],
)
def test_what_makes_a_takeover_unsafe(
    lease: Lease, options: dict[str, object], verdict: Verdict
) -> None:
    report = judge([lease], **options)
    assert verdicts(report)[lease.key] is verdict
    assert report.safe is (verdict not in (Verdict.UNKNOWN, Verdict.LOSE))


def test_rows_that_are_not_leases_are_listed_and_left_alone() -> None:
    report = judge([], other_rows=[("Leader", "entityType LEADER")])
    assert verdicts(report)["Leader"] is Verdict.IGNORE and report.safe


def test_multi_stream_keys_of_the_apps_stream_are_taken_over_and_others_left_alone() -> None:
    stream = StreamId("123456789012", "eu-west-1", "orders", "2026-01-02T03:04:05.678")
    other = StreamId("123456789012", "eu-west-1", "users", "2026-01-02T03:04:05.678")
    shards = {
        "shardId-p": Shard("shardId-p", None, True),
        "shardId-c": Shard("shardId-c", "shardId-p", False),
    }
    report = judge(
        [
            Lease(stream.key("shardId-c"), checkpoint="40", parents=frozenset({"shardId-p"})),
            Lease(other.key("shardId-c"), checkpoint="99"),
        ],
        shards=shards,
        keys=StreamKeys(stream, keyed=True),
    )
    assert verdicts(report) == {
        stream.key("shardId-c"): Verdict.RESUME,
        other.key("shardId-c"): Verdict.IGNORE,
        "shardId-p": Verdict.SKIP,
    }
    assert report.safe
