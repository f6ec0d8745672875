"""Validation of incoming signals against the data contract (stages 1-5 of the rejection order).

Pure Python: no Faust or Kafka import, so the stream worker, ``backtest`` and ``ingest`` tooling
can all share the very same rules.

The contract (``/work/shared/contract/README.md``, section "Rejections") fixes the order in which
reasons apply; the first that applies wins::

    1 invalid_json  2 schema_violation  3 invalid_enterprise_id  4 out_of_range
    5 unknown_enterprise  6 duplicate  7 stale

:func:`validate_signal` applies stages 1-5.  Stages 6 and 7 need per-enterprise state and are
applied by the caller.

Design notes
------------
* Stage 2 validates against a copy of ``signal.schema.json`` with every ``minimum`` removed, so a
  number below a minimum is never reported as ``schema_violation``; stage 4 then validates against
  the full schema and any error left is necessarily a ``minimum`` (-> ``out_of_range``).
* ``date`` / ``date-time`` formats are checked by our own checkers (no optional packages).
* Python's ``re`` ``$`` also matches before a final newline; ECMA-262 (JSON Schema's regex dialect)
  does not.  The derived schemas therefore anchor patterns with ``\\Z``.
* JSON ``1e999`` parses to ``inf``.  ``inf`` is mathematically an integer-valued number, so for the
  ``integer`` type it is accepted at stage 2 and rejected as non-finite at stage 4 (otherwise
  ``"headcount": 1e999`` would be a ``schema_violation`` while ``"consumption": 1e999`` is
  ``out_of_range``).
* A hand-written fast path checks the common, valid case without jsonschema.  It is conservative:
  it only ever answers "certainly valid" or "don't know"; on "don't know" the jsonschema validators
  decide and produce the detail.  Results are therefore identical with or without it.
"""

from __future__ import annotations

import base64
import copy
import json
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable

from jsonschema import Draft202012Validator, FormatChecker, validators
from jsonschema.exceptions import ValidationError

__all__ = [
    "REASONS",
    "Rejection",
    "CREDIT_CODE_ALPHABET",
    "credit_code_check_character",
    "is_valid_credit_code",
    "payload_text",
    "parse_timestamp",
    "validate_signal",
    "SIGNAL_SCHEMA_PATH",
    "SIGNAL_SCHEMA",
]

REASONS: tuple[str, ...] = (
    "invalid_json",
    "schema_violation",
    "invalid_enterprise_id",
    "out_of_range",
    "unknown_enterprise",
    "duplicate",
    "stale",
)

_MAX_DETAIL = 200


@dataclass(frozen=True)
class Rejection:
    """Why an input was rejected.  ``reason`` is one of :data:`REASONS`."""

    reason: str
    detail: str
    signal_id: str | None = None


# --------------------------------------------------------------------------------------------
# Unified social credit code (GB 32100-2015)
# --------------------------------------------------------------------------------------------

CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CC_VALUE = {c: i for i, c in enumerate(CREDIT_CODE_ALPHABET)}
_CC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))  # 1,3,9,27,19,26,16,17,20,29,25,13,8,24,10,30,28
_CC_RE = re.compile(r"[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}")


@lru_cache(maxsize=65536)  # the same few thousand enterprises send every signal
def credit_code_check_character(first17: str) -> str:
    """The 18th (check) character for the first 17 characters of a unified social credit code.

    Raises ``ValueError`` if ``first17`` is not 17 characters of the code alphabet.
    """
    if not isinstance(first17, str) or len(first17) != 17:
        raise ValueError("expected the first 17 characters of a unified social credit code")
    total = 0
    for ch, w in zip(first17, _CC_WEIGHTS):
        v = _CC_VALUE.get(ch)
        if v is None:
            raise ValueError(f"{ch!r} is not a character of the credit code alphabet")
        total += v * w
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def is_valid_credit_code(code: str) -> bool:
    """True when ``code`` matches the contract pattern and its check character is right."""
    if not isinstance(code, str) or _CC_RE.fullmatch(code) is None:
        return False
    return credit_code_check_character(code[:17]) == code[17]


# --------------------------------------------------------------------------------------------
# Payload text and timestamps
# --------------------------------------------------------------------------------------------


