"""Parity reports: PNG encoder, colour map, terminal table, JSON, Markdown, HTML, atomic writes,
and (when chromium is installed) that a real browser renders every embedded image."""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import os
import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from orcaport.model.stages import STAGES
from orcaport.parity.reports import cells, markdown, png, terminal, write
from orcaport.parity.reports import html as phtml
from orcaport.parity.result import (Check, Criteria, Decisions, ErrorInfo, FileResult, Location, ParityResult,
                                    Series, SummaryRow, ToleranceInfo, UnstableSeconds)

HYDRO, SHORT, STEREO = "hydrophone_48k_mono16_60s.wav", "short_0.5s.wav", "stereo_44k1_pcm24_10s.wav"
CHROMIUM = Path("/usr/bin/chromium")


# ----------------------------------------------------------------------------- fixture builder
def _tol(atol: float = 1e-4, rtol: float = 1e-5, exact: bool = False) -> dict[str, Any]:
    return {"atol": atol, "rtol": rtol, "max_fraction": 0.0, "exact": exact, "why": "float32 <ops>"}


def _check(mode: str, stage: str, clip: int | None, passed: bool = True, layer: str | None = None,
           max_abs: float = 3.1e-6, decisions: Decisions | None = None) -> Check:
    n_out = 0 if passed else 7
    return Check(mode=mode, stage=stage, clip=clip, layer=layer, passed=passed,
                 tolerance=_tol(exact=stage == "decode"), decisions=decisions,
                 metrics={"n": 40192, "max_abs": max_abs, "mean_abs": 2e-8, "max_rel": 1e-6, "rms": 1e-7,
                          "snr_db": math.inf if max_abs == 0 else 140.2, "n_out": n_out,
                          "fraction_out": n_out / 40192,
                          "worst": {"index": [0, 12, 88], "axes": ["channel", "mel_bin", "frame"],
                                    "ref": -20.1, "got": -20.1000031}})


def _summary(files: list[FileResult]) -> list[SummaryRow]:
    rows: dict[tuple[str, str], SummaryRow] = {}
    for f in files:
        for c in f.checks:
            r = rows.setdefault((c.stage, c.mode), SummaryRow(stage=c.stage, mode=c.mode, checks=0, failed=0,
                                                              max_abs=0.0, worst_file=None, passed=True))
            r.checks += 1
            r.failed += not c.passed
            r.passed &= c.passed
            if (c.metrics.get("max_abs") or 0.0) >= r.max_abs:
                r.max_abs, r.worst_file = c.metrics.get("max_abs") or 0.0, f.name
    return [rows[k] for k in sorted(rows, key=lambda k: (STAGES.index(k[0]), k[1] != "isolated"))]


