"""RE2 searches for the hot loop: one pattern, or many literals at once, over a text.

Stage: a tool of compile (values.py) and the prefilter. In: RE2 patterns or literals, compiled
once at load. Out: `Searcher` (does a text contain a match?) and `LiteralSet` (which of many
literals does a text contain?).

Why not `re2.compile(...).search`: google-re2's Python wrapper converts character offsets to byte
offsets and builds match objects on every call (~3.6 us a call on a 150-character command line);
calling the compiled RE2 object with the text's UTF-8 bytes and no offsets costs ~0.9 us (the
Set: 1.8 -> 0.7 us). The wrapper's private `_regexp` / `_set` objects are used for that; if a
future google-re2 drops them, the public (slower) calls are used instead, with the same results.

Invariants:
- Linear time in the text, whatever the pattern: RE2 only, never `re`.
- Never raises on text: lone surrogates (which UTF-8 cannot hold) are encoded with
  `surrogatepass`; RE2 then sees invalid UTF-8, which it matches byte-wise, never fails on.
- Compiling raises `re2.error` (a pattern RE2 refuses, or a set over its memory budget).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import re2

SET_MAX_MEM = 64 << 20  # RE2's budget for one literal set (~1,400 literals need far less)

TextTest = Callable[[str], bool]


def _options(max_mem: int | None = None) -> Any:
    options = re2.Options()
    options.log_errors = False  # RE2 would print to stderr; callers report the error themselves
    if max_mem is not None:
        options.max_mem = max_mem
    return options


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogatepass")


def compile_pattern(pattern: str, max_mem: int | None = None) -> Any:
    """A compiled RE2 pattern (google-re2's object); raises `re2.error` when RE2 refuses it."""
    return re2.compile(pattern, _options(max_mem))


def searcher(pattern: str, max_mem: int | None = None) -> TextTest:
    """Whether a text contains a match of `pattern` (unanchored search)."""
    compiled = compile_pattern(pattern, max_mem)
    raw = getattr(compiled, "_regexp", None)
    anchor = getattr(getattr(getattr(re2, "_re2", None), "RE2", None), "Anchor", None)
    if raw is None or anchor is None or not hasattr(raw, "Match"):
        return lambda text: compiled.search(text) is not None
    unanchored = anchor.UNANCHORED
    null_span = (-1, -1)
    match: Callable[[Any, bytes, int, int], list[tuple[int, int]]] = raw.Match

    def search(text: str) -> bool:
        data = _utf8(text)
        return match(unanchored, data, 0, len(data))[0] != null_span

    return search


def literals_searcher(literals: Sequence[str]) -> TextTest:
    """Whether a text contains any of `literals` (each matched as written, case as written)."""
    return searcher("|".join(re2.escape(literal) for literal in literals), SET_MAX_MEM)


LiteralMatcher = Callable[[str], Iterable[int]]  # text -> indices of the literals it contains


def literal_set(literals: Sequence[str]) -> LiteralMatcher:
    """All `literals` a text contains, in one linear pass (an RE2 set of escaped literals, the job
    Aho-Corasick does). Indices in any order. Raises `re2.error` over the memory budget."""
    matcher = re2.Set.SearchSet(_options(SET_MAX_MEM))
    for literal in literals:
        matcher.Add(re2.escape(literal))
    matcher.Compile()
    raw = getattr(matcher, "_set", None)
    if raw is None or not hasattr(raw, "Match"):
        return lambda text: matcher.Match(text) or ()
    match = raw.Match
    return lambda text: match(_utf8(text))