def payload_text(raw: bytes | bytearray | memoryview | str) -> str:
    """The dead-letter ``payload``: the input without one trailing ``\\n`` / ``\\r\\n``, as UTF-8
    text, or ``"base64:"`` + standard base64 of the bytes when they are not valid UTF-8."""
    if isinstance(raw, str):
        if raw.endswith("\r\n"):
            return raw[:-2]
        if raw.endswith("\n"):
            return raw[:-1]
        return raw
    data = bytes(raw)
    if data.endswith(b"\r\n"):
        data = data[:-2]
    elif data.endswith(b"\n"):
        data = data[:-1]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


# RFC 3339 section 5.6 "date-time": full-date "T" full-time, with a mandatory offset.  "T" and "Z"
# may be lower case (RFC 3339 5.6 note).  Leap seconds (:60) are not accepted: they cannot be
# represented by datetime and no source of ours produces them.
_DATE_TIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_timestamp(s: str) -> datetime:
    """Parse an RFC 3339 date-time with offset (``Z`` or ``+hh:mm``) into an aware datetime.

    Fractional seconds beyond microseconds are truncated.  Raises ``ValueError`` otherwise.
    """
    if not isinstance(s, str) or _DATE_TIME_RE.fullmatch(s) is None:
        raise ValueError(f"not an RFC 3339 date-time with offset: {s!r}")
    # fromisoformat (3.11) validates the calendar (2025-02-30 fails) and accepts Z and any
    # number of fraction digits; normalise the lower-case forms first.
    return datetime.fromisoformat(s.upper() if ("t" in s or "z" in s) else s)


def _parse_date(s: str) -> date:
    if not isinstance(s, str) or _DATE_RE.fullmatch(s) is None:
        raise ValueError(f"not a YYYY-MM-DD date: {s!r}")
    return date.fromisoformat(s)


def _is_date_time(s: Any) -> bool:
    if not isinstance(s, str):
        return True  # formats only constrain strings
    try:
        parse_timestamp(s)
    except ValueError:
        return False
    return True


def _is_date(s: Any) -> bool:
    if not isinstance(s, str):
        return True
    try:
        _parse_date(s)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Schema and validators (built once at import)
# --------------------------------------------------------------------------------------------

SIGNAL_SCHEMA_PATH = Path(__file__).resolve().parents[1] / "config" / "contract" / "signal.schema.json"
SIGNAL_SCHEMA: dict = json.loads(SIGNAL_SCHEMA_PATH.read_text(encoding="utf-8"))

_SUBSCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SUBSCHEMA_LIST_KEYWORDS = ("oneOf", "anyOf", "allOf", "prefixItems")
_SUBSCHEMA_KEYWORDS = (
    "items", "not", "if", "then", "else", "contains", "additionalProperties",
    "propertyNames", "unevaluatedItems", "unevaluatedProperties",
)


def _derive(schema: Any, *, drop_minimum: bool) -> Any:
    """A copy of ``schema`` with ECMA-style end anchors and, optionally, no ``minimum``."""
    if not isinstance(schema, dict):
        return copy.deepcopy(schema)
    out: dict = {}
    for key, value in schema.items():
        if key == "minimum" and drop_minimum:
            continue
        if key == "pattern" and isinstance(value, str):
            out[key] = value[:-1] + r"\Z" if value.endswith("$") and not value.endswith(r"\$") else value
        elif key in _SUBSCHEMA_MAP_KEYWORDS and isinstance(value, dict):
            out[key] = {k: _derive(v, drop_minimum=drop_minimum) for k, v in value.items()}
        elif key in _SUBSCHEMA_LIST_KEYWORDS and isinstance(value, list):
            out[key] = [_derive(v, drop_minimum=drop_minimum) for v in value]
        elif key in _SUBSCHEMA_KEYWORDS:
            out[key] = _derive(value, drop_minimum=drop_minimum)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _is_integer(checker: Any, instance: Any) -> bool:
    if isinstance(instance, bool):
        return False
    if isinstance(instance, int):
        return True
    # 1e999 parses to inf: an integer-valued number, rejected as non-finite at stage 4.
    return isinstance(instance, float) and (instance.is_integer() or math.isinf(instance))


_Validator = validators.extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine("integer", _is_integer),
)

_FORMAT_CHECKER = FormatChecker(formats=())
_FORMAT_CHECKER.checks("date-time")(_is_date_time)
_FORMAT_CHECKER.checks("date")(_is_date)

