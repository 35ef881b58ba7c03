"""Web server access logs for the demo, generated from a seed: nginx (Hà Nội's portal), Apache (Bộ Y tế's).

A day of ordinary visits (citizens reading pages, downloading forms, the odd 404 and a search
engine's crawler), and a few attack requests a SOC expects to see on a public portal: SQL
injection in a query string, a path traversal, a scanner probing for admin pages and `.env`
files, a web shell upload and its first command. The attacks come from the demo's brute-force
source (203.0.113.77) and a scanner in 198.51.100.0/24, so they join the rest of the story.

Lines are the combined log format both servers write by default (`%h %l %u [%t] "%r" %>s %b
"%{Referer}i" "%{User-agent}i"`), read by the sensor's `nginx_access` / `apache_access` parsers.
Addresses from documentation ranges, names under `.example`. Deterministic: the same spec always
yields the same lines. `demo_web_and_firewall_files` writes these and the firewall logs
(`api.demo.firewall`) for `govsoc up --demo`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from api.demo.authlog import ICT
from api.demo.firewall import FirewallSpec, generate_fortigate_log, generate_kv_firewall_log

ATTACKER = "203.0.113.77"
SCANNER = "198.51.100.66"
AGENTS = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
          "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Mobile/15E148",
          "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
          "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
PAGES = ("/", "/tin-tuc/", "/tin-tuc/thong-bao-lich-tiep-cong-dan.html", "/thu-tuc-hanh-chinh/",
         "/thu-tuc-hanh-chinh/cap-giay-phep-xay-dung.html", "/lien-he/", "/static/css/main.css",
         "/static/js/app.js", "/images/logo.png", "/van-ban/", "/tim-kiem?q=h%E1%BB%99+kh%E1%BA%A9u")
# (method, target, status, bytes, user agent, source): the attacks, in order
ATTACKS = (
    ("GET", "/tin-tuc/chi-tiet?id=1%27%20OR%20%271%27%3D%271", 500, 312, "sqlmap/1.8.11#stable (https://sqlmap.org)",
     ATTACKER),
    ("GET", "/tin-tuc/chi-tiet?id=1%20UNION%20SELECT%20username,password%20FROM%20users--", 500, 312,
     "sqlmap/1.8.11#stable (https://sqlmap.org)", ATTACKER),
    ("GET", "/tai-lieu/download?file=../../../../etc/passwd", 400, 166, "curl/8.5.0", ATTACKER),
    ("GET", "/.env", 404, 153, "Mozilla/5.0 zgrab/0.x", SCANNER),
    ("GET", "/wp-admin/setup-config.php", 404, 153, "Mozilla/5.0 zgrab/0.x", SCANNER),
    ("GET", "/phpmyadmin/index.php", 404, 153, "Mozilla/5.0 zgrab/0.x", SCANNER),
    ("POST", "/upload/anh-dai-dien.php", 200, 48, "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", ATTACKER),
    ("GET", "/uploads/anh-dai-dien.php?cmd=whoami", 200, 21, "Mozilla/5.0 (Windows NT 10.0; Win64; x64)", ATTACKER),
)


@dataclass(frozen=True, slots=True)
class WebLogSpec:
    host: str  # the portal's name, for the Referer of ordinary visits
    start: datetime
    lines: int = 800
    seed: int = 41
    duration: timedelta = timedelta(hours=24)
    attack_at_hours: float = 13.5  # when the attack requests start (hours after `start`)
    visitors_net: str = "10.20"  # first two octets of the agency's own visitors (the rest from the internet)


def _time(ts: datetime) -> str:
    return ts.astimezone(ICT).strftime("%d/%b/%Y:%H:%M:%S %z")


def _line(source: str, ts: datetime, request: str, status: int, size: int, referrer: str, agent: str) -> str:
    return f'{source} - - [{_time(ts)}] "{request}" {status} {size} "{referrer}" "{agent}"'


def generate_access_log(spec: WebLogSpec) -> list[str]:
    """`spec.lines` ordinary lines and the attack requests, in time order (combined log format)."""
    rng = random.Random(spec.seed)
    out: list[tuple[datetime, str]] = []
    seconds = spec.duration.total_seconds()
    for _ in range(spec.lines):
        ts = spec.start + timedelta(seconds=rng.uniform(0, seconds))
        internal = rng.random() < 0.3
        source = (f"{spec.visitors_net}.{rng.randrange(1, 255)}.{rng.randrange(1, 255)}" if internal
                  else f"192.0.2.{rng.randrange(100, 250)}")
        page = rng.choice(PAGES)
        status = 404 if rng.random() < 0.03 else 304 if page.startswith("/static") and rng.random() < 0.4 else 200
        size = 0 if status == 304 else 153 if status == 404 else rng.randrange(800, 60_000)
        out.append((ts, _line(source, ts, f"GET {page} HTTP/1.1", status, size, f"https://{spec.host}/",
                              rng.choice(AGENTS))))
    at = spec.start + timedelta(hours=spec.attack_at_hours)
    for n, (method, target, status, size, agent, source) in enumerate(ATTACKS):
        ts = at + timedelta(seconds=7 * n)
        out.append((ts, _line(source, ts, f"{method} {target} HTTP/1.1", status, size, "-", agent)))
    out.sort(key=lambda item: item[0])
    return [line for _ts, line in out]


def demo_web_and_firewall_files(directory: Path, now: datetime) -> list[tuple[str, str, str, Path]]:
    """Write the demo's web and firewall logs under `directory`: (tenant, sensor, format, path) each.

    The day is the one the other demo logs cover (from midnight ICT of the day before `now`).
    """
    directory.mkdir(parents=True, exist_ok=True)
    local = now.astimezone(ICT)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=1)
    files: list[tuple[str, str, str, Path]] = []
    for tenant, sensor, fmt, host, seed, net in (
            ("hanoi", "hanoi-s1", "nginx_access", "portal.hanoi.example", 41, "10.20"),
            ("byt", "byt-s1", "apache_access", "portal.moh.example", 43, "10.40")):
        path = directory / f"{tenant}-{fmt.replace('_', '-')}.log"
        lines = generate_access_log(WebLogSpec(host=host, start=start, seed=seed, visitors_net=net))
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        files.append((tenant, sensor, fmt, path))
    fortigate = directory / "btc-fortigate.log"
    fortigate.write_text("\n".join(generate_fortigate_log(FirewallSpec(start=start))) + "\n", encoding="utf-8")
    files.append(("btc", "btc-s1", "fortigate", fortigate))
    kv = directory / "danang-firewall.log"
    kv.write_text("\n".join(generate_kv_firewall_log(FirewallSpec(start=start, seed=53))) + "\n", encoding="utf-8")
    files.append(("danang", "danang-s1", "kv_firewall", kv))
    return files
