"""clips/s of the detector one process vs `orcaport detect --ray` on a 1-node and a 2-node local
Ray cluster, measured side by side in one run on one machine (never in CI):

    .venvs/clean/bin/python -m bench.ray --out bench [--files 4] [--model DIR]

The same WAVs (copies of the 60 s flagship) and the same legacy-exact model in every row; Ray rows
run the CLI in the Ray side env (envs/ray_env.sh) against clusters started and stopped here
(tests/ray_cluster.py). A row's clips/s is clips / the run's wall clock without Ray's start-up
(summary.json); `with start-up` adds connecting, actors loading the model and planning. Every
Ray row's rows are checked equal to the single-process rows before its figure is kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.machine import cpu_name, lscpu
from orcaport.model.detector import Detector
from tests.paths import CORPUS, FIXTURE, FLAGSHIP, ROOT
from tests.ray_cluster import RAY_PYTHON, LocalCluster


def single_process(model: Path, files: list[Path]) -> tuple[dict[str, Any], dict[str, list]]:
    det = Detector.from_folder(model)
    t0 = time.perf_counter()
    rows = {f.name: det.detect(f).to_dict()["rows"] for f in files}
    wall = time.perf_counter() - t0
    clips = sum(len(r) - 1 for r in rows.values())
    return {"setup": "one process (orcaport detect)", "clips": clips, "wall_s": round(wall, 2),
            "clips_per_s": round(clips / wall, 2)}, rows


def ray_row(nodes: int, model: Path, folder: Path, want: dict[str, list]) -> dict[str, Any]:
    cluster = LocalCluster(nodes=nodes)
    out = Path(tempfile.mkdtemp(prefix="orcaport-bench-ray-"))
    try:
        cluster.start()
        t0 = time.perf_counter()
        run = subprocess.run([str(RAY_PYTHON), "-m", "orcaport.model", "detect", "--ray", cluster.address,
                              "--model", str(model), "--output", str(out / "run"), "--format", "csv",
                              str(folder)], capture_output=True, text=True, env=cluster.env, timeout=1800)
        total = time.perf_counter() - t0
        if run.returncode != 0:
            raise SystemExit(f"bench.ray: the {nodes}-node run failed:\n{run.stderr[-3000:]}")
        summary = json.loads((out / "run" / "summary.json").read_text())
        for line in (out / "run" / "manifest.jsonl").read_text().splitlines()[1:]:
            ln = json.loads(line)
            got = json.loads((out / "run" / "results" / ln["result"]).read_text())["rows"]
            if got != want[ln["name"]]:
                raise SystemExit(f"bench.ray: {ln['name']} differs from the single-process rows")
    finally:
        cluster.stop()
        shutil.rmtree(out, ignore_errors=True)
    return {"setup": f"Ray, {nodes} local node(s) x 2 CPUs, {summary['actors']} CPU actor(s)",
            "clips": summary["clips"], "wall_s": summary["wall_s"], "clips_per_s": summary["clips_per_s"],
            "wall_with_startup_s": round(total, 2), "stage_seconds_summed": summary["stage_seconds_summed"],
            "rows_equal_single_process": True}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.ray", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("bench"))
    p.add_argument("--files", type=int, default=4, help="copies of the 60 s flagship (59 clips each)")
    p.add_argument("--model", type=Path, default=FIXTURE)
    args = p.parse_args(argv)
    if not RAY_PYTHON.exists():
        raise SystemExit(f"bench.ray: no Ray env at {RAY_PYTHON}; build it with envs/ray_env.sh")
    with tempfile.TemporaryDirectory(prefix="orcaport-bench-in-") as tmp:
        files = []
        for i in range(args.files):
            files.append(Path(tmp) / f"copy{i:02d}.wav")
            shutil.copy(CORPUS / FLAGSHIP, files[-1])
        base, want = single_process(args.model, files)
        rows = [base] + [ray_row(n, args.model, Path(tmp), want) for n in (1, 2)]
    for r in rows[1:]:
        r["ratio_vs_one_process"] = round(r["clips_per_s"] / base["clips_per_s"], 2)
    cpu = lscpu()
    doc = {"date": time.strftime("%Y-%m-%d", time.gmtime()), "machine": {"cpu": cpu_name(), "cpus": _cpus(),
           "model": cpu["model"], "key_flags": cpu["key_flags"], "gpu": None},
           "model": str(args.model.resolve().relative_to(ROOT)) if args.model.resolve().is_relative_to(ROOT) else str(args.model), "profile": "legacy-exact",
           "files": args.files, "rows": rows}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "ray.json").write_text(json.dumps(doc, indent=2) + "\n")
    for r in rows:
        print(f"| {r['setup']} | {r['clips']} | {r['wall_s']} | {r['clips_per_s']} | "
              f"{r.get('ratio_vs_one_process', 1.0)} | {r.get('wall_with_startup_s', r['wall_s'])} |")
    return 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    sys.exit(main())
