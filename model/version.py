"""The installed distribution's version: pyproject.toml holds the only literal, package metadata
carries it here (`orcaport --version`, config.json provenance, reports)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version as _metadata_version

DISTRIBUTION = "orcaport"


def version() -> str:
    """The version of the installed `orcaport` distribution (editable or wheel)."""
    try:
        return _metadata_version(DISTRIBUTION)
    except PackageNotFoundError:   # imported from a checkout that was never `pip install`ed
        from orcaport.model.errors import OrcaportError

        raise OrcaportError("the orcaport distribution is not installed, so it has no version; "
                            "run `pip install .` (or `make env-clean`) in the checkout") from None
