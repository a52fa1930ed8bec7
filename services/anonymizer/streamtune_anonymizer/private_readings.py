"""The DP step of a batch: charge each event's readings to its device's budget in one call, then noise or suppress.

Readings of a DP dataset never leave raw: noised when the budget allows, removed (with a note) when
it is spent, removed when their sensor declares no bounds.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime

from streamtune_shared.schemas import CleanEvent

from . import metrics
from .budget import BudgetLedger, Charge, Grant
from .dp import ReadingPrivacy

DEFAULT_METRIC_DEVICES = 1000


class PrivateReadings:
    """Differential privacy for the readings of the configured datasets, with budgets in a shared ledger."""

    def __init__(self, privacy: Mapping[str, ReadingPrivacy], ledger: Callable[[], BudgetLedger], *,
                 metric_devices: int = DEFAULT_METRIC_DEVICES) -> None:
        self._privacy = dict(privacy)
        self._ledger = ledger
        # Label cardinality: a gauge per device for the first ``metric_devices`` devices, the HTTP route for all.
        self._metric_devices = metric_devices
        self._labelled: set[tuple[str, str]] = set()

    @property
    def datasets(self) -> Mapping[str, ReadingPrivacy]:
        """The DP settings per dataset."""
        return self._privacy

    def _charge(self, event: CleanEvent | None) -> Charge | None:
        privacy = self._privacy.get(event.dataset) if event is not None else None
        if event is None or privacy is None:
            return None
        cost = privacy.cost(event)
        if cost <= 0:
            return None
        c = privacy.config
        return Charge(event.dataset, event.device_id, event.event_id, cost, c.budget_epsilon, c.window_s)

    async def release(self, events: Sequence[CleanEvent | None], now: datetime) -> list[CleanEvent | None]:
        """Each event with its readings made private (None stays None); one ledger call for the whole batch."""
        charges = [self._charge(event) for event in events]
        asked = [c for c in charges if c is not None]
        grants = iter(await self._ledger().spend(asked, now) if asked else [])
        released: list[CleanEvent | None] = list(events)
        granted: dict[str, list[int]] = {}
        outcomes: Counter[str] = Counter()
        for i, (event, charge) in enumerate(zip(events, charges, strict=True)):
            privacy = self._privacy.get(event.dataset) if event is not None else None
            if event is None or privacy is None:
                continue
            grant = next(grants) if charge is not None else Grant(True, 0.0)
            if charge is not None:
                self._show_spent(charge, grant)
            if grant.granted:
                granted.setdefault(event.dataset, []).append(i)
            else:
                released[i] = privacy.suppress(event)
            _count(outcomes, event, privacy, grant.granted)
        for dataset, indexes in granted.items():
            noised = self._privacy[dataset].release_many([events[i] for i in indexes])
            for i, event in zip(indexes, noised, strict=True):
                released[i] = event
        for outcome, count in outcomes.items():
            metrics.DP_READINGS.labels(outcome).inc(count)
        return released

    def _show_spent(self, charge: Charge, grant: Grant) -> None:
        labels = (charge.dataset, charge.device)
        if labels not in self._labelled:
            if len(self._labelled) >= self._metric_devices:
                return
            self._labelled.add(labels)
        metrics.DP_EPSILON_SPENT.labels(*labels).set(grant.spent_epsilon)

    async def spent(self, device: str, now: datetime) -> dict[str, dict[str, float | int]]:
        """Per DP dataset: the epsilon the device (pseudonym) spent in the current window, the budget, the window."""
        ledger = self._ledger()
        report: dict[str, dict[str, float | int]] = {}
        for dataset, privacy in self._privacy.items():
            c = privacy.config
            spent = await ledger.spent(dataset, device, c.window_s, now)
            report[dataset] = {"spent_epsilon": spent, "budget_epsilon": c.budget_epsilon, "window_s": c.window_s}
        return report


def _count(outcomes: Counter[str], event: CleanEvent, privacy: ReadingPrivacy, granted: bool) -> None:
    present = [name for name, value in event.readings.items() if value is not None]
    declared = sum(1 for name in present if name in privacy.config.sensors)
    if granted:
        outcomes["noised"] += declared
        outcomes["suppressed_no_bounds"] += len(present) - declared
    else:
        outcomes["suppressed_budget"] += len(present)
