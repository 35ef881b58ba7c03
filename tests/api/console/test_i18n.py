"""The catalogues are complete, the language is chosen as documented, times show in the user's zone."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from jinja2.ext import babel_extract

from api.console import labels
from api.console.i18n import LOCALES_DIR, Formatter, from_accept_language, load_translations, supported
from api.console.render import TEMPLATES_DIR

PLACEHOLDER = re.compile(r"%\(\w+\)s")


def _template_msgids() -> set[str]:
    found: set[str] = set()
    for path in sorted(Path(TEMPLATES_DIR).glob("*.html")):
        with path.open("rb") as f:
            for _, _, message, _ in babel_extract(f, ("_", "gettext"), [], {"extensions": "jinja2.ext.i18n"}):
                text = message if isinstance(message, str) else (message[0] if message else None)
                if isinstance(text, str):
                    found.add(text)
    return found


def _catalogue(language: str) -> dict[str, str]:
    with (LOCALES_DIR / language / "LC_MESSAGES" / "messages.po").open("rb") as f:
        return {str(m.id): str(m.string) for m in read_po(f) if m.id}


@pytest.mark.parametrize("language", ["vi", "en"])
def test_every_label_is_translated_with_its_placeholders(language: str) -> None:
    catalogue = _catalogue(language)
    wanted = _template_msgids() | labels.all_msgids()
    assert wanted, "no messages found in the templates"
    missing = sorted(m for m in wanted if not catalogue.get(m))
    assert missing == []
    for msgid, text in catalogue.items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), msgid


def test_vietnamese_uses_the_glossary_terms() -> None:
    vi = _catalogue("vi")
    assert vi["Sign in"] == "Đăng nhập" and vi["Sign out"] == "Đăng xuất"
    assert vi["Incident"] == "Sự cố" and vi["Alert"] == "Cảnh báo" and vi["Comments"] == "Ghi chú"
    assert vi["false positive"] == "cảnh báo sai" and vi["in progress"] == "đang xử lý"
    assert vi["critical"] == "nghiêm trọng" and vi["Approve"] == "Phê duyệt" and vi["Reject"] == "Từ chối"
    assert vi["Audit trail"] == "Nhật ký kiểm toán" and vi["Dashboard"] == "Bảng điều khiển"


def test_catalogues_compile_in_memory_and_no_mo_file_is_kept() -> None:
    translations = load_translations()
    assert translations["vi"].gettext("Password") == "Mật khẩu"
    assert translations["en"].gettext("Password") == "Password"
    assert list(LOCALES_DIR.rglob("*.mo")) == []


@pytest.mark.parametrize(("header", "language"), [
    (None, "vi"), ("", "vi"), ("en", "en"), ("en-US,en;q=0.9", "en"), ("fr-FR,fr;q=0.9,en;q=0.8", "en"),
    ("vi-VN,vi;q=0.9,en;q=0.8", "vi"), ("en;q=0.5,vi;q=0.9", "vi"), ("de", "vi"), ("en;q=0", "vi"),
    ("en;q=abc", "vi"),
])
def test_accept_language_picks_the_best_language_spoken(header: str | None, language: str) -> None:
    assert from_accept_language(header) == language


def test_unsupported_languages_fall_back_to_vietnamese() -> None:
    assert supported("en_GB") == "en" and supported("ja") == "vi" and supported(None) == "vi"


def test_times_show_in_the_users_zone() -> None:
    noon_utc = datetime(2026, 11, 23, 5, 30, tzinfo=UTC)
    assert Formatter("vi").when(noon_utc) == "23/11/2026 12:30"
    assert Formatter("en", "Europe/Paris").when(noon_utc) == "23/11/2026 06:30"
    assert Formatter("vi", "Not/AZone").when(noon_utc) == "23/11/2026 12:30"
    assert Formatter("vi").parse_local("2026-11-23T12:30") == noon_utc
    assert Formatter("vi").parse_local("nonsense") is None and Formatter().when(None) == ""
    assert Formatter("vi").duration(timedelta(hours=-3)) == "3 giờ"
    assert Formatter("en").duration(timedelta(days=2)) == "2 days"