Draft202012Validator.check_schema(SIGNAL_SCHEMA)
_SCHEMA_NO_MINIMUM = _derive(SIGNAL_SCHEMA, drop_minimum=True)
_SCHEMA_FULL = _derive(SIGNAL_SCHEMA, drop_minimum=False)
_STAGE2 = _Validator(_SCHEMA_NO_MINIMUM, format_checker=_FORMAT_CHECKER)
_STAGE4 = _Validator(_SCHEMA_FULL, format_checker=_FORMAT_CHECKER)

# Stage 4 dates: which date / date-time fields of each signal type are checked for distance.
_DATE_TIME_FIELDS = ("observed_at",)
_DATE_FIELDS_BY_TYPE = {"wage": ("due_date", "paid_date"), "utility": ("reading_date",), "inspection": ()}
_MAX_DISTANCE = timedelta(days=7305)  # 20 years of 365.25 days
_MAX_DISTANCE_WORDS = "20 years"

# --------------------------------------------------------------------------------------------
# Fast path: a hand-written, conservative check of the whole schema (minimums included)
# --------------------------------------------------------------------------------------------

_PERIOD_RE = re.compile(r"[0-9]{4}-(?:0[1-9]|1[0-2])")
_TYPES = frozenset(("wage", "utility", "inspection"))
_UNIT_OF = {"electricity": "kWh", "water": "m3"}
_KINDS = frozenset(
    ("routine_inspection", "special_inspection", "daily_visit", "complaint", "petition", "hotline", "arbitration")
)
_FINDINGS = frozenset(
    ("wage_arrears", "late_wages", "below_minimum_wage", "social_insurance_arrears", "no_contract",
     "excessive_overtime", "equipment_removal", "owner_absent", "rent_arrears", "other")
)
_str = str
_int = int
_float = float


def _nonneg_number(v: Any) -> bool:
    t = type(v)
    return (t is _float or t is _int) and v >= 0


def _short_string(v: Any, maxlen: int = 64) -> bool:
    return type(v) is _str and 0 < len(v) <= maxlen


def _fast_ok(obj: dict) -> bool:
    """True only if ``obj`` certainly satisfies the full schema; False means "ask jsonschema"."""
    g = obj.get
    typ = g("type")
    if type(typ) is not _str or typ not in _TYPES:
        return False
    eid = g("enterprise_id")
    if not (
        _short_string(g("signal_id"))
        and _short_string(g("source"))
        and type(eid) is _str
        and _CC_RE.fullmatch(eid) is not None
        and _is_ts(g("observed_at"))
    ):
        return False
    if typ == "utility":
        u = g("utility")
        return (
            type(u) is _str
            and u in _UNIT_OF
            and g("unit") == _UNIT_OF[u]
            and type(g("unit")) is _str
            and _short_string(g("meter_id"))
            and _is_day(g("reading_date"))
            and _nonneg_number(g("consumption"))
        )
    if typ == "wage":
        period = g("period")
        headcount = g("headcount")
        paid_date = g("paid_date")
        if not (
            type(period) is _str
            and _PERIOD_RE.fullmatch(period) is not None
            and type(headcount) is _int
            and headcount >= 0
            and _nonneg_number(g("wages_due"))
            and _nonneg_number(g("wages_paid"))
            and _is_day(g("due_date"))
            and (paid_date is None and "paid_date" in obj or _is_day(paid_date))
        ):
            return False
        for key in ("social_insurance_due", "social_insurance_paid"):
            if key in obj and not _nonneg_number(obj[key]):
                return False
        return True
    # inspection
    kind = g("kind")
    workers = g("workers_involved")
    findings = g("findings")
    if not (
        type(kind) is _str
        and kind in _KINDS
        and type(workers) is _int
        and workers >= 0
        and type(findings) is list
    ):
        return False
    for f in findings:
        if type(f) is not _str or f not in _FINDINGS:
            return False
    if len(set(findings)) != len(findings):
        return False
    if "arrears_amount" in obj and not _nonneg_number(obj["arrears_amount"]):
        return False
    if "note" in obj:
        note = obj["note"]
        if type(note) is not _str or len(note) > 2000:
            return False
    return True


def _is_ts(v: Any) -> bool:
    if type(v) is not _str:
        return False
    try:
        parse_timestamp(v)
    except ValueError:
        return False
    return True


