"""Page content: untrusted HTML bytes -> a bounded `PageSnapshot` of what a visitor sees.

In: the body of an HTTP response (any bytes, any charset, possibly not HTML at all). Out: the title,
the visible text as lines, the headings, the scripts and iframes the page loads, and its structure
as a set of short tag paths. Never raises on any input (tests/sensors/watch/test_content.py fuzzes
it): bytes that are not UTF-8 or the declared charset are decoded with replacement characters.

Parsing is selectolax (lexbor, an HTML5 parser) rather than hand-written. The snapshot is bounded
(`MAX_*` below) so a huge page cannot blow up an event. Inline scripts are kept as a hash of their
digit-masked text, so a script embedding today's date or a counter does not look new every day.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from selectolax.lexbor import LexborHTMLParser, LexborNode

MAX_BYTES = 2_000_000
MAX_LINES = 400
MAX_LINE_CHARS = 240
MAX_PATHS = 400
MAX_NODES = 50_000
MAX_REFS = 100

BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "br", "caption", "dd", "div", "dl", "dt", "figcaption", "figure",
    "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre",
    "section", "table", "tbody", "td", "th", "thead", "tr", "ul", "title", "option", "button", "label",
})
HIDDEN_TAGS = ("script", "style", "noscript", "template", "svg")
_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")
_CHARSET = re.compile(rb"charset\s*=\s*[\"']?([A-Za-z0-9_.:-]{1,40})", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class PageSnapshot:
    """What a page shows and loads; `fingerprint` ignores digits (dates, counters)."""

    title: str
    headings: tuple[str, ...]
    lines: tuple[str, ...]
    scripts: tuple[str, ...]  # "src:<host><path>" for external, "inline:<hash>" for inline
    iframes: tuple[str, ...]
    paths: tuple[str, ...]  # sorted distinct tag paths, e.g. "div.news>ul>li"
    size: int
    link_hosts: tuple[str, ...] = ()  # hosts of absolute links (spam defacements link out a lot)

    @property
    def fingerprint(self) -> str:
        masked = "\n".join(mask_digits(line) for line in (self.title, *self.lines, *self.scripts, *self.iframes))
        return hashlib.sha256(masked.encode("utf-8", "replace")).hexdigest()[:32]

    def to_doc(self) -> dict[str, Any]:
        return {"title": self.title, "headings": list(self.headings), "lines": list(self.lines),
                "scripts": list(self.scripts), "iframes": list(self.iframes), "paths": list(self.paths),
                "size": self.size, "link_hosts": list(self.link_hosts), "fingerprint": self.fingerprint}


def mask_digits(text: str) -> str:
    return _DIGITS.sub("0", text)


def decode_body(body: bytes, content_type: str = "") -> str:
    """Text of a body: the charset of the header, else of a `<meta>` near the top, else UTF-8."""
    body = body[:MAX_BYTES]
    for source in (content_type.encode("latin-1", "replace"), body[:2048]):
        match = _CHARSET.search(source)
        if match:
            try:
                return body.decode(match.group(1).decode("ascii"), errors="replace")
            except LookupError:
                continue
    return body.decode("utf-8", errors="replace")


def extract_page(body: bytes, content_type: str = "") -> PageSnapshot:
    """The snapshot of one response body; never raises (see the module docstring)."""
    text = decode_body(body, content_type).replace("\x00", "\ufffd")
    tree = LexborHTMLParser(text)
    title_node = tree.css_first("title")
    title = _clean(title_node.text(deep=True)) if title_node is not None else ""
    scripts = _scripts(tree)
    iframes = tuple(sorted({_ref(n.attributes.get("src") or "") for n in tree.css("iframe, frame")}))[:MAX_REFS]
    link_hosts = tuple(sorted({h for h in (_host(n.attributes.get("href") or "") for n in tree.css("a[href]")) if h}))
    headings = tuple(_clean(n.text(deep=True)) for n in tree.css("h1, h2, h3"))[:40]
    for node in tree.css(", ".join(HIDDEN_TAGS)):
        node.decompose()
    body_node = tree.body
    lines, paths = _walk(body_node) if body_node is not None else ((), ())
    return PageSnapshot(title=title[:MAX_LINE_CHARS], headings=tuple(h[:MAX_LINE_CHARS] for h in headings if h),
                        lines=lines, scripts=scripts, iframes=iframes, paths=paths, size=len(body),
                        link_hosts=link_hosts[:MAX_REFS])


def _clean(text: str | None) -> str:
    return _SPACE.sub(" ", text or "").strip()


def _host(href: str) -> str:
    try:
        return (urlsplit(href.strip()).hostname or "")[:MAX_LINE_CHARS]
    except ValueError:
        return ""


def _ref(src: str) -> str:
    """A loaded resource as host + path, without the query (cache-busting versions change daily)."""
    try:
        parts = urlsplit(src.strip())
    except ValueError:
        return src.strip()[:MAX_LINE_CHARS]
    return f"{(parts.hostname or '').lower()}{parts.path}"[:MAX_LINE_CHARS]


def _scripts(tree: LexborHTMLParser) -> tuple[str, ...]:
    found: set[str] = set()
    for node in tree.css("script"):
        src = node.attributes.get("src")
        if src:
            found.add("src:" + _ref(src))
        else:
            body = mask_digits(_clean(node.text(deep=True)))
            if body:
                found.add("inline:" + hashlib.sha256(body.encode("utf-8", "replace")).hexdigest()[:16])
    return tuple(sorted(found))[:MAX_REFS]


def _walk(body: LexborNode) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Visible lines (a block element starts a new line) and the distinct tag paths, bounded."""
    lines: list[str] = []
    current: list[str] = []
    paths: set[str] = set()
    for count, node in enumerate(body.traverse(include_text=True)):
        if count >= MAX_NODES or len(lines) >= MAX_LINES:
            break
        tag = node.tag or ""
        if tag == "-text":
            current.append(node.text_content or "")
        elif not tag.startswith("-"):
            if tag in BLOCK_TAGS:
                _flush(current, lines)
            if len(paths) < MAX_PATHS:
                paths.add(_path(node))
    _flush(current, lines)
    return tuple(lines[:MAX_LINES]), tuple(sorted(paths))


def _flush(current: list[str], lines: list[str]) -> None:
    line = _clean("".join(current))
    current.clear()
    if line:
        lines.append(line[:MAX_LINE_CHARS])


def _label(node: LexborNode) -> str:
    classes = (node.attributes.get("class") or "").split()
    return f"{node.tag}.{classes[0]}" if classes else str(node.tag)


def _path(node: LexborNode, depth: int = 3) -> str:
    parts = [_label(node)]
    parent = node.parent
    while parent is not None and len(parts) < depth and parent.tag not in (None, "body", "html", "-document"):
        parts.append(_label(parent))
        parent = parent.parent
    return ">".join(reversed(parts))
