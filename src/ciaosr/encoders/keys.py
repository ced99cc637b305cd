"""Renaming official state-dict keys to ours, by ordered regular-expression rules."""

from __future__ import annotations

import re


def rename_keys(sd: dict, rules: list[tuple[str, str]], drop: tuple[str, ...] = ()) -> dict:
    """``sd`` without the keys starting with ``drop``, each remaining key rewritten by
    every ``(pattern, replacement)`` rule in turn."""
    out = {}
    for key, value in sd.items():
        if key.startswith(drop):
            continue
        for pattern, repl in rules:
            key = re.sub(pattern, repl, key)
        out[key] = value
    return out