def make_result(hydro_name: str = HYDRO) -> ParityResult:
    """Three files: one failing mel clip + a local decision flip, one expected error, one clean."""
    hydro = [_check(m, "decode", None, max_abs=0.0) for m in ("isolated", "chained")]
    hydro += [_check("isolated", "mel", i) for i in range(3)]
    hydro += [_check("chained", "mel", 0), _check("chained", "mel", 1, passed=False, max_abs=2.5e-3),
              _check("chained", "mel", 2), _check("chained", "db", 1)]
    hydro += [_check("chained", "activations", 1, layer="layer2", max_abs=np.float32(1e-5))]
    hydro.append(_check("chained", "aggregate", None, passed=False, decisions=Decisions(
        rows_ref=60, rows_clean=60, local_agreement=59 / 60, local_flips=[16], unstable_flips=[],
        unstable_seconds=0, unstable_band=8.6e-05, min_distance=0.0021, global_ref=1, global_clean=1,
        global_unstable=False, global_confidence_ref=0.61, global_confidence_clean=0.61)))
    series = Series(time_s=list(range(60)), threshold=0.5,
                    legacy=[0.5 + 0.4 * math.sin(t / 5) for t in range(60)],
                    clean=[0.5 + 0.4 * math.sin(t / 5) + (0.06 if t == 16 else 0.0) for t in range(60)])
    files = [
        FileResult(name=hydro_name, status="ok", legacy_error=None, clean_error=None, checks=hydro,
                   series=series),
        FileResult(name=SHORT, status="expected-error", legacy_error=ErrorInfo(type="KeyError", message="0"),
                   clean_error=ErrorInfo(type="ValueError", message="audio shorter than one 2 s window",
                                         stage="clip"),
                   checks=[], series=None),
        FileResult(name=STEREO, status="ok", legacy_error=None, clean_error=None,
                   checks=[_check(m, s, 0) for m in ("isolated", "chained") for s in ("mel", "db", "logits")],
                   series=None),
    ]
    return ParityResult(
        schema_version=1, profile="legacy-exact", weights_sha256="a" * 64, config_sha256="b" * 64,
        references_manifest_sha256="c" * 64, references_weights_sha256="a" * 64, weights_check="verified",
        tolerances=ToleranceInfo(version=2, sha256="d" * 64, regime="cross_machine", safety_factor=4.0,
                                 envelope_sha256="e" * 64),
        files_selected="all",
        environment={"python": "3.11.7", "torch": "2.13.0+cpu", "numpy": "2.4.6", "threads": 2},
        criteria=Criteria(regime="cross_machine", same_fingerprint=False, why="fingerprints differ",
                          recorded_on="AMD EPYC", replayed_on="Intel Xeon"),
        unstable_seconds=UnstableSeconds(seconds=0, flips=0), passed=False,
        first_failure=Location(file=hydro_name, mode="chained", stage="mel", clip=1, layer=None),
        files=files, summary=_summary(files),
        real_data={"available": False, "passed": None, "path": "upstream.safetensors", "why": "not here"},
        runtime_files={})


def make_heatmaps(name: str = HYDRO) -> dict[tuple, tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(0)
    mel = rng.random((16, 20)) ** 4
    db = 10 * np.log10(mel + 1e-10)
    return {(name, "mel", 1): (mel, mel + np.where(np.arange(20) == 5, 0.5, 0.0)),
            (name, "db", 1): (db[None], db[None])}


def passing_result() -> ParityResult:
    r = make_result()
    for c in r.all_checks():
        c.passed = True
    r.passed, r.first_failure, r.summary = True, None, _summary(r.files)
    return r


# ----------------------------------------------------------------------------- a PNG reader
def read_png(data: bytes) -> np.ndarray:
    """Minimal decoder for what encode_png writes: checks signature, every CRC, IHDR, filter 0."""
    assert data[:8] == png.PNG_SIGNATURE
    pos, chunks = 8, []
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length:pos + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        pos += 12 + length
    assert [k for k, _ in chunks][0] == b"IHDR" and chunks[-1] == (b"IEND", b"")
    w, h, depth, ctype, comp, filt, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert (depth, ctype, comp, filt, interlace) == (8, 2, 0, 0, 0)
    raw = zlib.decompress(b"".join(b for k, b in chunks if k == b"IDAT"))
    rows = np.frombuffer(raw, np.uint8).reshape(h, 1 + 3 * w)
    assert not rows[:, 0].any(), "only filter type 0 expected"
    return rows[:, 1:].reshape(h, w, 3)


def data_uri_pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)]


# ----------------------------------------------------------------------------- PNG + colour map
def test_png_roundtrip_exact_pixels() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 13
    assert np.array_equal(read_png(png.encode_png(rgb)), rgb)
    assert png.encode_png(rgb) == png.encode_png(rgb.copy())          # deterministic bytes
    with pytest.raises(ValueError):
        png.encode_png(rgb.astype(np.float32))


