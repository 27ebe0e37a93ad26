"""Sensitivity under the envelope's tolerances: every negative control (a perturbed weight, reference
element or frontend parameter; each legacy quirk removed in turn) fails at the stage where it enters
the pipeline, clearly over tolerance."""

from __future__ import annotations

import pytest

from parity.controls import CONTROLS, Control, run_control


@pytest.mark.parametrize("control", CONTROLS, ids=lambda c: c.name.replace(" ", "-"))
def test_control_fails_at_its_stage(control: Control) -> None:
    row = run_control(control)
    assert row["caught"], row
    if row["excess"] is not None and not row["margin"].endswith("(exact stage)"):
        assert row["excess"] >= 2.0, row          # a real bug sits well above the noise
