"""The checker on synthetic evidence: each thing it guards against, planted once, is caught
(and a clean run, duplicates inside a fault window included, passes)."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.chaos.checker import (
    Delivery,
    Evidence,
    FaultWindow,
    ReplicaSampler,
    judge,
    read_dead_letters,
    report_table,
)
from tests.chaos.generator import Change

A1, A2, A3 = Change("a", 1, "put"), Change("a", 2, "put"), Change("a", 2, "delete")
B1, B2 = Change("b", 1, "put"), Change("b", 2, "put")
REFERENCE = [A1, B1, A2, B2, A3]
SHARD = "shard-1"


def delivered(changes: list[Change], at: float = 100.0) -> list[Delivery]:
    """Messages in one partition, in this order; sequence numbers as the reference's."""
    seqs = {change: str(10 + i) for i, change in enumerate(REFERENCE)}
    return [
        Delivery(c, SHARD, seqs.get(c, "99"), (0, offset), at + offset)
        for offset, c in enumerate(changes)
    ]


def kafka(deliveries: list[Delivery], **more: object) -> Evidence:
    return Evidence("synthetic", REFERENCE, deliveries=deliveries, **more)  # type: ignore[arg-type]


def test_a_clean_run_passes() -> None:
    verdict = judge(kafka(delivered(REFERENCE)))
    assert verdict.ok, verdict.explain()
    assert (verdict.writes, verdict.lost, verdict.duplicates) == (5, 0, 0)


def test_a_lost_change_is_caught() -> None:
    verdict = judge(kafka(delivered([A1, B1, A2, A3])))
    assert not verdict.ok and verdict.lost == 1
    assert verdict.details["lost"] == [B2]


def test_a_duplicate_outside_any_fault_window_is_caught() -> None:
    messages = delivered([A1, B1, A2, B2, A3])
    messages.append(Delivery(B1, SHARD, messages[1].seq, (0, 5), 200.0))  # B1 again, later
    verdict = judge(kafka(messages))
    assert not verdict.ok
    assert (verdict.duplicates, verdict.unexplained_duplicates) == (1, 1)


def test_a_duplicate_inside_a_fault_window_is_explained() -> None:
    messages = delivered([A1, B1, A2, B2, A3])
    messages.append(Delivery(B1, SHARD, messages[1].seq, (0, 5), 106.0))
    window = FaultWindow("SIGKILL", "w1", 104.0, 105.0, {SHARD: messages[0].seq})
    verdict = judge(kafka(messages, faults=[window]))
    assert verdict.ok, verdict.explain()
    assert (verdict.duplicates, verdict.unexplained_duplicates) == (1, 0)


def test_a_duplicate_from_before_the_faults_checkpoint_is_not_explained() -> None:
    """The record was checkpointed before the fault: nothing may deliver it again."""
    messages = delivered([A1, B1, A2, B2, A3])
    messages.append(Delivery(B1, SHARD, messages[1].seq, (0, 5), 106.0))
    window = FaultWindow("SIGKILL", "w1", 104.0, 105.0, {SHARD: messages[2].seq})
    verdict = judge(kafka(messages, faults=[window]))
    assert verdict.unexplained_duplicates == 1 and not verdict.ok


def test_a_handoff_of_one_lease_explains_nothing_on_another_shard() -> None:
    messages = delivered([A1, B1, A2, B2, A3])
    messages.append(Delivery(B1, SHARD, messages[1].seq, (0, 5), 106.0))
    elsewhere = FaultWindow("handoff", "w1->w2", 104.0, 105.0, {"other": None}, True)
    assert not judge(kafka(messages, faults=[elsewhere])).ok
    here = FaultWindow("handoff", "w1->w2", 104.0, 105.0, {SHARD: messages[0].seq}, True)
    assert judge(kafka(messages, faults=[here])).ok


def test_two_changes_of_a_key_swapped_is_an_order_violation() -> None:
    verdict = judge(kafka(delivered([A2, B1, A1, B2, A3])))
    assert not verdict.ok and verdict.order_violations == 1 and verdict.lost == 0


def test_a_change_nobody_wrote_is_caught() -> None:
    verdict = judge(kafka(delivered([*REFERENCE, Change("c", 1, "put")])))
    assert not verdict.ok and verdict.unexpected == 1


def test_a_replica_row_that_differs_from_the_table_is_caught() -> None:
    table = {"a": 2, "b": 2}
    assert judge(Evidence("s", REFERENCE, replica=dict(table), table=table)).ok
    flipped = judge(Evidence("s", REFERENCE, replica={"a": 1, "b": 2}, table=table))
    missing = judge(Evidence("s", REFERENCE, replica={"b": 2}, table=table))
    extra = judge(Evidence("s", REFERENCE, replica={**table, "z": 1}, table=table))
    assert [v.replica_differences for v in (flipped, missing, extra)] == [1, 1, 1]
    assert not any(v.ok for v in (flipped, missing, extra))


def test_a_row_version_going_backwards_is_caught(tmp_path: Path) -> None:
    sampler = ReplicaSampler(tmp_path / "unused.db", "t")
    sampler.observe({"a": 1, "b": 1})
    sampler.observe({"a": 2})  # b deleted: fine
    sampler.observe({"a": 3, "b": 2})
    assert not sampler.backwards
    sampler.observe({"a": 2, "b": 2})  # a went back
    assert [(b.key, b.before, b.after) for b in sampler.backwards] == [("a", 3, 2)]
    verdict = judge(Evidence("s", REFERENCE, replica={}, table={}, backwards=sampler.backwards))
    assert not verdict.ok and verdict.backwards == 1


def test_the_poison_record_belongs_in_the_dead_letter_file_and_nowhere_else(
    tmp_path: Path,
) -> None:
    poison = Change("poison", 1, "put")
    reference = [*REFERENCE, poison]
    path = tmp_path / "dead.jsonl"
    raw = {
        "eventName": "INSERT",
        "dynamodb": {"Keys": {"pk": {"S": "poison"}}, "NewImage": {"version": {"N": "1"}}},
    }
    path.write_bytes(orjson.dumps({"record": raw}) + b"\n")
    dead = read_dead_letters(path)
    assert dead == [poison]
    good = Evidence("s", reference, deliveries=delivered(REFERENCE), poison=[poison])
    assert not judge(good).ok  # not in the dead-letter file
    good.dead_letters = dead
    assert judge(good).ok
    in_sink = Evidence(
        "s", reference, deliveries=delivered(reference), poison=[poison], dead_letters=dead
    )
    assert judge(in_sink).unexpected == 1
    twice = Evidence(
        "s", reference, deliveries=delivered(REFERENCE), poison=[poison], dead_letters=dead * 2
    )
    assert not judge(twice).ok


def test_a_loss_the_workers_reported_passes_only_when_the_counts_agree() -> None:
    messages = delivered([A1, B1, A3])  # A2 and B2 lost
    assert judge(kafka(messages, reported_lost=2)).ok
    assert not judge(kafka(messages, reported_lost=1)).ok
    assert not judge(kafka(messages)).ok


def test_the_report_table_has_a_line_per_scenario() -> None:
    verdict = judge(kafka(delivered([A1, B1, A2, A3])))
    table = report_table([verdict.as_json()])
    assert "synthetic" in table and "FAIL" in table and "lost" in table
