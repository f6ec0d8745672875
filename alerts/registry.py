"""Reading the enterprise registry (一企一档) from the contract's CSV or JSONL files."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from jsonschema import Draft202012Validator

from streams.validation import is_valid_credit_code

SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "contract" / "enterprise.schema.json"
_SCHEMA = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
_VALIDATOR = Draft202012Validator(_SCHEMA)
_TYPES = {name: prop.get("type") for name, prop in _SCHEMA["properties"].items()}


@dataclass(frozen=True)
class RowRejection:
    line: int
    reason: str


def _from_csv_cell(name: str, cell: str):
    """CSV cells are text: convert to the schema's type; an empty cell is an absent field."""
    kind = _TYPES.get(name)
    if kind == "integer":
        number = float(cell)
        if not number.is_integer():
            raise ValueError(f"{name}: {cell!r} is not a whole number")
        return int(number)
    if kind == "number":
        return float(cell)
    return cell


def _check(row: object) -> str | None:
    errors = sorted(_VALIDATOR.iter_errors(row), key=lambda e: list(e.absolute_path))
    if errors:
        err = errors[0]
        where = ".".join(str(p) for p in err.absolute_path)
        return f"{where}: {err.message}" if where else err.message
    if not is_valid_credit_code(row["enterprise_id"]):  # type: ignore[index]
        return f"enterprise_id: {row['enterprise_id']!r} has a wrong check character (GB 32100-2015)"  # type: ignore[index]
    return None


def _parsed(path: Path, text: str) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, row, None) for each record read, or (line number, None, why not)."""
    if text.lstrip().startswith("{") or path.suffix in (".jsonl", ".json"):
        for line_no, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                yield line_no, json.loads(line), None
            except json.JSONDecodeError as exc:
                yield line_no, None, f"not valid JSON ({exc.msg})"
        return
    reader = csv.DictReader(text.splitlines())
    missing = [f for f in _SCHEMA["required"] if f not in (reader.fieldnames or [])]
    if missing:
        raise ValueError(f"{path}: the CSV header lacks {', '.join(missing)}")
    for record in reader:
        try:
            if None in record:
                raise ValueError("more cells than header columns")
            yield reader.line_num, {k: _from_csv_cell(k, v) for k, v in record.items() if v not in ("", None)}, None
        except ValueError as exc:
            yield reader.line_num, None, str(exc)


def read_enterprises(path: Path) -> tuple[list[dict], list[RowRejection]]:
    """Valid rows and the rejected ones (by line number); CSV or JSONL by content.

    A later row for the same enterprise replaces an earlier one.
    """
    rows: dict[str, dict] = {}
    rejected: list[RowRejection] = []
    for line_no, row, problem in _parsed(path, path.read_text(encoding="utf-8-sig")):
        problem = problem or _check(row)
        if problem:
            rejected.append(RowRejection(line_no, problem))
        else:
            rows[row["enterprise_id"]] = row
    return list(rows.values()), rejected
