"""The sensor-anomaly network's scoring: causal smoothing over the last windows, the window contract it asks
for, and configs written before smoothing existed."""

from __future__ import annotations

import json

import pytest
import torch
from streamtune_shared.anomaly_net import AnomalyNet, AnomalyNetConfig, load_network, version_files
from streamtune_shared.model_card import CONFIG_FILE, WEIGHTS_FILE

CONFIG = AnomalyNetConfig(sensors=("P", "T"), window=8, calibration_events=5, channels=8, layers=2)


def window_logit(net: AnomalyNet, h: torch.Tensor, end: int) -> torch.Tensor:
    """The logit of the window of ``net.config.window`` steps ending (exclusive) at ``end`` of an encoding."""
    pooled = torch.cat([h[..., end - net.config.window:end].mean(-1), h[..., end - 1]], dim=-1)
    return net.classifier(pooled).squeeze(-1)


def test_without_smoothing_the_score_is_the_windows_own_logit():
    torch.manual_seed(0)
    net = AnomalyNet(CONFIG).eval()
    x = torch.randn(3, 8, 2)
    with torch.inference_mode():
        assert torch.allclose(net(x), window_logit(net, net.encode(x), 8), atol=1e-6)
    assert CONFIG.spec().window == 8


def test_smoothing_averages_the_logits_of_the_windows_ending_at_the_last_events():
    torch.manual_seed(0)
    config = CONFIG.model_copy(update={"smoothing": 4})
    net = AnomalyNet(config).eval()
    assert config.spec().window == 11  # the predictor keeps and the trainer windows 8 + 4 - 1 events
    x = torch.randn(5, 11, 2)
    with torch.inference_mode():
        h = net.encode(x)
        expected = torch.stack([window_logit(net, h, end) for end in range(8, 12)]).mean(0)
        assert torch.allclose(net(x), expected, atol=1e-6)
        # causal: the events after an input's last one do not change its score
        later = torch.cat([x, torch.randn(5, 3, 2)], dim=1)
        assert not torch.allclose(net(later), net(x))


def test_a_persistent_shift_keeps_the_smoothed_score_steadier_than_one_windows():
    # A single spiking event moves a one-window score more than a score averaged over 16 windows.
    torch.manual_seed(1)
    plain = AnomalyNet(CONFIG.model_copy(update={"window": 16})).eval()
    smooth = AnomalyNet(CONFIG.model_copy(update={"window": 16, "smoothing": 16})).eval()
    smooth.load_state_dict(plain.state_dict())
    base = torch.zeros(1, 31, 2)
    spiked = base.clone()
    spiked[0, -1] = 8.0
    with torch.inference_mode():
        jump_plain = (plain(spiked[:, -16:]) - plain(base[:, -16:])).abs().item()
        jump_smooth = (smooth(spiked) - smooth(base)).abs().item()
    assert jump_smooth < jump_plain


def test_a_config_written_before_smoothing_loads_with_one_window():
    net = AnomalyNet(CONFIG)
    files = version_files(net)
    old = json.loads(files[CONFIG_FILE])
    del old["smoothing"]
    loaded = load_network(json.dumps(old).encode(), files[WEIGHTS_FILE])
    assert loaded.config.smoothing == 1
    assert loaded.config.spec().window == CONFIG.window


@pytest.mark.parametrize("length", [3, 8])
def test_inputs_shorter_than_the_context_still_score(length: int):
    net = AnomalyNet(CONFIG.model_copy(update={"smoothing": 4})).eval()
    with torch.inference_mode():
        assert net(torch.randn(2, length, 2)).shape == (2,)


def test_an_ensemble_scores_the_mean_logit_of_independent_members():
    # Three plain networks packed into one grouped network: the same members, scored together.
    torch.manual_seed(2)
    config = CONFIG.model_copy(update={"smoothing": 3})
    singles = [AnomalyNet(config).eval() for _ in range(3)]
    ensemble = AnomalyNet(config.model_copy(update={"members": 3})).eval()
    states = [net.state_dict() for net in singles]
    packed = {name: torch.cat([state[name] for state in states]) if states[0][name].dim() else states[0][name]
              for name in states[0]}
    ensemble.load_state_dict(packed)
    x = torch.randn(4, config.spec().window, 2)
    with torch.inference_mode():
        each = torch.stack([net(x) for net in singles], dim=1)
        assert torch.allclose(ensemble.member_logits(x), each, atol=1e-5)
        assert torch.allclose(ensemble(x), each.mean(dim=1), atol=1e-5)
        mask = torch.rand(4, x.shape[1]) < 0.3
        recon = torch.stack([net.reconstruct(x, mask)[:, 0] for net in singles], dim=1)
        assert torch.allclose(ensemble.reconstruct(x, mask), recon, atol=1e-5)


def test_compression_keeps_large_deviations_apart_and_small_ones_nearly_unchanged():
    net = AnomalyNet(CONFIG.model_copy(update={"compress": True, "clip": 1000.0}))
    z = torch.tensor([0.5, 10.0, 200.0])
    read = net.inputs(z)
    assert read[0] == pytest.approx(0.48, abs=0.01)
    assert read[2] - read[1] > 2  # 10 and 200 standard deviations stay distinct (a clip at 10 would merge them)
    assert torch.equal(AnomalyNet(CONFIG).inputs(z), z)


def test_a_request_naming_only_the_basics_trains_what_the_benchmark_measures():
    from streamtune_shared.schemas import TrainRequest  # noqa: PLC0415
    from streamtune_trainer.anomaly_training import AnomalyHyperparameters  # noqa: PLC0415

    request = TrainRequest(model_name="pump-anomaly", task="sensor-anomaly", dataset="pump-sensors",
                           calibration_events=400)
    assert AnomalyHyperparameters.from_request(request) == AnomalyHyperparameters()  # bench_anomaly's defaults
    config = AnomalyHyperparameters().net_config(("P", "T"))
    assert (config.smoothing, config.compress, config.clip) == (16, True, 100.0)
    assert config.spec().window == 64 + 16 - 1
