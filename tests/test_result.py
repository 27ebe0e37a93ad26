"""The parity result (parity/result.py): parity.json is its exact JSON, it reads back to the same
result, the gate and the reports take it, and a file that is not this schema says which field."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from orcaport.parity import result as result_module
from orcaport.parity.publishing.gate import check_report
from orcaport.parity.reports import cells, html, markdown
from orcaport.parity.reports.write import write_reports
from orcaport.parity.result import Check, ParityResult, Record, ResultError
from orcaport.parity.run import run_parity
from tests.conftest import CORPUS, FIXTURE, REFS


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[ParityResult, bytes, Path]:
    """A real parity run on the fixture, written as `make parity` writes it."""
    result, heatmaps = run_parity(FIXTURE, REFS, CORPUS)
    paths = write_reports(result, heatmaps, tmp_path_factory.mktemp("reports"))
    return result, paths["json"].read_bytes(), paths["json"]


def test_parity_json_is_the_results_json_and_reads_back_byte_for_byte(run) -> None:
    result, raw, _ = run
    assert result.to_json().encode() == raw
    loaded = ParityResult.from_json(raw)
    assert loaded.to_json().encode() == raw
    assert ParityResult.from_json(loaded.to_json()) == loaded
    assert isinstance(loaded.files[0].checks[0], Check) and loaded.passed is True
    assert [f.name for f in loaded.files] == [f.name for f in result.files]


def test_the_gate_and_the_reports_read_it(run) -> None:
    result, raw, path = run
    gated = check_report(path, FIXTURE, REFS)
    assert gated.raw == raw and gated.result == ParityResult.from_json(raw)
    loaded = gated.result
    assert cells.verdict_line(loaded) == cells.verdict_line(result) == "PARITY PASSED"
    assert cells.summary_rows(loaded) == cells.summary_rows(result)
    assert "# Parity report: PASSED" in markdown.render_markdown(loaded)
    assert "Parity report: PASSED" in html.render_html(loaded, {})


def _edited(raw: bytes, edit) -> str:
    data = json.loads(raw)
    edit(data)
    return json.dumps(data)


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("criteria"), "missing field(s) criteria"),
    (lambda d: d["files"][2]["checks"][1].pop("stage"), "missing field(s) stage in files[2].checks[1]"),
    (lambda d: d["files"][0].update(colour="red"), "unknown field(s) colour in files[0]"),
    (lambda d: d.update(passed="yes"), "passed is 'yes', not a bool"),
    (lambda d: d["summary"][0].update(checks=1.5), "summary[0].checks is 1.5, not a int"),
    (lambda d: d.update(files={}), "files must be a JSON array"),
    (lambda d: d.update(schema_version=2), "schema_version 2, not 1"),
])
def test_a_file_that_is_not_the_schema_names_the_field(run, edit, message: str) -> None:
    with pytest.raises(ResultError) as e:
        ParityResult.from_json(_edited(run[1], edit))
    assert message in str(e.value)


def test_every_field_is_documented() -> None:
    """The module docstring is the schema's documentation: it names every field of every record."""
    doc = result_module.__doc__
    records = [c for c in vars(result_module).values()
               if isinstance(c, type) and issubclass(c, Record) and c is not Record]
    assert len(records) == 11
    for record in records:
        assert record.__name__ in doc, record.__name__
        for f in dataclasses.fields(record):
            assert f.name in doc, f"{record.__name__}.{f.name}"