def _is_day(v: Any) -> bool:
    if type(v) is not _str:
        return False
    try:
        _parse_date(v)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Turning jsonschema errors into one line of plain words
# --------------------------------------------------------------------------------------------


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


def _path(parts: Iterable[Any]) -> str:
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            out += ("." if out else "") + str(p)
    return out


def _clip(text: str) -> str:
    text = " ".join(text.split())  # one line
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


_JSON_TYPE_NAMES = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null",
                    int: "number", float: "number"}

_PATTERN_WORDS = {
    "enterprise_id": "is not an 18-character unified social credit code",
    "period": "is not a YYYY-MM month",
}


def _discriminator(branches: list) -> str | None:
    """The property whose ``const`` tells the branches of a oneOf apart (e.g. ``type``)."""
    first = branches[0] if branches and isinstance(branches[0], dict) else {}
    for key, sub in (first.get("properties") or {}).items():
        if not (isinstance(sub, dict) and "const" in sub):
            continue
        if all(
            isinstance(b, dict) and isinstance((b.get("properties") or {}).get(key), dict)
            and "const" in b["properties"][key]
            for b in branches
        ):
            return key
    return None


def _rank(err: ValidationError) -> int:
    return {"required": 0, "oneOf": 2, "anyOf": 2}.get(err.validator, 1)


def _describe(err: ValidationError, context: tuple[str, Any] | None = None) -> str:
    """One line naming the field and what is wrong with it."""
    v = err.validator
    where = _path(err.absolute_path)
    prefix = f"{where}: " if where else ""
    inst = err.instance
    if v in ("oneOf", "anyOf"):
        return _describe_one_of(err)
    if v == "required":
        missing = [name for name in err.validator_value if isinstance(inst, dict) and name not in inst]
        name = missing[0] if missing else err.message
        return f"{prefix}missing required field '{name}'"
    if v == "type":
        expected = err.validator_value
        if not where and expected == "object":
            return f"not a JSON object (got {_JSON_TYPE_NAMES.get(type(inst), type(inst).__name__)})"
        if isinstance(expected, list):
            expected_words = " or ".join(f"'{t}'" for t in expected)
        else:
            expected_words = f"'{expected}'"
        return f"{prefix}{_short(inst)} is not of type {expected_words}"
    if v == "enum":
        options = ", ".join(str(o) for o in err.validator_value)
        return f"{prefix}{_short(inst)} is not one of {options}"
    if v == "const":
        if context is not None and context[0] != where:
            return f"{prefix}{_short(inst)} is not valid for {context[1]} (expected {err.validator_value})"
        return f"{prefix}{_short(inst)} is not {err.validator_value!r}"
    if v == "format":
        fmt = err.validator_value
        if fmt == "date-time":
            return f"{prefix}{_short(inst)} is not a valid RFC 3339 date-time"
        if fmt == "date":
            return f"{prefix}{_short(inst)} is not a valid date (YYYY-MM-DD)"
        return f"{prefix}{_short(inst)} is not a valid {fmt}"
    if v == "pattern":
        field = str(err.absolute_path[-1]) if err.absolute_path else ""
        words = _PATTERN_WORDS.get(field, f"does not match the pattern {err.validator_value}")
        return f"{prefix}{_short(inst)} {words}"
    if v == "minLength":
        return f"{prefix}{_short(inst)} is shorter than {err.validator_value} character(s)"
    if v == "maxLength":
        return f"{prefix}{_short(inst)} is longer than {err.validator_value} characters"
    if v == "minimum":
        return f"{prefix}{_short(inst)} is below the minimum {err.validator_value}"
    if v == "uniqueItems":
        return f"{prefix}has duplicate items"
    return f"{prefix}{err.message}"


