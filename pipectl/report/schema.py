"""One JSON Schema (draft 2020-12) for every JSON document pipectl prints, generated from the models in
`pipectl.report.documents` and `pipectl.report.listing_documents`. `python -m pipectl.report.schema`
prints it; `docs/report.schema.json` is that output, committed, and a test fails when the two differ —
regenerate it with

    python -m pipectl.report.schema > docs/report.schema.json

The top level is `anyOf` over the documents (doctor report, trace, probe, repair plan and outcome,
playbook verdict, the listings, journal, incident run, config and contexts, /healthz, watchdog status); a
document with a `schema` key is pinned to its value by a `const`, so a script can tell which one it holds.

Versioning. VERSION (the `vN` in `$id`) is the version of this whole contract, apart from the `schema` tag
each document carries (`pipectl.report/v2` …). Bump VERSION when a change can break a reader: a key removed
or renamed, a type changed or narrowed, an optional key made required, an enum or `const` value removed or
changed (so a document's own tag bump, e.g. `pipectl.report/v3`, bumps it too), a value that now means
something else. Additions keep it: a new optional key, a new document, a new enum value — every document
valid before still is, and the schema shipped with each release describes that release's outputs.
"""

from __future__ import annotations

import json
import sys
from typing import Any, Union

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import GenerateJsonSchema

from pipectl.report import documents as found_and_done
from pipectl.report import listing_documents as listings

VERSION = 1
"""The contract's version; see the module docstring for when it changes."""
SCHEMA_ID = f"https://pipectl.dev/schema/report/v{VERSION}.json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"
DOCUMENTS: tuple[type[BaseModel], ...] = (
    found_and_done.DoctorReport, found_and_done.Trace, found_and_done.Probe, found_and_done.Plan,
    found_and_done.RepairOutcome, found_and_done.PlaybookVerdict,
    listings.CheckList, listings.PlaybookList, listings.SandboxStatus, listings.JournalListing,
    listings.IncidentRun, listings.ConfigShow, listings.ContextList, listings.ContextShow,
    found_and_done.Health, listings.WatchStatus,
)
"""Every top-level document, in the order the schema's `anyOf` lists them."""


class _WithoutFieldTitles(GenerateJsonSchema):
    """Pydantic titles every property after its name ("Item Id"): noise that says nothing the key does not.
    Documents and their parts keep their titles (the model names in `$defs`)."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def build() -> dict[str, Any]:
    """The schema as a dict: `$schema`, `$id`, title and description first, then `anyOf` and `$defs`."""
    every_document = Union[DOCUMENTS]  # noqa: UP007  (`A | B` cannot be spread from a tuple)
    generated = TypeAdapter(every_document).json_schema(schema_generator=_WithoutFieldTitles)
    return {
        "$schema": DIALECT,
        "$id": SCHEMA_ID,
        "title": f"pipectl JSON output, version {VERSION}",
        "description": "Any document pipectl prints as JSON (`-o json`, `--format json`, `--output-file` in "
                       "JSON, `serve`'s /healthz). Generated from the models in pipectl.report.documents and "
                       "pipectl.report.listing_documents by `python -m pipectl.report.schema`; do not edit "
                       "by hand.",
        "anyOf": generated["anyOf"],
        "$defs": generated["$defs"],
    }


def render() -> str:
    """The schema as committed in docs/report.schema.json: indented, UTF-8, ending in a newline."""
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main() -> None:
    sys.stdout.buffer.write(render().encode())  # bytes: the same file whatever the locale or platform


if __name__ == "__main__":
    main()
