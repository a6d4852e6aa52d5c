"""``KEY=VALUE`` options of the benchmark scripts (``--bridge-set``, ``--lightsb-set``) as a dict."""

from __future__ import annotations

import json


def parse_overrides(items: list[str], keys, flag: str, error) -> dict:
    """``items`` as ``{KEY: value}``: the value read as JSON, else kept as a bare string (e.g.
    ``drift_form=endpoint``); ``error(msg)`` (the parser's) on an item without ``=`` or a key not in
    ``keys``.

    Example:
        >>> parse_overrides(["a=1", "b=x", "c=[1, 2]"], {"a", "b", "c"}, "--set", print)
        {'a': 1, 'b': 'x', 'c': [1, 2]}
    """
    out = {}
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or key not in keys:
            error(f"{flag}: expected KEY=VALUE, KEY one of {', '.join(sorted(keys))}; got {item!r}")
        try:
            out[key] = json.loads(val)
        except json.JSONDecodeError:
            out[key] = val
    return out