def _describe_one_of(err: ValidationError) -> str:
    branches = err.validator_value if isinstance(err.validator_value, list) else []
    inst = err.instance
    where = _path(err.absolute_path)
    prefix = f"{where}: " if where else ""
    if not err.context:  # valid under more than one branch
        return f"{prefix}matches more than one allowed variant"
    by_branch: dict[int, list[ValidationError]] = {}
    for sub in err.context:
        by_branch.setdefault(sub.relative_schema_path[0], []).append(sub)
    key = _discriminator(branches)
    chosen: int | None = None
    context = None
    if key is not None and isinstance(inst, dict) and key in inst:
        for i, b in enumerate(branches):
            if b["properties"][key]["const"] == inst[key] and type(b["properties"][key]["const"]) is type(inst[key]):
                chosen = i
                context = (_path(list(err.absolute_path) + [key]), inst[key])
                break
    if chosen is None or chosen not in by_branch:
        if key is not None and isinstance(inst, dict):
            options = ", ".join(str(b["properties"][key]["const"]) for b in branches)
            if key not in inst:
                return f"{prefix}missing required field '{key}'"
            return f"{prefix}{key}: {_short(inst[key])} is not one of {options}"
        chosen = min(by_branch, key=lambda i: len(by_branch[i]))
    errors = sorted(by_branch[chosen], key=_rank)
    return _describe(errors[0], context)


def _first_error(validator: Any, obj: Any) -> ValidationError | None:
    errors = list(validator.iter_errors(obj))
    if not errors:
        return None
    errors.sort(key=_rank)
    return errors[0]


# --------------------------------------------------------------------------------------------
# Stage 1: JSON text
# --------------------------------------------------------------------------------------------


class _NonStandardConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    raise _NonStandardConstant(name)


def _parse_big_int(text: str) -> int | float:
    try:
        return int(text)
    except ValueError:  # more digits than Python converts: beyond any real amount
        return float(text)  # inf, flagged as not finite at stage 4


def _loads(text: str) -> tuple[Any, str | None]:
    try:
        return json.loads(text, parse_constant=_reject_constant), None
    except _NonStandardConstant as exc:
        return None, f"not valid JSON: {exc.args[0]} is not a JSON value"
    except json.JSONDecodeError as exc:
        if not text.strip():
            return None, "empty input"
        return None, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except RecursionError:
        return None, "not valid JSON: nested too deeply to parse"
    except ValueError:
        pass  # an integer literal with too many digits for int(): parse it as a float instead
    try:
        return json.loads(text, parse_constant=_reject_constant, parse_int=_parse_big_int), None
    except _NonStandardConstant as exc:
        return None, f"not valid JSON: {exc.args[0]} is not a JSON value"
    except RecursionError:
        return None, "not valid JSON: nested too deeply to parse"
    except ValueError as exc:
        return None, _clip(f"not valid JSON: {exc}")


_SURROGATE = re.compile("[\ud800-\udfff]")


def _unpaired_surrogate(obj: Any) -> str | None:
    """JSON's ``\\uXXXX`` escapes can spell half of a UTF-16 pair alone, which is no Unicode
    character (RFC 8259 section 8.2: software's behaviour on it is unpredictable): the text
    cannot be stored, sent on or shown as UTF-8, so the input is not JSON text we can accept.
    (Paired escapes decode to one character; only escapes can produce these, since the input
    was decoded as UTF-8 first.)"""
    stack = [obj]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            found = _SURROGATE.search(value)
            if found:
                return f"not valid JSON text: an unpaired surrogate \\u{ord(found.group()):04x} in a string"
        elif isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None


# --------------------------------------------------------------------------------------------
# Stage 4 (beyond minimum): finiteness, ratios, dates
# --------------------------------------------------------------------------------------------


# Integers beyond what a double holds exactly (2^53) are no real count or amount, and downstream
# (the table's and the topics' JSON, orjson) refuses those beyond 64 bits.
_INT_LIMIT = 2**53


def _non_finite(obj: dict) -> str | None:
    """The first number that cannot be true whatever the field: not finite (JSON allows
    ``1e999``), or an integer too large for any count or amount."""
    stack: list[tuple[Any, tuple]] = [(obj, ())]
    while stack:
        node, path = stack.pop()
        items = node.items() if type(node) is dict else enumerate(node)
        for key, value in items:
            t = type(value)
            if t is _float:
                if value - value != 0.0:  # inf or nan
                    return f"{_path(path + (key,))}: {value} is not a finite number"
            elif t is _int:
                if not -_INT_LIMIT <= value <= _INT_LIMIT:
                    return f"{_path(path + (key,))}: {_short(value, 30)} is too large for any count or amount"
            elif t is dict or t is list:
                stack.append((value, path + (key,)))
    return None


