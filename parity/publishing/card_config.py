"""What the model card says about the model, from the user: a small JSON card config and/or flags.

    {"title": "...", "task": "Detects ... in ...", "description": "free text (Markdown)", "orcahello": false,
     "labels": {"positive": "a call", "negative": "background"},
     "license": "apache-2.0", "links": {"code": "https://...", "data": "https://..."},
     "tags": ["bird"], "install": "pip install 'orcaport @ git+https://...'"}

Every field is optional. The OrcaHello/SRKW wording appears only when the user says the model is
OrcaHello (`"orcahello": true`, `--orcahello`) or for orcaport's embedded fixture (fixture.json in
the model folder: an OrcaHello-shaped learner -- OrcaHello's frontend, classes and head -- trained on
synthetic SRKW-like calls), and never when the user says `"orcahello": false`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orcaport.model.errors import InputError

# The Hub's license ids are lowercase SPDX-like words; the Hub itself validates the exact list.
LICENSE_ID = re.compile(r"^[a-z0-9][a-z0-9.\-]*$")
FIELDS = {"title": str, "task": str, "description": str, "orcahello": bool, "labels": dict, "license": str,
          "links": dict, "tags": list, "install": str}


class CardConfigError(InputError):
    """The card config is unusable; str() is one line naming the file, the field and the fix."""


@dataclass(frozen=True)
class CardConfig:
    title: str | None = None
    task: str | None = None
    orcahello: bool | None = None          # None: decided by the model (fixture.json)
    labels: dict[str, str] = field(default_factory=dict)
    license: str | None = None
    links: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    install: str | None = None           # None: derived from links.code (model_card.install_line)
    description: str | None = None       # free Markdown, a section of its own under the summary

    def with_flags(self, task: str | None, license_id: str | None, orcahello: bool | None,
                   title: str | None) -> "CardConfig":
        """Flags win over the file."""
        return CardConfig(title or self.title, task or self.task,
                          self.orcahello if orcahello is None else orcahello, self.labels,
                          license_id or self.license, self.links, self.tags, self.install,
                          self.description)


def _bad(where: str, why: str) -> CardConfigError:
    return CardConfigError(f"{where}: {why}; fix the card config (see `python -m orcaport.parity.publishing --help`)")


def check_license(where: str, license_id: str | None) -> None:
    if license_id is not None and not LICENSE_ID.match(license_id):
        raise _bad(where, f"license {license_id!r} is not a Hub license id (e.g. mit, apache-2.0, "
                          "cc-by-4.0, other)")


def load_card_config(path: Path | None, classes: list[str]) -> CardConfig:
    """Read and check `path` (None: an empty config). `classes`: the model's, for `labels`."""
    if path is None:
        return CardConfig()
    where = str(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise CardConfigError(f"card config {path} does not exist; pass an existing CARD= file") from None
    except (OSError, ValueError) as e:
        raise _bad(where, f"not readable JSON ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise _bad(where, "not a JSON object")
    for key, value in data.items():
        if key not in FIELDS:
            raise _bad(where, f"unknown field {key!r} (known: {', '.join(FIELDS)})")
        if not isinstance(value, FIELDS[key]):
            raise _bad(where, f"field {key!r} must be a JSON {FIELDS[key].__name__}")
    labels, links, tags = data.get("labels", {}), data.get("links", {}), data.get("tags", [])
    unknown = sorted(set(labels) - set(classes))
    if unknown:
        raise _bad(where, f"labels names {unknown[0]!r}, not one of the model's classes "
                          f"({', '.join(classes)})")
    for what, mapping in (("labels", labels), ("links", links)):
        if not all(isinstance(v, str) for v in mapping.values()):
            raise _bad(where, f"every value of {what!r} must be a string")
    if not all(isinstance(u, str) and u.startswith(("https://", "http://")) for u in links.values()):
        raise _bad(where, "every link must be an http(s) URL")
    if not all(isinstance(t, str) and t for t in tags):
        raise _bad(where, "tags must be non-empty strings")
    check_license(where, data.get("license"))
    return CardConfig(data.get("title"), data.get("task"), data.get("orcahello"), dict(labels),
                      data.get("license"), dict(links), tuple(tags),
                      data.get("install"), data.get("description"))
