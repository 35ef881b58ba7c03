"""A labelled set of government-style portal pages: daily changes versus defacements.

In: a seed. Out: HTML pages as a provincial or ministry portal serves them (Vietnamese menus,
news lists with dates, a visitor counter, scripts with cache-busting versions), the benign change
of each day (new news list, counter, date, announcement, versions, now and then a menu item) and
defacements of the kinds reported on government sites: a full replacement page, a message in the
news area with a new title, gambling spam, a script injected from a foreign host, a hidden
iframe, and an inserted message with no known phrase (which the detector is expected to miss
more often; it is in the set to keep the measurement honest).

Deterministic: the same seed gives the same pages byte for byte. Names and hosts are under
`.example` and addresses from the documentation ranges (DEMO.md). The tests, the demo and
docs/detection-quality.md all use these generators, so they never drift apart.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from html import escape

MENU = ("Trang chủ", "Giới thiệu", "Tin tức - Sự kiện", "Thủ tục hành chính", "Dịch vụ công trực tuyến",
        "Văn bản pháp luật", "Hỏi đáp", "Liên hệ")
EXTRA_MENU = ("Chuyển đổi số", "Thông tin quy hoạch", "Lấy ý kiến dự thảo", "Công khai ngân sách")
SUBJECTS = ("UBND {city}", "Sở Thông tin và Truyền thông", "Sở Y tế", "Sở Giáo dục và Đào tạo", "Công an {city}",
            "Sở Tài chính", "Sở Kế hoạch và Đầu tư", "HĐND {city}", "Sở Xây dựng", "Sở Nông nghiệp và Môi trường",
            "Ban Quản lý các khu công nghiệp", "Văn phòng UBND {city}")
ACTIONS = ("triển khai", "tổ chức hội nghị về", "ban hành kế hoạch", "kiểm tra công tác", "tổng kết",
           "hướng dẫn thực hiện", "đẩy mạnh", "phát động phong trào", "lấy ý kiến về", "sơ kết")
OBJECTS = ("chuyển đổi số", "cải cách hành chính", "phòng chống dịch bệnh", "dịch vụ công trực tuyến toàn trình",
           "an toàn thông tin mạng", "xây dựng nông thôn mới", "thu ngân sách năm {year}",
           "phòng cháy chữa cháy mùa khô", "Đề án 06", "hỗ trợ doanh nghiệp nhỏ và vừa", "bảo vệ môi trường",
           "tuyển sinh lớp 10 năm học {year}", "cảnh báo lừa đảo qua mạng", "phòng chống hacker tấn công",
           "quy hoạch sử dụng đất", "bảo hiểm y tế học sinh")
ANNOUNCEMENTS = ("Thông báo lịch tiếp công dân tháng {month}", "Thông báo nghỉ lễ", "Lịch công tác tuần {week}",
                 "Thông báo tuyển dụng viên chức năm {year}", "Thông báo bảo trì hệ thống dịch vụ công")
DEFACEMENT_KINDS = ("replaced", "message_title", "gambling_spam", "script_injection", "hidden_iframe",
                    "quiet_message")


@dataclass(frozen=True, slots=True)
class PortalSpec:
    """One agency's portal: its name (Vietnamese), host name and a seed for its content."""

    agency: str
    city: str
    host: str
    seed: int
    start: date = date(2026, 11, 1)


def portal_specs(count: int, seed: int = 13) -> list[PortalSpec]:
    rng = random.Random(seed)
    cities = ("Hà Nội", "Đà Nẵng", "Huế", "Cần Thơ", "Hải Phòng", "Khánh Hòa", "Lâm Đồng", "Nghệ An")
    kinds = ("Cổng thông tin điện tử", "Cổng dịch vụ công", "Trang thông tin điện tử Sở Y tế",
             "Cổng thông tin Sở Tài chính")
    specs = []
    for n in range(count):
        city = cities[n % len(cities)]
        specs.append(PortalSpec(agency=f"{kinds[rng.randrange(len(kinds))]} {city}", city=city,
                                host=f"portal{n}.{['hanoi', 'danang', 'hue', 'cantho'][n % 4]}.example",
                                seed=rng.randrange(1 << 30)))
    return specs


def _headline(rng: random.Random, spec: PortalSpec, day: date) -> str:
    subject = rng.choice(SUBJECTS).format(city=spec.city)
    obj = rng.choice(OBJECTS).format(year=day.year)
    return f"{subject} {rng.choice(ACTIONS)} {obj}"


