"""The offsets fastai_audio draws with `random.randint`, and the ones this runtime takes instead.

fastai_audio 0.1 draws a uniform random offset in three places:

    pad "zeros"   tfm_pad_spectro     randint(0, width - frames) zero columns in front
    crop          tfm_crop_time       randint(0, frames - width) first column kept
    padtrim       tfm_padtrim_signal  randint(0, samples - n) zero samples in front (max_to_pad
                                      always pads this way: fastai_audio passes pad_mode="zeros")

Legacy's answer therefore changes from one call to the next. Parity replays the offset legacy drew
(recorded with the references); the runtime, which has nothing to replay, takes the middle of the
range: `span // 2`, the offset closest to every draw on average (the mean of a uniform draw), so its
answer is legacy's most typical one. How far that moves probabilities and decisions against
legacy's draws is measured (tests/test_frontend_options_legacy.py, README).
"""

from __future__ import annotations

from orcaport.model.errors import OrcaportError


class OffsetError(OrcaportError, ValueError):
    """A recorded offset does not fit the tensor it is replayed on."""


def centered_offset(span: int) -> int:
    """The runtime's offset for a draw of randint(0, span): the middle, rounded down."""
    return max(span, 0) // 2


def resolve_offset(span: int, drawn: int | None, what: str) -> int:
    """`drawn` (legacy's recorded draw) if given and within 0..span, else the runtime's offset."""
    if drawn is None:
        return centered_offset(span)
    if not 0 <= drawn <= max(span, 0):
        raise OffsetError(f"{what}={drawn} is outside 0..{max(span, 0)}: the recorded offset belongs "
                          "to another tensor; re-record the references")
    return drawn
