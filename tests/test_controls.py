"""Sensitivity under the envelope's tolerances: every negative control (a perturbed weight, reference
element or frontend parameter; each legacy quirk removed in turn) fails at the stage where it enters
the pipeline, clearly over tolerance."""

from __future__ import annotations

import pytest

from orcaport.parity.controls import CONTROLS, ODD_FILE, Control, Embedded, run_control
from orcaport.parity.run import run_parity
from tests.conftest import ROOT

EMBEDDED = Embedded(ROOT / "reference_outputs").check()


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name.replace(" ", "-"))
def test_control_fails_at_its_stage(control: Control) -> None:
    row = run_control(control, EMBEDDED)
    assert row["caught"], row
    if row["excess"] is not None and not row["margin"].endswith("(exact stage)"):
        assert row["excess"] >= 2.0, row          # a real bug sits well above the noise


def test_the_unbroken_odd_rate_set_passes_under_the_criteria_that_apply() -> None:
    """The controls' own references replay clean when nothing is broken -- under the tight
    same-machine criteria on the machine that recorded them, the cross-machine ones elsewhere."""
    odd = EMBEDDED.odd_rate
    result, _ = run_parity(EMBEDDED.fixture, odd / "stages", odd / "corpus", only=[ODD_FILE])
    assert result.passed, result.first_failure
    assert result.criteria.regime == ("same_machine" if result.criteria.same_fingerprint
                                      else "cross_machine")
