"""convert/keymap.py: the one pure fastai -> clean key mapping (no torch, no fastai needed)."""

from __future__ import annotations

import pytest

from convert.keymap import KeyMapError, fastai_to_clean_keys, head_targets
from orcaport.model.config import ArchitectureConfig, HeadConfig
from orcaport.model.network import OrcaNet

ORCAHELLO_HEAD = ("pool", "flatten", "bn", "dropout", "linear", "relu", "bn", "dropout", "linear")


def _fastai_keys(net: OrcaNet, layout: tuple[str, ...]) -> list[str]:
    """Rebuild fastai's key names from the clean model's by inverting the documented layout."""
    body = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
    inv = {v: k for k, v in head_targets(layout).items()}
    keys = []
    for k in net.state_dict():
        part, mod, rest = k.split(".", 2)
        if part == "body":
            keys.append(f"0.{body[mod]}.{rest}")
        else:
            target, leaf = k.rsplit(".", 1)
            keys.append(f"1.{inv[target]}.{leaf}")
    return keys


@pytest.mark.parametrize("body", ["resnet18", "resnet50"])
def test_every_key_of_an_orcahello_learner_maps_onto_the_clean_model(body: str) -> None:
    nf = 512 if body == "resnet18" else 2048
    net = OrcaNet(ArchitectureConfig(body=body, in_channels=1, head=HeadConfig(lin_ftrs=(2 * nf, 512, 2))))
    keys = _fastai_keys(net, ORCAHELLO_HEAD)
    mapping = fastai_to_clean_keys(keys, ORCAHELLO_HEAD)
    assert sorted(mapping.values()) == sorted(net.state_dict())
    assert mapping["0.0.weight"] == "body.conv1.weight"
    assert mapping["0.4.0.bn1.num_batches_tracked"] == "body.layer1.0.bn1.num_batches_tracked"
    assert mapping["1.2.running_var"] == "head.blocks.0.bn.running_var"
    assert mapping["1.8.bias"] == "head.blocks.1.fc.bias"


def test_head_without_dropout_shifts_indices_and_bn_final_is_named() -> None:
    # ps=0 drops the Dropout modules, so every later index moves: the layout must drive the map.
    layout = ("pool", "flatten", "bn", "linear", "relu", "bn", "linear", "bn_final")
    assert head_targets(layout) == {"2": "head.blocks.0.bn", "3": "head.blocks.0.fc",
                                    "5": "head.blocks.1.bn", "6": "head.blocks.1.fc",
                                    "7": "head.bn_final"}


def test_unmapped_keys_are_named_not_dropped() -> None:
    with pytest.raises(KeyMapError, match=r"2 learner key\(s\).*0\.8\.weight.*1\.0\.weight"):
        fastai_to_clean_keys(["0.0.weight", "0.8.weight", "1.0.weight"], ORCAHELLO_HEAD)


def test_unknown_head_layer_kind_is_refused() -> None:
    with pytest.raises(KeyMapError, match="unknown head layer kind"):
        head_targets(("pool", "flatten", "attention", "linear"))