def test_heatmap_flips_low_rows_to_bottom_and_uses_map_ends() -> None:
    img = read_png(png.heatmap_png(np.array([[0.0, 1.0], [2.0, 3.0]]), scale=1))
    first, last = png._ANCHORS[0].astype(np.uint8), png._ANCHORS[-1].astype(np.uint8)
    assert img.shape == (2, 2, 3)
    assert np.array_equal(img[1, 0], first)           # array row 0, min value -> bottom-left, dark
    assert np.array_equal(img[0, 1], last)            # array row 1, max value -> top-right, bright
    # explicit limits clip; NaN is magenta and ignored by autoscaling
    img = read_png(png.heatmap_png(np.array([[np.nan, 5.0], [-5.0, 0.5]]), vmin=0, vmax=1, scale=1))
    assert tuple(img[1, 0]) == png.NONFINITE_RGB
    assert np.array_equal(img[1, 1], last) and np.array_equal(img[0, 0], first)


def test_heatmap_upscales_by_integer_nearest_neighbour() -> None:
    big = read_png(png.heatmap_png(np.random.default_rng(1).random((256, 312))))
    assert big.shape == (512, 624, 3)
    small = np.array([[0.0, 1.0, 2.0]])
    img = read_png(png.heatmap_png(small))
    k = png.MAX_SCALE
    assert img.shape == (k, 3 * k, 3)
    assert all(len(np.unique(img[:, j * k:(j + 1) * k].reshape(-1, 3), axis=0)) == 1 for j in range(3))
    # power maps: log autoscaling keeps at most LOG_DECADES below the peak, like top_db
    lo, hi = png.scale_limits(np.array([[1e-20, 1e-3], [1.0, 100.0]]), log=True)
    assert hi == pytest.approx(100.0) and lo == pytest.approx(100.0 / 10 ** png.LOG_DECADES)


def test_colormap_luminance_rises_monotonically() -> None:
    rgb = png.colormap(np.linspace(0, 1, 256)).astype(float) / 255
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    lum = lin @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lum) >= -1e-3), "colour map luminance must not go down"
    assert lum[-1] - lum[0] > 0.6
    assert tuple(png.colormap(np.array([np.nan]))[0]) == png.NONFINITE_RGB


# ----------------------------------------------------------------------------- terminal table
def _console() -> Console:
    return Console(record=True, width=220, color_system=None)


def test_table_has_one_row_per_summary_entry_with_marks() -> None:
    result = make_result()
    table = terminal.render_table(result)
    assert table.row_count == len(result.summary)
    console = _console()
    console.print(table)
    lines = console.export_text().splitlines()
    mel_chained = next(ln for ln in lines if " mel " in ln and "chained" in ln)
    assert "✗" in mel_chained and "0.0025" in mel_chained and HYDRO in mel_chained
    assert "✓" in next(ln for ln in lines if " db " in ln and "isolated" in ln)
    assert "atol=0.0001 rtol=1e-05" in mel_chained


def test_print_report_final_line() -> None:
    console = _console()
    terminal.print_report(make_result(), console)
    out = console.export_text().rstrip().splitlines()
    assert out[-1] == f"PARITY FAILED: first failing stage mel (chained) in {HYDRO} clip 1"
    assert any("expected-error" in ln and "KeyError: 0" in ln for ln in out)
    console = _console()
    terminal.print_report(passing_result(), console)
    assert console.export_text().rstrip().splitlines()[-1] == "PARITY PASSED"


def test_verdict_does_not_trust_an_inconsistent_passed_flag() -> None:
    r = make_result()
    r.passed, r.first_failure = True, None
    assert cells.verdict_line(r).startswith("PARITY FAILED")
    empty = dataclasses.replace(passing_result(), files=[], summary=[])
    assert cells.verdict_line(empty) == "PARITY FAILED: the result holds no checks"
    r = passing_result()                    # legacy raised, clean silently produced a result
    r.passed, r.files[1].status, r.files[1].clean_error = False, "error", None
    assert cells.verdict_line(r) == f"PARITY FAILED: {SHORT}: legacy raised KeyError: 0 but clean did not"
    r = make_result()
    r.first_failure.layer, r.first_failure.stage = "layer2", "activations"
    assert cells.verdict_line(r).endswith("activations (chained) in " + HYDRO + " clip 1 layer2")


