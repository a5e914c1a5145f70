"""strftime formats (as contracts write them) translated into Spark datetime patterns.

Each directive also yields a regex of the text Polars (chrono) accepts for it, so that the
Spark engine flags the same malformed timestamps as the Polars engine.
"""

from __future__ import annotations

import re

from shipyard.core.errors import ContractError

# strftime directive -> (Spark datetime pattern, regex of the text Polars accepts for it).
# Single-letter Spark fields and an optional fraction read what chrono reads; the regex then
# rejects what chrono rejects (three-digit years, a two-digit %.3f fraction, lowercase literals).
_DIRECTIVES: dict[str, tuple[str, str]] = {
    "%Y": ("yyyy", r"[0-9]{4}"),
    "%m": ("M", r"[0-9]{1,2}"),
    "%d": ("d", r"[0-9]{1,2}"),
    "%H": ("H", r"[0-9]{1,2}"),
    "%M": ("m", r"[0-9]{1,2}"),
    "%S": ("s", r"[0-9]{1,2}"),
    "%.3f": ("[.SSS]", r"(?:\.[0-9]{3})?"),
    "%.6f": ("[.SSSSSS]", r"(?:\.[0-9]{6})?"),
    "%z": ("[xx][xxx]", r"[+-][0-9]{2}:?[0-9]{2}"),
}
_SHORTHANDS = {"%F": "%Y-%m-%d", "%T": "%H:%M:%S"}
_DIRECTIVE = re.compile(r"(%\.[0-9]f|%.?)")


def spark_datetime_pattern(column: str, fmt: str) -> tuple[str, str]:
    """The Spark datetime pattern for strftime ``fmt``, and a regex of the text Polars accepts.

    Example: ``"%Y-%m-%dT%H:%M:%S%.3fZ"`` gives ``"yyyy'-'M'-'d'T'H':'m':'s[.SSS]'Z'"``.
    """
    pattern: list[str] = []
    regex: list[str] = []
    literal = ""
    for token in _tokens(fmt):
        if not token.startswith("%") or token == "%%":
            literal += token[-1] if token == "%%" else token
            continue
        if token not in _DIRECTIVES:
            supported = ", ".join([*_DIRECTIVES, *_SHORTHANDS, "%%"])
            raise ContractError(
                f"column {column!r}: timestamp_format {fmt!r} uses {token!r}, which the Spark "
                f"engine cannot translate; supported: {supported}"
            )
        _append_literal(literal, pattern, regex)
        literal = ""
        spark_part, regex_part = _DIRECTIVES[token]
        pattern.append(spark_part)
        regex.append(regex_part)
    _append_literal(literal, pattern, regex)
    return "".join(pattern), "^" + "".join(regex) + "\\z"


def _tokens(fmt: str) -> list[str]:
    """``fmt`` split into literal text and directives, with %F and %T spelled out."""
    tokens: list[str] = []
    for token in _DIRECTIVE.split(fmt):
        tokens.extend(
            _tokens(_SHORTHANDS[token]) if token in _SHORTHANDS else [token] * bool(token)
        )
    return tokens


def _append_literal(text: str, pattern: list[str], regex: list[str]) -> None:
    # One quoted run per literal: two runs side by side would read as an escaped quote.
    if text:
        pattern.append("'" + text.replace("'", "''") + "'")
        # A backslash before a non-alphanumeric character is always a literal in Java regexes.
        regex.append("".join(c if c.isalnum() else "\\" + c for c in text))
