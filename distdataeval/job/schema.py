"""Profile schema: packaged defaults, validation, key spelling and ``key=value`` overrides.

The packaged ``conf/defaults.yaml`` holds every key with its default and ``conf/schema.yaml``
describes every key (a JSON-schema subset, as ``dask-schema.yaml`` is). A profile holds only the
keys it changes. As in Dask's config, ``a-b`` and ``a_b`` spell the same key; a profile's keys are
rewritten to the spelling of the defaults. Unknown keys are errors naming the nearest valid key.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import re
from importlib import resources
from typing import Any

import yaml

from distdataeval.errors import InvalidParameterError, UnknownParameterError

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
    "array": (list,),
    "object": (dict,),
}


def _conf_text(name: str) -> str:
    return resources.files("distdataeval.job").joinpath("conf", name).read_text(encoding="utf-8")


@functools.lru_cache(maxsize=None)
def _defaults() -> dict:
    return yaml.safe_load(_conf_text("defaults.yaml"))


@functools.lru_cache(maxsize=None)
def _schema() -> dict:
    return yaml.safe_load(_conf_text("schema.yaml"))


def packaged_defaults() -> dict:
    """A copy of the packaged defaults (every key of a profile, with its default value)."""
    return copy.deepcopy(_defaults())


def packaged_schema() -> dict:
    """A copy of the packaged schema (``conf/schema.yaml``)."""
    return copy.deepcopy(_schema())


def canonical(key: str) -> str:
    """Dask's key equivalence: ``a_b`` and ``a-b`` are the same key."""
    return key.replace("_", "-")


def _spelling(key: str, known: dict) -> str | None:
    for name in known:
        if canonical(name) == canonical(key):
            return name
    return None


def _unknown(path: str, key: str, known: dict, source: str) -> UnknownParameterError:
    where = f"{path}.{key}" if path else key
    names = list(known)
    close = difflib.get_close_matches(canonical(key), [canonical(n) for n in names], n=1, cutoff=0.5)
    hint = ""
    if close:
        nearest = next(n for n in names if canonical(n) == close[0])
        hint = f"; did you mean '{path + '.' if path else ''}{nearest}'?"
    else:
        hint = f"; valid keys here: {', '.join(names)}"
    return UnknownParameterError(f"unknown profile key '{where}' in {source}{hint}")


def _parses(parse) -> callable:
    def check(text: str) -> bool:
        try:
            parse(text)
        except (ValueError, TypeError, KeyError):
            return False
        return True

    return check


def _bytes(text: str) -> int:
    from dask.utils import parse_bytes

    value = parse_bytes(text)
    if value <= 0:
        raise ValueError(text)
    return value


def _timedelta(text: str) -> float:
    from dask.utils import parse_timedelta

    return parse_timedelta(text)


# SLURM / PBS wall times: "MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS"
_WALLTIME = re.compile(r"\d+(:\d{1,2}){0,2}|\d+-\d{1,2}(:\d{1,2}){0,2}")

_FORMATS = {
    "bytes": (_parses(_bytes), 'a size such as "4GiB" or "500MB"'),
    "timedelta": (_parses(_timedelta), 'a duration such as "30s" or "5 minutes"'),
    "walltime": (lambda text: _WALLTIME.fullmatch(text) is not None, 'a wall time such as "01:30:00" or "2-00:00:00"'),
    "memory-limit": (lambda text: text == "auto" or _parses(_bytes)(text), '"auto" or a size such as "4GiB"'),
}


def _type_ok(value: Any, types: list[str]) -> bool:
    for name in types:
        if name in ("integer", "number") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES[name]):
            return True
    return False


