"""The console's languages: gettext catalogues, the visitor's language, dates in the user's zone.

In: `locales/<lang>/LC_MESSAGES/messages.po` (English msgids, Vietnamese the default language).
Out: a `Translations` per language, compiled in memory at start-up (no `.mo` files are kept in
the repository), and `Formatter`s that write times and durations for one user.

- `LANGUAGES` is the closed set the console speaks; anything else falls back to `DEFAULT_LANGUAGE`.
- Before sign-in the language follows `Accept-Language` (highest q first, then header order);
  after sign-in it is the user's stored language (`Principal.language`).
- Times are stored in UTC and shown in the user's time zone (Asia/Ho_Chi_Minh unless the user has
  another); an unknown zone name falls back to the default rather than failing a page.
- Dates follow GLOSSARY-vi.md: `dd/mm/yyyy HH:MM`, 24-hour, in both languages.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel.dates import format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DATE_PATTERN = "%d/%m/%Y %H:%M"


def load_translations(locales_dir: Path = LOCALES_DIR) -> dict[str, Translations]:
    """Each language's catalogue, read from its `.po` and compiled to `.mo` bytes in memory."""
    found: dict[str, Translations] = {}
    for language in LANGUAGES:
        path = locales_dir / language / "LC_MESSAGES" / "messages.po"
        with path.open("rb") as po:
            catalog = read_po(po, locale=language)
        buffer = io.BytesIO()
        write_mo(buffer, catalog, use_fuzzy=False)
        buffer.seek(0)
        found[language] = Translations(buffer)
    return found


def supported(language: str | None) -> str:
    """`language` if the console speaks it (a region such as `en-GB` counts as `en`), else the default."""
    if language:
        base = language.strip().lower().replace("_", "-").split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def from_accept_language(header: str | None) -> str:
    """The best language the console speaks from an `Accept-Language` header; Vietnamese if none fits."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate((header or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    for _, _, tag in sorted(ranked):
        base = tag.strip().lower().split("-")[0]
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or DEFAULT_TIMEZONE)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)


@dataclass(frozen=True, slots=True)
class Formatter:
    """How one user reads times: their language and their zone."""

    language: str = DEFAULT_LANGUAGE
    timezone: str = DEFAULT_TIMEZONE

    def when(self, value: datetime | None) -> str:
        """`dd/mm/yyyy HH:MM` in the user's zone; an empty string for no time."""
        if value is None:
            return ""
        return value.astimezone(zone(self.timezone)).strftime(DATE_PATTERN)

    def iso_local(self, value: datetime | None) -> str:
        """The value for an `<input type="datetime-local">` in the user's zone."""
        if value is None:
            return ""
        return value.astimezone(zone(self.timezone)).strftime("%Y-%m-%dT%H:%M")

    def parse_local(self, text: str) -> datetime | None:
        """A `datetime-local` input read in the user's zone; None when empty or malformed."""
        try:
            naive = datetime.fromisoformat(text.strip()) if text.strip() else None
        except ValueError:
            return None
        if naive is None:
            return None
        return naive.replace(tzinfo=zone(self.timezone)) if naive.tzinfo is None else naive

    def duration(self, value: timedelta) -> str:
        """A rounded, localised length of time ("3 giờ", "2 days"), always positive."""
        return format_timedelta(abs(value), threshold=1.5, locale=self.language)
