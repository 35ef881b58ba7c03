"""Page extraction: what a visitor sees, bounded, and never an exception on untrusted bytes."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from detections.watch.corpus import PortalSpec, portal_page
from sensors.watch.content import MAX_LINES, extract_page

SPEC = PortalSpec(agency="Cổng thông tin điện tử Thành phố Hà Nội", city="Hà Nội", host="portal.hanoi.example",
                  seed=1)


def test_visible_text_title_and_loaded_resources() -> None:
    page = extract_page(b'<html><head><title> Trang  chu </title><script src="https://cdn.example/a.js?v=3">'
                        b'</script><style>p{}</style></head><body><p>Xin <b>ch\xc3\xa0o</b></p><ul><li>1</li></ul>'
                        b'<script>var d = "2026-11-23";</script><iframe src="https://x.example/f?a=1"></iframe>'
                        b'<p><a href="https://other.example/n">n</a></p></body></html>')
    assert page.title == "Trang chu"
    assert page.lines[:2] == ("Xin chào", "1")
    assert "src:cdn.example/a.js" in page.scripts
    assert any(s.startswith("inline:") for s in page.scripts)
    assert page.iframes == ("x.example/f",)
    assert page.link_hosts == ("other.example",)
    assert "ul>li" in page.paths


def test_digits_do_not_change_the_fingerprint() -> None:
    a = extract_page(b"<title>Tin 23/11/2026</title><p>Luot truy cap: 1234</p>")
    b = extract_page(b"<title>Tin 24/11/2026</title><p>Luot truy cap: 1299</p>")
    assert a.fingerprint == b.fingerprint


def test_charset_from_meta_is_honoured() -> None:
    html = "<meta charset=\"windows-1252\"><p>Café Hà</p>".encode("cp1252")
    assert extract_page(html).lines == ("Café Hà",)


def test_a_real_looking_portal_is_bounded_and_has_its_menu() -> None:
    page = extract_page(portal_page(SPEC, 0).encode())
    assert page.title.endswith("Trang chủ")
    assert "Dịch vụ công trực tuyến" in page.lines
    assert len(page.lines) <= MAX_LINES


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=4000))
@example(b"\x00\xff<\x00title>\xfe")
@example(b"<meta charset=bogus-charset><p>x")
@example(b"<a href='http://[::1'>x</a><script src='http://[bad'></script>")
def test_arbitrary_bytes_never_raise(data: bytes) -> None:
    page = extract_page(data, "text/html; charset=utf-8")
    assert page.size == len(data)
    page.to_doc()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(["<div class='a b'>", "</div>", "<p>", "x", "<script>", "</script>", "<iframe src=",
                                 "'//h/'>", "<title>", "<a href='//e.example/'>", "&amp;", "\ud7ff", "<!--", "-->"]),
                max_size=200))
def test_tag_soup_never_raises(parts: list[str]) -> None:
    extract_page("".join(parts).encode("utf-8", "surrogatepass"))