def test_rich_markup_in_names_prints_literally() -> None:
    name = "[/]odd[bold]name.wav"
    console = _console()
    terminal.print_report(make_result(name), console)
    assert name in console.export_text()


# ----------------------------------------------------------------------------- JSON + Markdown
def test_json_is_strict_sorted_and_complete(tmp_path: Path) -> None:
    path = write.write_json(make_result(), tmp_path / "parity.json")
    text = path.read_text()
    def refuse(c: str) -> None:
        raise AssertionError(f"non-standard JSON constant {c}")
    data = json.loads(text, parse_constant=refuse)
    assert text.startswith('{\n  "config_sha256"') and text.endswith("}\n")
    assert data["first_failure"]["stage"] == "mel"
    assert data["files"][0]["checks"][0]["metrics"]["snr_db"] == "Infinity"
    assert isinstance(data["files"][0]["checks"][-2]["metrics"]["max_abs"], float)   # np.float32


def test_markdown_has_verdict_failures_decisions_provenance(tmp_path: Path) -> None:
    md = write.write_markdown(make_result(), tmp_path / "parity.md").read_text()
    assert f"PARITY FAILED: first failing stage mel (chained) in {HYDRO} clip 1" in md
    failing = md.index("Failing checks:")
    row = next(ln for ln in md[failing:].splitlines() if ln.startswith("| chained | mel | 1 |"))
    assert "0.0025" in row and "channel=0, mel_bin=12, frame=88: ref -20.1 got -20.1000031" in row
    assert failing < md.index("Passing checks")
    assert "local flips (1)" in md and "| 16 |" in md
    for h in ("a" * 64, "b" * 64, "c" * 64, "d" * 64, "2.13.0+cpu", "How to read this"):
        assert h in md
    assert "`KeyError: 0`" in md


def test_markdown_escapes_table_breaking_names(tmp_path: Path) -> None:
    md = markdown.render_markdown(make_result("a|b`<script>.wav"))
    assert "`` a\\|b`<script>.wav ``" in md
    outside_code = re.sub(r"``.*?``|`[^`\n]*`", "", md)
    assert "<script>" not in outside_code and "a|b" not in md
    summary = md[md.index("## Summary"):md.index("## Files")].strip().splitlines()[2:]
    cells = {len(re.findall(r"(?<!\\)\|", ln)) for ln in summary}
    assert len(cells) == 1, "an unescaped pipe in a name broke the summary table"


