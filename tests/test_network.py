"""OrcaNet (plain-torch ResNet + fastai head) and its strict safetensors weights I/O."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from orcaport.model.config import ArchitectureConfig, ConfigError, HeadConfig
from orcaport.model.network import OrcaNet
from orcaport.model.stages import ACTIVATION_LAYERS
from orcaport.model.fileio import sha256_file
from orcaport.model.weights import WeightsError, load_network, read_metadata, save_network_state

# torchvision ResNet parameter totals minus fc (512*1000+1000 for 18/34, 2048*1000+1000 for 50+):
# 11,689,512 / 21,797,672 / 25,557,032 / 44,549,160 / 60,192,808 for 3-channel inputs.
TORCHVISION_BODY_PARAMS = {
    "resnet18": 11_176_512, "resnet34": 21_284_672, "resnet50": 23_508_032,
    "resnet101": 42_500_160, "resnet152": 58_143_808,
}
CONV1_PER_CHANNEL = 64 * 7 * 7     # one input channel fewer removes this many conv1 weights
ORCA_INPUT = (2, 1, 256, 312)      # batch, channel, mel bins, frames
TORCH_BN_EPS = 1e-5                # fastai/torchvision never change it
R18 = ArchitectureConfig(body="resnet18", in_channels=1, head=HeadConfig(lin_ftrs=(1024, 512, 2)))
R50 = ArchitectureConfig(body="resnet50", in_channels=1, head=HeadConfig(lin_ftrs=(4096, 512, 2)))


def _head(arch: ArchitectureConfig, **changes) -> ArchitectureConfig:
    return dataclasses.replace(arch, head=dataclasses.replace(arch.head, **changes))


def _randomized(config: ArchitectureConfig, seed: int = 0) -> OrcaNet:
    """Eval-mode net whose BN affine params and running stats are non-trivial (so BN is tested)."""
    torch.manual_seed(seed)
    net = OrcaNet(config)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.num_batches_tracked.fill_(int(torch.randint(1, 10_000, ())))
    return net.eval()


@pytest.fixture(scope="module")
def r18() -> OrcaNet:
    return _randomized(R18)


@pytest.fixture(scope="module")
def x() -> torch.Tensor:
    return torch.randn(*ORCA_INPUT, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("body", sorted(TORCHVISION_BODY_PARAMS))
def test_body_parameter_count_matches_torchvision_minus_fc(body: str) -> None:
    pooled = 2 * (512 if body in ("resnet18", "resnet34") else 2048)
    head = HeadConfig(lin_ftrs=(pooled, 2), dropout=(0.5,), relu=(False,))
    for channels in (3, 1):
        net = OrcaNet(ArchitectureConfig(body=body, in_channels=channels, head=head))
        n = sum(p.numel() for p in net.body.parameters())
        assert n == TORCHVISION_BODY_PARAMS[body] - (3 - channels) * CONV1_PER_CHANNEL


def test_contract_names_and_one_channel_conv1() -> None:
    state = OrcaNet(R50).state_dict()
    assert state["body.conv1.weight"].shape == (64, 1, 7, 7)
    assert state["body.layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["body.layer2.0.conv2.weight"].shape == (128, 128, 3, 3)   # v1.5: stride on conv2
    assert OrcaNet(R50).body.layer2[0].conv2.stride == (2, 2)
    assert state["body.layer4.2.bn3.num_batches_tracked"].dtype == torch.int64
    assert state["head.blocks.0.bn.running_var"].shape == (4096,)
    assert state["head.blocks.0.fc.weight"].shape == (512, 4096)
    assert state["head.blocks.1.fc.weight"].shape == (2, 512)
    assert not any(k.startswith("head.") and "drop" in k for k in state)
    assert not any(".fc." in k for k in state if k.startswith("body."))
    norms = [m for m in OrcaNet(_head(R50, bn_final=True)).modules()
             if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d))]
    assert {m.eps for m in norms} == {TORCH_BN_EPS}
    assert [m.momentum for m in norms].count(0.01) == 1   # only fastai's bn_final


def test_forward_stages_shapes_and_keys(r18: OrcaNet, x: torch.Tensor) -> None:
    with torch.inference_mode():
        stages = r18.forward_stages(x)
        logits = r18(x)
    assert tuple(stages) == ACTIVATION_LAYERS + ("logits",)
    expected = {"stem": (2, 64, 64, 78), "layer1": (2, 64, 64, 78), "layer2": (2, 128, 32, 39),
                "layer3": (2, 256, 16, 20), "layer4": (2, 512, 8, 10), "pooled": (2, 1024),
                "logits": (2, 2)}
    assert {k: tuple(v.shape) for k, v in stages.items()} == expected
    torch.testing.assert_close(stages["logits"], logits, rtol=0, atol=0)


def test_resnet50_orcahello_shapes() -> None:
    net = _randomized(R50)
    with torch.inference_mode():
        stages = net.forward_stages(torch.randn(*ORCA_INPUT))
    assert stages["layer4"].shape == (2, 2048, 8, 10)
    assert stages["pooled"].shape == (2, 4096)
    assert stages["logits"].shape == (2, 2)


def test_concat_pool_is_max_then_avg(r18: OrcaNet, x: torch.Tensor) -> None:
    with torch.inference_mode():
        stages = r18.forward_stages(x)
    layer4 = stages["layer4"]
    torch.testing.assert_close(stages["pooled"][:, :512], layer4.amax(dim=(2, 3)))
    torch.testing.assert_close(stages["pooled"][:, 512:], layer4.mean(dim=(2, 3)))


@pytest.mark.parametrize("layer", ACTIVATION_LAYERS)
def test_forward_from_replays_the_rest(r18: OrcaNet, x: torch.Tensor, layer: str) -> None:
    with torch.inference_mode():
        full = r18.forward_stages(x)
        given = full[layer].clone()
        rest = r18.forward_from(layer, given)
    names = list(full)
    assert list(rest) == names[names.index(layer) + 1:]
    for name, value in rest.items():
        torch.testing.assert_close(value, full[name], rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(given, full[layer], rtol=0, atol=0)   # input left untouched


def test_forward_from_unknown_stage_is_refused(r18: OrcaNet, x: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="layer2"):
        r18.forward_from("layer5", x)


def _manual_head(net: OrcaNet, pooled: torch.Tensor) -> torch.Tensor:
    """fastai create_head semantics written out: per block BN -> Linear -> (ReLU), then bn_final."""
    h = net.config.head
    y = pooled
    for j, block in enumerate(net.head.blocks):
        bn = block.bn
        y = (y - bn.running_mean) / torch.sqrt(bn.running_var + TORCH_BN_EPS) * bn.weight + bn.bias
        y = F.linear(y, block.fc.weight, block.fc.bias)
        y = y.clamp_min(0) if h.relu[j] else y
    if h.bn_final:
        bn = net.head.bn_final
        y = (y - bn.running_mean) / torch.sqrt(bn.running_var + TORCH_BN_EPS) * bn.weight + bn.bias
    return y


@pytest.mark.parametrize("config", [
    R18,
    _head(R18, concat_pool=False, lin_ftrs=(512, 3), dropout=(0.5,), relu=(False,)),
    _head(R18, bn_final=True),
    _head(R18, lin_ftrs=(1024, 256, 128, 3), dropout=(0.25, 0.25, 0.5), relu=(True, True, False)),
], ids=["default", "avgpool-3cls", "bn_final", "two-hidden"])
def test_head_variants_follow_fastai_semantics(config: ArchitectureConfig) -> None:
    net = _randomized(config)
    with torch.inference_mode():
        stages = net.forward_stages(torch.randn(*ORCA_INPUT))
    layer4 = stages["layer4"]
    pooled = layer4.mean(dim=(2, 3))
    if config.head.concat_pool:
        pooled = torch.cat([layer4.amax(dim=(2, 3)), pooled], dim=1)
    torch.testing.assert_close(stages["pooled"], pooled)
    assert stages["logits"].shape == (2, config.head.lin_ftrs[-1])
    torch.testing.assert_close(stages["logits"], _manual_head(net, stages["pooled"]),
                               rtol=1e-4, atol=1e-5)
    if config.head.bn_final:
        assert net.head.bn_final.momentum == 0.01


@pytest.mark.parametrize("head", [
    HeadConfig(lin_ftrs=(512, 2), dropout=(0.5,), relu=(False,)),                    # concat wants 1024
    HeadConfig(concat_pool=False, lin_ftrs=(1024, 2), dropout=(0.5,), relu=(False,)),  # avg wants 512
    HeadConfig(lin_ftrs=(1024, 512, 2), dropout=(0.5,), relu=(True, False)),          # dropout too short
])
def test_head_not_fitting_body_is_a_clear_error(head: HeadConfig) -> None:
    with pytest.raises(ConfigError, match="lin_ftrs"):
        OrcaNet(ArchitectureConfig(body="resnet18", head=head))


def test_dropout_is_inert_in_eval(r18: OrcaNet, x: torch.Tensor) -> None:
    with torch.inference_mode():
        torch.testing.assert_close(r18(x), r18(x), rtol=0, atol=0)


def test_channels_last_and_bf16_autocast(r18: OrcaNet, x: torch.Tensor) -> None:
    with torch.inference_mode():
        ref = r18(x)
        net_cl = copy.deepcopy(r18).to(memory_format=torch.channels_last)
        cl = net_cl(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = r18(x)
    torch.testing.assert_close(cl, ref, rtol=1e-4, atol=1e-4)
    assert low.shape == ref.shape and torch.isfinite(low).all()
    torch.testing.assert_close(low.float(), ref, rtol=0.1, atol=0.1 * ref.abs().max().item())


# ---------------------------------------------------------------- weights I/O


def test_save_load_round_trip_is_bit_exact(r18: OrcaNet, x: torch.Tensor, tmp_path: Path) -> None:
    path = save_network_state(r18.state_dict(), tmp_path / "model.safetensors", {"source": "t"})
    loaded = load_network(path, R18)
    assert not loaded.training
    want, got = r18.state_dict(), loaded.state_dict()
    assert list(got) == list(want)
    for k in want:
        assert got[k].dtype == want[k].dtype and torch.equal(got[k], want[k]), k
    assert got["body.bn1.num_batches_tracked"].item() == want["body.bn1.num_batches_tracked"].item()
    with torch.inference_mode():
        torch.testing.assert_close(loaded(x), r18(x), rtol=0, atol=0)
    assert read_metadata(path) == {"source": "t"}
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_save_is_byte_deterministic(r18: OrcaNet, tmp_path: Path) -> None:
    meta = {f"k{i}": str(i) for i in range(12)}   # several keys: the library writer would shuffle
    state = r18.state_dict()
    a = save_network_state(state, tmp_path / "a.safetensors", meta)
    b = save_network_state(dict(reversed(list(state.items()))), tmp_path / "b.safetensors",
                           dict(reversed(list(meta.items()))))
    assert a.read_bytes() == b.read_bytes()
    assert sha256_file(a) == sha256_file(b) and len(sha256_file(a)) == 64
    assert load_file(str(a)).keys() == state.keys()


def test_failed_save_leaves_previous_file(r18: OrcaNet, tmp_path: Path) -> None:
    path = save_network_state({"w": torch.ones(2)}, tmp_path / "m.safetensors", {})
    before = path.read_bytes()
    with pytest.raises(WeightsError, match="str"):
        save_network_state(r18.state_dict(), path, {"epoch": 3})   # type: ignore[dict-item]
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_strict_load_lists_missing_unexpected_and_shape(r18: OrcaNet, tmp_path: Path) -> None:
    state = dict(r18.state_dict())
    del state["body.layer3.1.bn2.running_mean"]
    state["head.0.weight"] = torch.zeros(3)
    state["head.blocks.1.fc.weight"] = torch.zeros(3, 512)
    path = save_network_state(state, tmp_path / "bad.safetensors")
    with pytest.raises(WeightsError) as err:
        load_network(path, R18)
    msg = str(err.value)
    assert "1 missing keys: body.layer3.1.bn2.running_mean" in msg
    assert "1 unexpected keys: head.0.weight" in msg
    assert "head.blocks.1.fc.weight (3, 512) != (2, 512)" in msg
    assert "make convert" in msg


def test_strict_load_refuses_dtype_change(r18: OrcaNet, tmp_path: Path) -> None:
    state = {k: (v.half() if v.is_floating_point() else v) for k, v in r18.state_dict().items()}
    path = save_network_state(state, tmp_path / "half.safetensors")
    with pytest.raises(WeightsError, match="dtype mismatches"):
        load_network(path, R18)


def test_config_for_another_body_is_refused(r18: OrcaNet, tmp_path: Path) -> None:
    path = save_network_state(r18.state_dict(), tmp_path / "r18.safetensors")
    with pytest.raises(WeightsError, match=r"missing keys: .*\(\+\d+ more\)"):
        load_network(path, ArchitectureConfig(body="resnet34", head=R18.head))


@pytest.mark.parametrize("cut", [0, 5, 100, -1])
def test_truncated_file_is_a_clear_error(r18: OrcaNet, tmp_path: Path, cut: int) -> None:
    good = save_network_state(r18.state_dict(), tmp_path / "good.safetensors").read_bytes()
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(good[:cut])
    with pytest.raises(WeightsError, match="truncated or not a safetensors file.*make convert"):
        load_network(bad, R18)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WeightsError, match="not found.*make convert"):
        load_network(tmp_path / "nope.safetensors", R18)
