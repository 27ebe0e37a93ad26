"""bench: FLOPs count what the engine executes (padding reuse included), and the report keeps
the executed rate and the whole-network rate apart."""

from __future__ import annotations

from bench.models import network_flops, resnet50_config
from bench.report import network_figures
from orcaport.model.network import OrcaNet
from orcaport.model.onednn import layer_paths, plan_reuse


def test_windowed_flops_are_the_plans_share_of_the_whole() -> None:
    arch = resnet50_config().architecture
    whole = network_flops(arch, 256, 312)
    assert round(whole / 1e9, 2) == 12.94              # ResNet50 at OrcaHello's 256 x 312 input
    plan = plan_reuse(layer_paths(OrcaNet(arch).body), 312, 157)
    ran = network_flops(arch, 256, 312, plan.in_width)
    assert 0.7 * whole < ran < 0.9 * whole
    assert network_flops(arch, 256, 312, [312, 156] + [78] * 4 + [39] * 4 + [20] * 6 + [10] * 2) == whole


def test_network_figures_separate_executed_and_effective_rates() -> None:
    run = {"times_s": [2.0, 1.0, 3.0], "clips": 10, "flops_per_clip": int(8e9), "precision": "fp32"}
    peak = {"fp32_gflops": 100.0, "onednn_fp32_gflops": 200.0, "bf16_gflops": 400.0}
    fig = network_figures(run, int(10e9), peak)
    assert fig["median_s"] == 2.0
    assert fig["gflops"] == 40.0 and fig["effective_gflops"] == 50.0
    assert fig["fraction_of_fp32_peak"] == 0.4 and fig["fraction_of_same_precision_peak"] == 0.2
    run.pop("flops_per_clip")
    assert network_figures(run, int(10e9), peak)["gflops"] == 50.0