def _ratio(obj: dict, paid_key: str, due_key: str) -> str | None:
    if paid_key not in obj or due_key not in obj:
        return None
    paid, due = obj[paid_key], obj[due_key]
    if paid > 2 * due:
        if due == 0:
            return f"{paid_key}: {_short(paid)} paid while {due_key} is 0"
        return f"{paid_key}: {_short(paid)} is more than twice {due_key} {_short(due)}"
    return None


def _dates_far_away(obj: dict, now: datetime) -> str | None:
    for key in _DATE_TIME_FIELDS:
        value = obj[key]
        try:
            far = abs(parse_timestamp(value) - now) > _MAX_DISTANCE
        except OverflowError:
            far = True
        if far:
            return f"{key}: {_short(value)} is more than {_MAX_DISTANCE_WORDS} away from now"
    for key in _DATE_FIELDS_BY_TYPE.get(obj["type"], ()):
        value = obj.get(key)
        if type(value) is not _str:
            continue
        d = _parse_date(value)
        try:
            far = abs(datetime(d.year, d.month, d.day, tzinfo=timezone.utc) - now) > _MAX_DISTANCE
        except OverflowError:
            far = True
        if far:
            return f"{key}: {_short(value)} is more than {_MAX_DISTANCE_WORDS} away from now"
    return None


# --------------------------------------------------------------------------------------------
# The entry point
# --------------------------------------------------------------------------------------------


def validate_signal(
    raw: bytes | str,
    *,
    is_registered: Callable[[str], bool],
    now: datetime | None = None,
) -> tuple[dict | None, Rejection | None]:
    """Apply stages 1-5 of the contract to one input.

    Returns ``(signal, None)`` when it passes, ``(None, Rejection)`` otherwise.  ``now`` (default:
    the current UTC time; a naive value is taken as UTC) is the reference for "a date decades
    away".  Duplicates (6) and staleness (7) are for the caller, which holds the state.
    """
    return _validate(raw, is_registered, now, True)


def _validate(
    raw: Any, is_registered: Callable[[str], bool], now: datetime | None, fast: bool
) -> tuple[dict | None, Rejection | None]:
    # 1. invalid_json
    if isinstance(raw, str):
        text = raw
    else:
        try:
            text = str(raw, "utf-8")
        except UnicodeDecodeError as exc:
            bad = exc.object[exc.start]
            return None, Rejection("invalid_json", f"not valid UTF-8: byte 0x{bad:02x} at position {exc.start}")
    obj, problem = _loads(text)
    if problem is None and "\\u" in text:
        problem = _unpaired_surrogate(obj)
    if problem is not None:
        return None, Rejection("invalid_json", problem)

    # 2. schema_violation
    signal_id = obj.get("signal_id") if type(obj) is dict else None
    if type(signal_id) is not _str:
        signal_id = None
    certainly_valid = fast and type(obj) is dict and _fast_ok(obj)
    if not certainly_valid:
        err = _first_error(_STAGE2, obj)
        if err is not None:
            return None, Rejection("schema_violation", _clip(_describe(err)), signal_id)

    # 3. invalid_enterprise_id (the pattern already holds)
    eid = obj["enterprise_id"]
    expected = credit_code_check_character(eid[:17])
    if expected != eid[17]:
        return None, Rejection(
            "invalid_enterprise_id",
            f"enterprise_id: {eid!r} has check character {eid[17]!r}, expected {expected!r}",
            signal_id,
        )

    # 4. out_of_range
    if not certainly_valid:
        err = _first_error(_STAGE4, obj)
        if err is not None:
            return None, Rejection("out_of_range", _clip(_describe(err)), signal_id)
    problem = _non_finite(obj)
    if problem is None:
        typ = obj["type"]
        if typ == "wage":
            problem = _ratio(obj, "wages_paid", "wages_due") or _ratio(
                obj, "social_insurance_paid", "social_insurance_due"
            )
        if problem is None:
            if now is None:
                now = datetime.now(timezone.utc)
            elif now.tzinfo is None:
                now = now.replace(tzinfo=timezone.utc)
            problem = _dates_far_away(obj, now)
    if problem is not None:
        return None, Rejection("out_of_range", _clip(problem), signal_id)

    # 5. unknown_enterprise
    if not is_registered(eid):
        return None, Rejection("unknown_enterprise", f"enterprise_id: {eid!r} is not in the enterprise registry", signal_id)
    return obj, None
