"""Replay one recording's predict-mode references stage by stage (clean env), two ways:

- chained: the recording through the learner's chain as `orcaport predict` runs it
  (model/predict.py `file_inputs`, legacy's random draws replayed), every recorded stage compared;
- isolated: each step fed legacy's own tensor of the stage before it (a fan-out step -- silence,
  segment -- once per legacy piece it cuts, its pieces compared one by one, their count too), so a
  failure blames that step alone; the network fed legacy's input, softmax fed legacy's logits.

Each stage runs under its own criterion (parity/metrics.py `tolerance_stage`): an option stage
under its own entry when the tolerances file is a predict envelope's (`make predict-envelope`), else
under the stage its arithmetic comes from -- silence/segment/pad_signal that of resample,
standardize/delta that of db, mfcc that of input (parity/run.py `load_tolerances`).
Stage tensors are found where convert/predict_references.py stored them (`file/`, `items/NN/`, a
fan-out's `<stage>/JJ/`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import torch

from orcaport.model.frontend.files import read_file
from orcaport.model.pipeline import FANS_OUT, Frontend, probabilities, run_items
from orcaport.model.predict import file_inputs
from orcaport.parity.metrics import AXES, Tolerance, compare, tolerance_stage

OFFSETS = ("zeros_front", "crop_start", "signal_front")
NETWORK = ("logits", "probs", "index")
# the metric each kind of criterion bounds: the figure a report lists for a check
FIGURE = {"log_power": "max_log_power_db", "max": "rel_to_max", "abs": "max_abs"}


def item_offsets(t: dict[str, np.ndarray], n: int) -> list[dict[str, int]]:
    """Per item, the random offsets legacy drew (to replay them)."""
    return [{name: int(t[f"all/offsets/{name}"][i]) for name in OFFSETS
             if f"all/offsets/{name}" in t and t[f"all/offsets/{name}"][i] >= 0} for i in range(n)]


def figure_of(tol: Tolerance, metrics: dict[str, Any]) -> tuple[str, float | None]:
    """(metric name, value): the number `tol` bounds, as the report lists it."""
    name = "exact" if tol.exact else FIGURE["log_power" if tol.domain == "log_power" else tol.scale]
    value = metrics.get("n_out") if tol.exact else metrics.get(name)
    return name, value


class PredictFileReplay:
    """The checks of one recording; `offsets` is legacy's draws per item (item_offsets)."""

    def __init__(self, entry: dict[str, Any], t: dict[str, np.ndarray], path: Path, fe: Frontend,
                 net: torch.nn.Module, tols: dict[str, Tolerance], offsets: list[dict[str, int]]):
        self.entry, self.t, self.path, self.fe, self.net, self.tols = entry, t, path, fe, net, tols
        self.n = int(entry["items"])
        self.offsets = offsets
        self.stages = [s for s in entry["stages"] if s not in NETWORK]   # frontend stages, chain order
        self.fans = list(entry.get("fans", []))
        self.checks: list[dict[str, Any]] = []

    # -- where legacy's tensors are ------------------------------------------------------------
    def key_of(self, stage: str, i: int) -> str:
        """The references' key of `stage` for item i: its own, a fan-out piece's, or the file's."""
        candidates = [f"items/{i:02d}/{stage}"]
        lineage = self.t.get("all/lineage")
        for depth in range(len(self.fans) - 1, 0, -1):
            node = "-".join(f"{j:02d}" for j in lineage[i][:depth])
            candidates.append(f"{self.fans[depth - 1]}/{node}/{stage}")
        candidates.append(f"file/{stage}")
        for key in candidates:
            if key in self.t:
                return key
        raise KeyError(f"{self.entry['name']}: the references hold no {stage} for item {i}")

    def distinct(self, stage: str) -> list[tuple[str, int]]:
        """(key, first item) of each distinct tensor of `stage`, in item order."""
        seen: dict[str, int] = {}
        for i in range(self.n):
            seen.setdefault(self.key_of(stage, i), i)
        return list(seen.items())

    def item_fe(self, i: int) -> Frontend:
        return dataclasses.replace(self.fe, **self.offsets[i]) if i < len(self.offsets) else self.fe

    # -- checks --------------------------------------------------------------------------------
    def check(self, mode: str, stage: str, item: int | None, key: str, ref: np.ndarray, got: Any) -> None:
        criterion = tolerance_stage(stage, None, self.tols)   # own entries: a predict envelope's only
        tol = self.tols[criterion]
        got = got.detach().cpu().numpy() if isinstance(got, torch.Tensor) else np.asarray(got)
        metrics = compare(np.asarray(ref), got, tol, AXES.get(criterion, ()))
        name, value = figure_of(tol, metrics)
        self.checks.append({"stage": stage, "mode": mode, "item": item, "key": key,
                            "passed": bool(metrics.pop("passed")), "criterion": criterion,
                            "tolerance": tol.text(), "figure": name, "value": value, "metrics": metrics})

    def count(self, mode: str, stage: str, key: str | None, legacy: int, clean: int) -> None:
        self.checks.append({"stage": stage, "mode": mode, "item": None, "key": key, "passed": legacy == clean,
                            "criterion": "count", "tolerance": "equal", "figure": "count",
                            "value": clean, "metrics": {"legacy": legacy, "clean": clean}})

    def network(self, mode: str, i: int, logits: torch.Tensor) -> None:
        t = self.t
        self.check(mode, "logits", i, "all/logits", t["all/logits"][i], logits)
        probs = probabilities(logits if mode == "chained" else torch.from_numpy(t["all/logits"][i]))
        self.check(mode, "probs", i, "all/probs", t["all/probs"][i], probs)
        self.checks.append({"stage": "index", "mode": mode, "item": i, "key": "all/index",
                            "passed": int(logits.argmax()) == int(t["all/index"][i]), "criterion": "exact",
                            "tolerance": "equal", "figure": "index", "value": int(logits.argmax()),
                            "metrics": {"legacy": int(t["all/index"][i]), "clean": int(logits.argmax())}})

    # -- chained -------------------------------------------------------------------------------
    def chained(self) -> None:
        items, _ = file_inputs(self.fe, self.path, self.offsets)
        self.count("chained", "items", None, self.n, len(items))
        seen: set[str] = set()
        for i in range(min(self.n, len(items))):
            for stage in self.stages:
                key = self.key_of(stage, i)
                if key not in seen:
                    seen.add(key)
                    self.check("chained", stage, i, key, self.t[key], items[i][stage])
        with torch.inference_mode():
            for i in range(min(self.n, len(items))):
                self.network("chained", i, self.net(torch.as_tensor(items[i]["input"])[None])[0])

    # -- isolated ------------------------------------------------------------------------------
    def isolated(self) -> None:
        x, rate = read_file(self.path)
        chain = self.fe.chain
        for s, stage in enumerate(self.stages):
            if stage == "load":            # its input is the file itself
                key = self.key_of("load", 0)
                self.check("isolated", "load", 0, key, self.t[key], x)
                continue
            prev = self.stages[s - 1]
            first = chain[chain.index(prev) + 1]
            if stage in FANS_OUT:
                self.isolated_fan(stage, prev, first, rate)
                continue
            for key, i in self.distinct(stage):
                out = run_items(self.t[self.key_of(prev, i)], self.item_fe(i), rate, first, stage)
                if len(out) != 1:
                    self.count("isolated", stage, key, 1, len(out))
                    continue
                self.check("isolated", stage, i, key, self.t[key], out[0][stage])
        with torch.inference_mode():
            for i in range(self.n):
                self.network("isolated", i, self.net(torch.from_numpy(self.t[f"items/{i:02d}/input"])[None])[0])

    def isolated_fan(self, stage: str, prev: str, first: str, rate: int) -> None:
        """A fan-out step fed each legacy signal it cuts: its pieces, their count and each one."""
        children: dict[str, list[tuple[str, int]]] = {}
        for key, i in self.distinct(stage):
            children.setdefault(self.key_of(prev, i), []).append((key, i))
        for parent, kids in children.items():
            pieces = [d[stage] for d in run_items(self.t[parent], self.fe, rate, first, stage)]
            self.count("isolated", stage, parent, len(kids), len(pieces))
            for (key, i), piece in zip(kids, pieces):
                self.check("isolated", stage, i, key, self.t[key], piece)

    def run(self) -> list[dict[str, Any]]:
        for mode in (self.isolated, self.chained):
            try:
                mode()
            except Exception as e:  # noqa: BLE001 - the clean side's failure is a result, not a crash
                self.checks.append({"stage": "error", "mode": mode.__name__, "item": None, "key": None,
                                    "passed": False, "criterion": "runs", "tolerance": "no error",
                                    "figure": "error", "value": None,
                                    "metrics": {"type": type(e).__name__, "message": str(e).splitlines()[0]
                                                if str(e) else ""}})
        return self.checks