def portal_page(spec: PortalSpec, day_no: int) -> str:
    """The portal as served on day `day_no` (0 = `spec.start`)."""
    day = spec.start + timedelta(days=day_no)
    rng = random.Random(spec.seed * 1000 + day_no)
    template = random.Random(spec.seed)  # what does not change from day to day
    menu = list(MENU) + ([EXTRA_MENU[template.randrange(len(EXTRA_MENU))]] if template.random() < 0.5 else [])
    if rng.random() < 0.1:
        menu.append(EXTRA_MENU[rng.randrange(len(EXTRA_MENU))])
    news = []
    for n in range(rng.randint(8, 12)):
        when = day - timedelta(days=n // 3)
        news.append(f'<li class="news-item"><a href="/tin-tuc/{rng.randrange(10**6)}.html">'
                    f"{escape(_headline(rng, spec, day))}</a> <span class=\"date\">{when:%d/%m/%Y}</span></li>")
    notice = rng.choice(ANNOUNCEMENTS).format(month=day.month, week=day.isocalendar()[1], year=day.year)
    version = f"{day:%Y%m%d}"
    return _page(spec, title=f"{spec.agency} - Trang chủ", menu=menu, notice=notice, news="\n".join(news),
                 counter=123_456 + day_no * 1_873 + rng.randrange(500), day=day, version=version)


def _page(spec: PortalSpec, *, title: str, menu: list[str], notice: str, news: str, counter: int, day: date,
          version: str, head_extra: str = "", body_extra: str = "") -> str:
    nav = "".join(f'<li class="menu-item"><a href="/{n}">{escape(m)}</a></li>' for n, m in enumerate(menu))
    return f"""<!DOCTYPE html>
<html lang="vi"><head><meta charset="utf-8"><title>{escape(title)}</title>
<link rel="stylesheet" href="/static/css/portal.css?v={version}">
<script src="/static/js/jquery.min.js?v={version}"></script>
<script src="https://{spec.host}/static/js/portal.js?v={version}"></script>
<script>var portalToday = "{day:%Y-%m-%d}"; var visits = {counter};</script>{head_extra}
</head><body>
<header class="banner"><div class="logo"><img src="/static/img/quoc-huy.png" alt="Quốc huy"></div>
<h1 class="site-name">{escape(spec.agency)}</h1><p class="slogan">Chính quyền điện tử - phục vụ người dân</p></header>
<nav class="main-menu"><ul>{nav}</ul></nav>
<main class="content">
<section class="notice"><h2>Thông báo</h2><p>{escape(notice)}</p></section>
<section class="news"><h2>Tin tức - Sự kiện</h2><ul class="news-list">
{news}
</ul></section>{body_extra}
<aside class="sidebar"><h3>Dịch vụ công trực tuyến</h3><ul><li>Nộp hồ sơ trực tuyến</li><li>Tra cứu hồ sơ</li>
<li>Thanh toán trực tuyến</li></ul><p class="counter">Lượt truy cập: {counter:,}</p>
<p class="hotline">Đường dây nóng: 1900 0000</p></aside>
</main>
<footer><p>Cơ quan chủ quản: {escape(spec.agency)}. Ngày cập nhật: {day:%d/%m/%Y}.</p>
<p>Máy chủ dự phòng 198.51.100.20 - Ghi rõ nguồn khi phát hành lại thông tin từ trang này.</p></footer>
</body></html>
"""


def defaced_page(spec: PortalSpec, day_no: int, kind: str) -> str:
    """The portal of day `day_no` after a defacement of `kind` (one of `DEFACEMENT_KINDS`)."""
    rng = random.Random(spec.seed * 7919 + day_no * 31 + DEFACEMENT_KINDS.index(kind))
    crew = rng.choice(("Sh4d0w Cyber Team", "Anon Ghost Squad", "1337 Cyber Army", "Team Xploit"))
    if kind == "replaced":
        return (f"<html><head><title>Hacked by {crew}</title></head><body style=\"background:#000;color:#0f0\">"
                f"<center><h1>Hacked by {crew}</h1><p>Your security is low. We are everywhere.</p>"
                f"<marquee>Greetz to all members</marquee><audio src=\"https://cdn.sound.example/x.mp3\" autoplay>"
                f"</audio></center></body></html>")
    page = portal_page(spec, day_no)
    if kind == "message_title":
        title = f"{spec.agency} - Trang chủ"
        page = page.replace(f"<title>{escape(title)}</title>", f"<title>Owned - {crew}</title>")
        return page.replace('<ul class="news-list">',
                            f'<ul class="news-list"><li><b>Website đã bị hack bởi {escape(crew)}</b></li>', 1)
    if kind == "gambling_spam":
        spam = "".join(f'<li class="news-item"><a href="https://bet{n}.spam.example/">Nhà cái uy tín - link vào '
                       f"casino online số {n}</a></li>" for n in range(rng.randint(8, 15)))
        start, end = page.index('<ul class="news-list">'), page.index("</ul></section>")
        return page[:start] + f'<ul class="news-list">{spam}' + page[end:]
    if kind == "script_injection":
        host = rng.choice(("cdn-stats.evil.example", "js.miner.example", "static.seo-links.example"))
        return page.replace("</head>", f'<script src="https://{host}/loader.js"></script>\n</head>', 1)
    if kind == "hidden_iframe":
        frame = '<iframe src="https://ads.spam.example/p.html" width="1" height="1" style="display:none"></iframe>'
        return page.replace("</footer>", f"{frame}</footer>", 1)
    if kind == "quiet_message":
        message = rng.choice(("Trang web này đã bị chiếm quyền kiểm soát.", "Chúng tôi đã ở đây. Hẹn gặp lại!"))
        return page.replace('<section class="notice">', f'<section class="notice"><p class="alert">{message}</p>', 1)
    raise ValueError(f"defacement kind {kind!r} is not one of {', '.join(DEFACEMENT_KINDS)}")


@dataclass(frozen=True, slots=True)
class LabelledPair:
    """A baseline page and a later page, labelled defaced (True) or a benign daily change."""

    spec: PortalSpec
    before: str
    after: str
    defaced: bool
    kind: str  # "daily" or a defacement kind


def labelled_set(portals: int = 40, days: int = 7, seed: int = 13) -> Iterator[LabelledPair]:
    """For each portal and day: the benign next-day page, and one defacement of each kind spread over
    the days (every kind equally often). Baselines are the previous day's page."""
    for index, spec in enumerate(portal_specs(portals, seed)):
        for day_no in range(1, days + 1):
            before = portal_page(spec, day_no - 1)
            yield LabelledPair(spec, before, portal_page(spec, day_no), False, "daily")
            if (index + day_no) % 2 == 0:
                kind = DEFACEMENT_KINDS[(index * days + day_no) // 2 % len(DEFACEMENT_KINDS)]
                yield LabelledPair(spec, before, defaced_page(spec, day_no, kind), True, kind)