# ----------------------------------------------------------------------------- HTML
def test_html_is_self_contained_and_images_decode() -> None:
    page = phtml.render_html(make_result(), make_heatmaps())
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""(src|href)\s*=\s*["']?(?!["']|data:|#)""", page)
    imgs = re.findall(r"<img\b", page)
    pngs = data_uri_pngs(page)
    assert len(imgs) == len(pngs) == 2 * 6          # 2 heatmap entries x (3 maps + 3 colour bars)
    assert all(read_png(p).size for p in pngs)
    assert 'id="render-check"' in page and "Content-Security-Policy" in page
    assert "max = 0.5 at mel_bin=0, frame=5" in page
    assert "max = 0 (identical)" in page
    assert page.index("<td>✗</td>") < page.index("passing checks</summary>")


def test_html_shares_colour_scale_between_legacy_and_clean() -> None:
    """An offset between legacy and clean must show; independent autoscaling would hide it."""
    ref = np.random.default_rng(2).random((8, 10))
    page = phtml.heatmap_figures("db", 0, ref, ref + 0.25)
    legacy, clean = data_uri_pngs(page)[0], data_uri_pngs(page)[2]   # maps, bars interleaved
    assert legacy != clean
    assert phtml.heatmap_figures("db", 0, ref, ref.T).count("shape mismatch") == 1


def test_html_escapes_untrusted_text() -> None:
    evil = "<script>alert(1)</script>.wav"
    r = make_result(evil)
    r.files[1].clean_error.message = '<img src=x onerror="alert(2)">'
    r.environment["platform"] = "</td><script>alert(3)</script>"
    page = phtml.render_html(r, make_heatmaps(evil))
    assert page.count("<script>") == 1 and "alert(" not in page.split("<script>")[1].split("</script>")[0]
    assert "<img src=x" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;.wav" in page
    assert page.count('<section class="file"') == 3


def test_confidence_svg_marks_flips_and_breaks_on_nan() -> None:
    series = Series(time_s=[0, 1, 2, 3, 4], threshold=0.5,
                    legacy=[0.1, 0.6, 0.7, 0.2, 0.1], clean=[0.1, 0.4, float("nan"), 0.2, 0.1])
    svg = phtml.confidence_svg(series)                         # flips recomputed: second 1
    assert svg.count("<title>local decision differs at") == 1 and "at 1 s" in svg
    assert svg.count("<polyline") == 3                          # legacy 1 run + clean 2 runs
    assert "threshold 0.5" in svg
    assert phtml.confidence_svg(series, flips=[0, 3]).count("<title>local decision differs at") == 2
    fixture = phtml.confidence_svg(make_result().files[0].series)     # recomputed == engine's
    assert fixture.count("<title>local decision differs at") == 1 and "at 16 s" in fixture


# ----------------------------------------------------------------------------- atomic writes
def test_write_reports_atomic_and_keeps_old_on_failure(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "new" / "reports"
    paths = write.write_reports(make_result(), make_heatmaps(), out)
    assert sorted(p.name for p in out.iterdir()) == ["parity.html", "parity.json", "parity.md"]
    assert {k: p.name for k, p in paths.items()} == write.REPORT_NAMES
    assert all((p.stat().st_mode & 0o777) == 0o644 for p in paths.values())
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*a: Any, **k: Any) -> str:
        raise RuntimeError("renderer crashed")
    monkeypatch.setattr(phtml, "render_html", boom)
    with pytest.raises(RuntimeError):
        write.write_reports(passing_result(), {}, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    monkeypatch.undo()

    calls = {"n": 0}
    real_fsync = os.fsync
    def flaky_fsync(fd: int) -> None:                          # dies while writing the 2nd temp
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("disk full")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", flaky_fsync)
    with pytest.raises(OSError):
        write.write_reports(passing_result(), {}, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before   # no temp left, none replaced


# ----------------------------------------------------------------------------- real browser
def _chromium_render_check(page: Path, profile: Path) -> tuple[str, int, int]:
    cmd = [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
           "--virtual-time-budget=5000", "--dump-dom", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'<p id="render-check" data-ok="(\w+)">(\d+)/(\d+) images rendered</p>', proc.stdout)
    assert m, (f"render-check not updated (rc={proc.returncode}):\n{proc.stdout[-1500:]}\n"
               f"{proc.stderr[-1500:]}")
    return m.group(1), int(m.group(2)), int(m.group(3))


def test_chromium_renders_every_image(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed (apt-get install chromium)")
    page = write.write_reports(make_result(), make_heatmaps(), tmp_path / "out")["html"]
    ok, n, total = _chromium_render_check(page, tmp_path / "profile")
    assert (ok, n) == ("true", total) and total > 0, (ok, n, total)
    # The check itself must be able to fail: one corrupted data: URI is reported.
    broken = tmp_path / "broken.html"
    broken.write_text(page.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    assert _chromium_render_check(broken, tmp_path / "profile") == ("false", total - 1, total)
