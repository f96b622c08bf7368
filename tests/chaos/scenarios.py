"""Steps the chaos scenarios share."""

from __future__ import annotations

from tests.chaos.harness import ChaosApp, ChaosRun


def busiest(app: ChaosApp, besides: str | None = None) -> str:
    """The running worker holding the most leases (not ``besides``)."""
    owners = app.owners()
    names = [n for n in app.running() if n != besides]
    return max(names, key=lambda n: (sum(1 for o in owners.values() if o == n), n))


def all_holding(run: ChaosRun, app: ChaosApp, within: float = 60) -> None:
    """Until every running worker of ``app`` holds a lease."""
    run.wait_for(
        lambda: all(app.held_by(name) for name in app.running()),
        within,
        f"every {app.name} worker holding a lease",
    )


def taken_over(run: ChaosRun, app: ChaosApp, name: str, within: float = 60) -> None:
    """Until no lease names ``name`` as its owner."""
    run.wait_for(lambda: not app.held_by(name), within, f"{name}'s leases taken over")


def check(run: ChaosRun) -> None:
    """Finish and demand a passing verdict."""
    verdict = run.finish()
    print("\n" + verdict.explain())
    assert verdict.ok, verdict.explain()
