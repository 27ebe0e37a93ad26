"""convert/keymap.py: the one pure fastai -> clean key mapping (no torch, no fastai needed)."""

from __future__ import annotations

import pytest

from convert.keymap import BODY_CHILDREN, KeyMapError, fastai_to_clean_keys, head_targets
from orcaport.model import bodies
from orcaport.model.bodies import family
from orcaport.model.config import ArchitectureConfig, HeadConfig
from orcaport.model.network import OrcaNet

ORCAHELLO_HEAD = ("pool", "flatten", "bn", "dropout", "linear", "relu", "bn", "dropout", "linear")


def _fastai_keys(net: OrcaNet, layout: tuple[str, ...]) -> list[str]:
    """Rebuild fastai's key names from the clean model's by inverting the documented layout."""
    body = {name: str(i) for i, name in enumerate(BODY_CHILDREN[family(net.config.body)])}
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


def _net(body: str, nf: int) -> OrcaNet:
    return OrcaNet(ArchitectureConfig(body=body, in_channels=1, head=HeadConfig(lin_ftrs=(2 * nf, 512, 2))))


@pytest.mark.parametrize("body", ["resnet18", "resnet50"])
def test_every_key_of_an_orcahello_learner_maps_onto_the_clean_model(body: str) -> None:
    net = _net(body, 512 if body == "resnet18" else 2048)
    keys = _fastai_keys(net, ORCAHELLO_HEAD)
    mapping = fastai_to_clean_keys(keys, ORCAHELLO_HEAD, body)
    assert sorted(mapping.values()) == sorted(net.state_dict())
    assert mapping["0.0.weight"] == "body.conv1.weight"
    assert mapping["0.4.0.bn1.num_batches_tracked"] == "body.layer1.0.bn1.num_batches_tracked"
    assert mapping["1.2.running_var"] == "head.blocks.0.bn.running_var"
    assert mapping["1.8.bias"] == "head.blocks.1.fc.bias"


@pytest.mark.parametrize("body, nf, key, target", [
    ("densenet121", 1024, "0.0.denseblock2.denselayer3.norm1.running_mean",
     "body.features.denseblock2.denselayer3.norm1.running_mean"),
    ("vgg11_bn", 512, "0.0.4.weight", "body.features.4.weight"),
    ("squeezenet1_1", 512, "0.0.3.expand3x3.bias", "body.features.3.expand3x3.bias"),
    ("alexnet", 256, "0.0.10.weight", "body.features.10.weight"),
    ("mobilenet_v2", 1280, "0.0.1.conv.0.1.running_var", "body.features.1.conv.0.1.running_var"),
])
def test_every_body_family_maps_fastai_indices_onto_torchvision_names(
        body: str, nf: int, key: str, target: str) -> None:
    net = _net(body, nf)
    mapping = fastai_to_clean_keys(_fastai_keys(net, ORCAHELLO_HEAD), ORCAHELLO_HEAD, body)
    assert sorted(mapping.values()) == sorted(net.state_dict())
    assert mapping[key] == target


def test_the_key_maps_table_is_the_bodies_table() -> None:
    # keymap is pure (no torch) so it keeps its own copy; model/bodies.py builds from its own
    assert BODY_CHILDREN == bodies.BODY_CHILDREN


def test_an_unknown_body_is_refused_naming_the_known_families() -> None:
    with pytest.raises(KeyMapError, match="unknown body 'xresnet50'.*densenet"):
        fastai_to_clean_keys(["0.0.weight"], ORCAHELLO_HEAD, "xresnet50")


def test_head_without_dropout_shifts_indices_and_bn_final_is_named() -> None:
    # ps=0 drops the Dropout modules, so every later index moves: the layout must drive the map.
    layout = ("pool", "flatten", "bn", "linear", "relu", "bn", "linear", "bn_final")
    assert head_targets(layout) == {"2": "head.blocks.0.bn", "3": "head.blocks.0.fc",
                                    "5": "head.blocks.1.bn", "6": "head.blocks.1.fc",
                                    "7": "head.bn_final"}


def test_unmapped_keys_are_named_not_dropped() -> None:
    with pytest.raises(KeyMapError, match=r"2 learner key\(s\).*0\.8\.weight.*1\.0\.weight"):
        fastai_to_clean_keys(["0.0.weight", "0.8.weight", "1.0.weight"], ORCAHELLO_HEAD, "resnet18")


def test_unknown_head_layer_kind_is_refused() -> None:
    with pytest.raises(KeyMapError, match="unknown head layer kind"):
        head_targets(("pool", "flatten", "attention", "linear"))