def _check_value(value: Any, node: dict, where: str, source: str) -> None:
    if "enum" in node:
        if value not in node["enum"]:
            allowed = ", ".join(repr(v) for v in node["enum"])
            raise InvalidParameterError(f"profile key '{where}' in {source} is {value!r}; expected one of {allowed}")
        return
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if types and not _type_ok(value, types):
        hint = ""
        if node.get("format") == "walltime" and isinstance(value, int):
            hint = " (quote wall times: YAML reads an unquoted 1:00:00 as the base-60 number 3600)"
        raise InvalidParameterError(
            f"profile key '{where}' in {source} is {value!r} ({type(value).__name__}); expected {' or '.join(types)}{hint}"
        )
    if "minimum" in node and isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < node["minimum"]:
            raise InvalidParameterError(f"profile key '{where}' in {source} is {value!r}; it must be >= {node['minimum']}")
    fmt = node.get("format")
    if fmt is not None and isinstance(value, str) and not _FORMATS[fmt][0](value):
        raise InvalidParameterError(f"profile key '{where}' in {source} is {value!r}; expected {_FORMATS[fmt][1]}")
    extra = node.get("additionalProperties")
    if extra is not None and isinstance(value, dict):
        for key, item in value.items():
            _check_value(item, extra, f"{where}.{key}", source)


def validate(profile: dict, source: str = "profile", schema: dict | None = None, path: str = "") -> dict:
    """Check ``profile`` against the schema; return it with keys in the spelling of the defaults.

    Parameters
    ----------
    profile : dict
        A (partial) profile: nested mappings of keys to values.
    source : str
        Where the profile came from, named in error messages.

    Returns
    -------
    dict
        The same settings, keys spelled as in the packaged defaults.

    Raises
    ------
    UnknownParameterError
        A key the schema does not describe (the message names the nearest valid key).
    InvalidParameterError
        A value of the wrong type, outside its range or not among its allowed values.
    """
    node = _schema() if schema is None else schema
    if not isinstance(profile, dict):
        raise InvalidParameterError(f"profile section '{path or '<top>'}' in {source} must be a mapping, got {profile!r}")
    known = node.get("properties", {})
    out = {}
    for key, value in profile.items():
        if not isinstance(key, str):
            raise InvalidParameterError(f"profile key {key!r} under '{path or '<top>'}' in {source} is not a string")
        name = _spelling(key, known)
        if name is None:
            raise _unknown(path, key, known, source)
        where = f"{path}.{name}" if path else name
        child = known[name]
        if "properties" in child:
            out[name] = validate(value, source, child, where)
        else:
            _check_value(value, child, where, source)
            out[name] = value
    return out


def merge(base: dict, overrides: dict, schema: dict | None = None) -> dict:
    """``base`` updated by validated ``overrides``: sections of the schema merged key by key,
    every other value (free-form mappings such as ``env`` included) replaced whole."""
    node = _schema() if schema is None else schema
    known = node.get("properties", {})
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        child = known.get(key, {})
        if "properties" in child and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value, child)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> dict:
    """``"cluster.slurm.cores=4"`` → ``{"cluster": {"slurm": {"cores": 4}}}`` (the value YAML-typed).

    Raises
    ------
    InvalidParameterError
        No ``=``, an empty key or a value that is not valid YAML.
    """
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise InvalidParameterError(f"override {text!r} is not of the form key.sub=value (e.g. cluster.slurm.cores=4)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise InvalidParameterError(f"override {text!r}: the value is not valid YAML ({exc.problem})") from None
    out: dict = value
    for part in reversed(key.split(".")):
        out = {part: out}
    return out


def format_override(key: str, value: Any) -> str:
    """The inverse of :func:`parse_override` for one key: ``key=value`` with the value in YAML."""
    if isinstance(value, str) and _yaml_roundtrips(value):
        text = value
    else:
        text = json.dumps(value)  # JSON is YAML: lists, mappings, numbers, quoted strings
    return f"{key}={text}"


def _yaml_roundtrips(text: str) -> bool:
    try:
        return yaml.safe_load(text) == text and "\n" not in text
    except yaml.YAMLError:
        return False


def diff(settings: dict, base: dict, path: str = "", schema: dict | None = None) -> list[tuple[str, Any]]:
    """``(dotted key, value)`` for every setting of ``settings`` that differs from ``base``."""
    node = _schema() if schema is None else schema
    known = node.get("properties", {})
    out = []
    for key, value in settings.items():
        where = f"{path}.{key}" if path else key
        child = known.get(key, {})
        ref = base.get(key) if isinstance(base, dict) else None
        if "properties" in child and isinstance(value, dict) and isinstance(ref, dict):
            out.extend(diff(value, ref, where, child))
        elif value != ref:
            out.append((where, value))
    return out
