"""Every JSON document a test makes pipectl print is checked against docs/report.schema.json.

`run_cli` hands each command's arguments and stdout to `check_json_output`: when the arguments ask for JSON
and what came out parses as JSON, every document in it must validate (a repair prints one plan per step,
one after another), and so must the JSON files it wrote (`--output-file`). Otherwise the test fails,
naming the command and what the schema rejects. So an output cannot drift from the published schema
unnoticed: a key added, renamed or retyped fails the test that printed it until the models say so too
(`pipectl.report.documents`, `pipectl.report.listing_documents`).
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, ValidationError

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "docs" / "report.schema.json"
REGENERATE = "python -m pipectl.report.schema > docs/report.schema.json"
_FORMAT_OPTIONS = ("-o", "--output", "-f", "--format")
_FORMAT = re.compile(r"[a-z][a-z0-9_-]*$")
"""How a renderer's name looks: `--output-file junit=PATH` names one; a file called `a.b=c` does not."""
_SHOWN_ERRORS = 5


@functools.cache
def validator() -> Draft202012Validator:
    """The committed schema, read and checked once per process; formats (date, date-time) are asserted."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def requested_format(args: Sequence[str]) -> str | None:
    """The value of the last format option (`-o json`, `--format=json`, `-ojson`), or None without one."""
    chosen = None
    for index, arg in enumerate(args):
        if arg in _FORMAT_OPTIONS:
            chosen = args[index + 1] if index + 1 < len(args) else None
        elif arg.startswith(("--output=", "--format=")):
            chosen = arg.split("=", 1)[1]
        elif arg[:2] in ("-o", "-f") and len(arg) > 2:
            chosen = arg[2:]
    return chosen


def output_files(args: Sequence[str]) -> list[str]:
    """The values of every `--output-file` option: `PATH` or, on doctor, `FORMAT=PATH`."""
    values = [args[i + 1] for i, arg in enumerate(args[:-1]) if arg == "--output-file"]
    return values + [arg.split("=", 1)[1] for arg in args if arg.startswith("--output-file=")]


def json_outputs(args: Sequence[str], stdout: str) -> dict[str, str]:
    """Where `pipectl ARGS` wrote JSON, by name: stdout and a plain `--output-file PATH` when the format asked
    for is json, and every `--output-file json=PATH` whatever it is. A file in another named format
    (`sarif=PATH` is JSON too, but not pipectl's) is not one of them."""
    asked = requested_format(args) == "json"
    outputs = {"stdout": stdout} if asked else {}
    for spec in output_files(args):
        name, named, path = spec.partition("=")
        if named and name == "json":
            target = path
        elif asked and not (named and _FORMAT.match(name)):  # a plain PATH, in the format asked for
            target = spec
        else:
            continue
        if Path(target).is_file():
            outputs[target] = Path(target).read_text(encoding="utf-8")
    return outputs


def json_documents(text: str) -> list[Any] | None:
    """The JSON documents `text` holds one after another, or None when it is not (only) JSON."""
    decoder, documents, index = json.JSONDecoder(), [], 0
    while True:
        while index < len(text) and text[index].isspace():
            index += 1
        if index == len(text):
            return documents or None
        try:
            document, index = decoder.raw_decode(text, index)
        except ValueError:
            return None
        documents.append(document)


def violations(document: Any) -> list[str]:
    """What the schema rejects in `document`, one line each ([] when it is valid).

    The top level is `anyOf` over the documents, whose own error says only "not valid under any of the given
    schemas"; the lines come from the document it resembles most instead."""
    errors = list(validator().iter_errors(document))
    if not errors:
        return []
    top = next((e for e in errors if e.validator == "anyOf" and not e.path), None)
    if top is None:
        return [_line(e) for e in errors[:_SHOWN_ERRORS]]
    name, closest = _closest(document, top.context)
    return [f"(closest document: {name})"] + [_line(e) for e in _innermost(closest)[:_SHOWN_ERRORS]]


def check_json_output(args: Sequence[str], stdout: str) -> None:
    """Fail the running test when a JSON output of `pipectl ARGS` does not validate against the schema."""
    for where, text in json_outputs(args, stdout).items():
        documents = json_documents(text) or []
        for number, document in enumerate(documents, 1):
            problems = violations(document)
            if problems:
                command = shlex.join(["pipectl", *args])
                pytest.fail(f"`{command}` wrote JSON to {where} that docs/{SCHEMA_PATH.name} rejects "
                            f"(document {number} of {len(documents)}):\n  " + "\n  ".join(problems)
                            + "\nIf the output is right, describe it in the models (pipectl/report/"
                              f"documents.py, listing_documents.py) and run `{REGENERATE}`.", pytrace=False)


def _closest(document: Any, errors: list[ValidationError]) -> tuple[str, list[ValidationError]]:
    """The alternative of the top-level anyOf that `document` came nearest to, and its errors.

    A document naming its `schema` is compared with the one that pins that value; otherwise with the one
    sharing the most keys with it, then the one with the fewest errors; an object is never compared with a
    list."""
    alternatives = validator().schema["anyOf"]
    by_alternative: dict[int, list[ValidationError]] = {}
    for error in errors:
        by_alternative.setdefault(error.relative_schema_path[0], []).append(error)
    keys = set(document) if isinstance(document, dict) else set()
    tag = document.get("schema") if isinstance(document, dict) else None

    def distance(index: int) -> tuple:
        properties = _definition(alternatives[index]).get("properties", {})
        pinned = properties.get("schema", {}).get("const")
        return (0 if not tag or pinned == tag else 1 if pinned else 2,  # its tag, then another version of one
                any(e.validator == "type" and not e.path for e in by_alternative[index]),
                -len(keys & set(properties)), len(by_alternative[index]), index)

    chosen = min(by_alternative, key=distance)
    return alternatives[chosen]["$ref"].rsplit("/", 1)[-1], by_alternative[chosen]


def _innermost(errors: list[ValidationError]) -> list[ValidationError]:
    """The errors, each nested `anyOf` (a value that may also be null) replaced by the errors of the branch
    the value came nearest to: "expires: 'next week' is not a 'date'" rather than "not valid under any"."""
    found: list[ValidationError] = []
    for error in errors:
        branches: dict[int, list[ValidationError]] = {}
        for inner in error.context if error.validator == "anyOf" else ():
            branches.setdefault(inner.relative_schema_path[0], []).append(inner)
        near = [b for b in branches.values() if not any(e.validator == "type" and not e.path for e in b)]
        found += _innermost(min(near, key=len)) if near else [error]
    return found


def _definition(alternative: dict[str, Any]) -> dict[str, Any]:
    return validator().schema["$defs"][alternative["$ref"].rsplit("/", 1)[-1]]


def _line(error: ValidationError) -> str:
    return f"at {error.json_path}: {error.message}"
