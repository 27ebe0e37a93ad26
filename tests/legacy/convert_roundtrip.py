"""Legacy-env check (run by tests/test_convert_legacy.py): learners built on the fly -> convert.

For each case: build a real `audio_learner` on a tiny generated dataset, give every BN buffer and
bias non-trivial values, export, convert twice, then load the clean network from safetensors and
compare logits with `learner.model` on one batch. Prints one `RESULT {json}` line.
"""

import json
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

from convert.cli import convert
from convert.production import legacy_audio_config
from convert.legacy import isolated_home, patch_torchaudio_io
from orcaport.model.config import FrontendConfig, ModelConfig
from orcaport.model.fileio import sha256_file
from orcaport.model.weights import load_network

warnings.simplefilter("ignore")
CASES = {
    "resnet18_default": ("resnet18", 2, {}, None),
    "resnet34_custom_head_3_classes": ("resnet34", 3, dict(lin_ftrs=[256, 128], ps=[0.1, 0.2, 0.3],
                                                           bn_final=True, concat_pool=False), None),
    "resnet50_orcahello_normalized": ("resnet50", 2, {}, ([-42.0], [17.5])),
}


def make_data(root: Path, classes: int, norm, names=None):
    """Two noise clips per class and split; classes named class0.. unless `names` are given."""
    from audio.data import AudioList

    rng = np.random.default_rng(0)
    for split in ("train", "valid"):
        for c in range(classes):
            d = root / split / (names[c] if names else f"class{c}")
            d.mkdir(parents=True)
            for i in range(2):
                sf.write(str(d / f"{i}.wav"), (rng.standard_normal(32000) * 0.1).astype(np.float32),
                         16000, subtype="PCM_16")
    data = (AudioList.from_folder(root, config=legacy_audio_config(FrontendConfig()))
            .split_by_folder().label_from_folder().databunch(bs=2, num_workers=0))
    if norm is not None:
        from fastai.vision.data import ImageDataBunch   # AudioDataBunch has no normalize of its own
        ImageDataBunch.normalize(data, (torch.tensor(norm[0]), torch.tensor(norm[1])))
    return data


def randomize(model: nn.Module) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
                m.running_mean.copy_(torch.rand(m.running_mean.shape, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.num_batches_tracked.fill_(11)
            elif isinstance(m, nn.Linear):
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)


def main() -> None:
    from audio.learner import audio_learner
    from fastai.vision import models

    patch_torchaudio_io()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, isolated_home(Path(tmp) / "home"):
        for name, (arch, classes, kwargs, norm) in CASES.items():
            root = Path(tmp) / name
            data = make_data(root / "data", classes, norm)
            learn = audio_learner(data, base_arch=getattr(models, arch), pretrained=False, **kwargs)
            randomize(learn.model)
            learn.model.eval()
            learn.export(root / "model.pkl")
            sha = sha256_file(root / "model.pkl")
            positive = f"class{classes - 1}" if classes > 2 else None   # >2 classes: must be named
            a = convert(root / "model.pkl", root / "out_a", sha256=sha, positive_class=positive)
            convert(root / "model.pkl", root / "out_b", sha256=sha, positive_class=positive)
            cfg = ModelConfig.load(root / "out_a" / "config.json")
            net = load_network(root / "out_a" / "model.safetensors", cfg)
            x = torch.randn(3, 1, 256, 312, generator=torch.Generator().manual_seed(2)) * 20 - 40
            with torch.no_grad():
                want, got = learn.model(x), net(x)
            same = {f: (root / "out_a" / f).read_bytes() == (root / "out_b" / f).read_bytes()
                    for f in ("model.safetensors", "config.json")}
            results[name] = {
                "body": cfg.architecture.body, "classes": list(cfg.classes),
                "positive_index": cfg.positive_index,
                "head": [type(m).__name__ for m in learn.model[1]],
                "lin_ftrs": list(cfg.architecture.head.lin_ftrs),
                "bn_final": cfg.architecture.head.bn_final,
                "concat_pool": cfg.architecture.head.concat_pool,
                "normalization": None if cfg.normalization is None else
                [list(cfg.normalization.mean), list(cfg.normalization.std)],
                "tensors": a["tensors"], "learner_tensors": len(learn.model.state_dict()),
                "max_abs": (want - got).abs().max().item(), "scale": want.abs().max().item(),
                "identical_bytes": same,
            }
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    sys.exit(main())
