"""DP on readings: OpenDP's calibration, the noise it draws, clamping, suppression, and what an event costs."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError
from streamtune_anonymizer.budget import to_micro, window_index
from streamtune_anonymizer.dp import (
    BUDGET_SPENT_NOTE,
    DatasetDP,
    ReadingPrivacy,
    calibrate_scale,
    gaussian_measurement,
)
from streamtune_shared.schemas import CleanEvent

T0 = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
DRAWS = 4000


def _laplace(**overrides) -> ReadingPrivacy:
    values = {"mechanism": "laplace", "epsilon_per_event": 1.0, "sensors": {"temp": (0.0, 10.0), "flow": (0.0, 100.0)},
              "budget_epsilon": 5.0, **overrides}
    return ReadingPrivacy.calibrated(DatasetDP(**values))


def _event(readings: dict[str, float | None]) -> CleanEvent:
    return CleanEvent(schema_version=1, event_id="e-1", device_id="ps_0123456789abcdef01234567", dataset="pumps",
                      ts=T0, readings=readings, ingested_at=T0, anonymized_at=T0)


def test_laplace_scale_is_the_sensitivity_over_each_sensors_share_of_epsilon():
    privacy = _laplace()
    # epsilon 1.0 per event over two declared sensors: 0.5 each; b = (high - low) / 0.5.
    assert privacy.sensors["temp"].scale == pytest.approx(20.0)
    assert privacy.sensors["flow"].scale == pytest.approx(200.0)


def test_gaussian_scale_is_the_smallest_that_opendp_proves_epsilon_delta():
    scale = calibrate_scale("gaussian", 10.0, 0.5, 1e-6)
    epsilon, delta = gaussian_measurement(scale, 1e-6).map(10.0)
    assert epsilon <= 0.5 + 1e-9 and delta == 1e-6
    assert gaussian_measurement(scale * 0.99, 1e-6).map(10.0)[0] > 0.5


@pytest.mark.parametrize(("sensitivity", "epsilon", "delta"), [
    (300.0, 0.125, 1.25e-7), (1e-3, 10.0, 1e-4), (1e6, 0.01, 1e-10), (1.0, 1.0, 1e-6)])
def test_gaussian_calibration_holds_at_extreme_settings(sensitivity, epsilon, delta):
    # Unbounded, OpenDP's search overflowed on some of these (300, 0.125, 1.25e-7 is 8 sensors at 1.0, 1e-6).
    scale = calibrate_scale("gaussian", sensitivity, epsilon, delta)
    spent = gaussian_measurement(scale, delta).map(sensitivity)[0]
    assert epsilon * 0.98 < spent <= epsilon * (1 + 1e-9)


def test_laplace_noise_has_the_variance_of_its_scale():
    noise = _laplace().sensors["temp"]
    draws = [noise.release(5.0) for _ in range(DRAWS)]
    assert statistics.fmean(draws) == pytest.approx(5.0, abs=4 * 20.0 * 2 ** 0.5 / DRAWS ** 0.5)
    assert statistics.variance(draws) == pytest.approx(2 * 20.0 ** 2, rel=0.15)


def test_gaussian_noise_has_the_variance_of_its_scale():
    privacy = ReadingPrivacy.calibrated(DatasetDP(mechanism="gaussian", epsilon_per_event=1.0, delta=1e-6,
                                                  sensors={"temp": (0.0, 10.0)}, budget_epsilon=5.0))
    noise = privacy.sensors["temp"]
    draws = [noise.release(5.0) for _ in range(DRAWS)]
    assert statistics.variance(draws) == pytest.approx(noise.scale ** 2, rel=0.1)


def test_a_reading_outside_its_bounds_is_clamped_before_noise():
    noise = _laplace(epsilon_per_event=10.0, budget_epsilon=10.0).sensors["temp"]  # b = 2
    draws = [noise.release(1000.0) for _ in range(DRAWS)]
    assert statistics.fmean(draws) == pytest.approx(10.0, abs=0.3)


def test_release_noises_declared_sensors_and_never_passes_an_undeclared_one():
    released = _laplace().release(_event({"temp": 5.0, "rpm": 1200.0, "flow": None}))
    assert set(released.readings) == {"temp", "flow"} and released.readings["flow"] is None
    assert released.readings["temp"] != 5.0
    assert any("rpm" in note for note in released.notes)


def test_a_suppressed_event_has_no_readings_and_says_why():
    suppressed = ReadingPrivacy.suppress(_event({"temp": 5.0}))
    assert suppressed.readings == {} and suppressed.notes[-1] == BUDGET_SPENT_NOTE


def test_an_event_costs_one_share_per_declared_reading_it_carries():
    privacy = _laplace()
    assert privacy.cost(_event({"temp": 1.0, "flow": 2.0})) == pytest.approx(1.0)
    assert privacy.cost(_event({"temp": 1.0, "flow": None, "rpm": 3.0})) == pytest.approx(0.5)
    assert privacy.cost(_event({})) == 0


def test_settings_refuse_inconsistent_dp():
    with pytest.raises(ValidationError, match="delta"):
        DatasetDP(mechanism="gaussian", epsilon_per_event=1, sensors={"t": (0, 1)}, budget_epsilon=5)
    with pytest.raises(ValidationError, match="low < high"):
        DatasetDP(epsilon_per_event=1, sensors={"t": (1, 1)}, budget_epsilon=5)
    with pytest.raises(ValidationError, match="budget_epsilon"):
        DatasetDP(epsilon_per_event=1, sensors={"t": (0, 1)}, budget_epsilon=0.5)


def test_budget_rounding_never_overspends_and_windows_are_fixed():
    assert to_micro(0.1, round_up=True) == 100_000 and to_micro(1 / 3, round_up=True) == 333_334
    assert to_micro(1 / 3, round_up=False) == 333_333
    assert window_index(T0, 3600) == window_index(T0.replace(minute=59), 3600) != window_index(
        T0.replace(hour=13), 3600)


def test_the_batched_noise_gives_each_reading_the_guarantee_of_the_scalar_mechanism():
    import opendp.prelude as dp

    for mechanism, config in (("laplace", {}), ("gaussian", {"delta": 1e-6})):
        noise = ReadingPrivacy.calibrated(DatasetDP(mechanism=mechanism, epsilon_per_event=1.0, budget_epsilon=5.0,
                                                    sensors={"temp": (0.0, 10.0)}, **config)).sensors["temp"]
        scalar = (dp.m.make_laplace if mechanism == "laplace" else dp.m.make_gaussian)(
            dp.atom_domain(T=float, nan=False), dp.absolute_distance(T=float), scale=noise.scale)
        # One event's reading moves by at most high - low, in one element of the batch vector.
        assert noise.noise.map(10.0) == pytest.approx(scalar.map(10.0))


def test_a_batch_release_keeps_each_event_its_own_noised_readings():
    privacy = _laplace()
    events = [_event({"temp": 5.0, "flow": 50.0}), _event({"flow": None}), _event({"temp": 5.0, "rpm": 1.0})]
    released = privacy.release_many(events)
    assert [set(e.readings) for e in released] == [{"temp", "flow"}, {"flow"}, {"temp"}]
    assert released[1].readings["flow"] is None and released[0].readings["temp"] != released[2].readings["temp"]
    assert [len(e.notes) for e in released] == [0, 0, 1]
