"""Windows servicing log (CBS.log) lines: the "windows_cbs" format.

Ground truth: loghub's Windows_2k.log (a CBS.log sample) and its structured CSV
(../shared/data/loghub, read in place; research use with attribution, see loghub/LICENSE). The
file has CRLF line ends, which the file reader drops before parsing. Its CSI lines carry their
own UTC time (`00000001@2016/9/27:20:30:31.455`), which places the machine at UTC+8: the test
reads the zone-less header times there and checks that both clocks agree.
"""

from __future__ import annotations

import csv
import re
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from pipeline.errors import ParseError
from sensors.files import FileSource, read_log_file
from sensors.parsers import PARSERS, LineContext
from sensors.parsers.cbs import parse_cbs_line

LOGHUB = Path(__file__).resolve().parents[3] / "shared" / "data" / "loghub" / "Windows"
UTC8 = timezone(timedelta(hours=8))
CTX = LineContext(tz=UTC8, reference=datetime(2026, 11, 23, 12, 0, tzinfo=UTC))
CSI_UTC = re.compile(r"[0-9a-f]{8}@([0-9]{4})/([0-9]{1,2})/([0-9]{1,2}):([0-9]{2}):([0-9]{2}):([0-9]{2})\.[0-9]{3} ")


# --- loghub ground truth ------------------------------------------------------------------------

def loghub_pairs() -> list[tuple[str, dict[str, str]]]:
    """(line as the file reader gives it, CSV row): split at `\\n`, one `\\r` dropped."""
    lines = [line.removesuffix("\r") for line in
             (LOGHUB / "Windows_2k.log").read_bytes().decode("utf-8").split("\n")]
    with (LOGHUB / "Windows_2k.log_structured.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(lines) == len(rows) == 2000
    return list(zip(lines, rows, strict=True))


def test_every_loghub_windows_line_matches_the_structured_csv() -> None:
    components = set()
    for line, row in loghub_pairs():
        doc = parse_cbs_line(line, CTX)
        local = doc["@timestamp"].astimezone(UTC8)
        assert (local.strftime("%Y-%m-%d"), local.strftime("%H:%M:%S")) == (row["Date"], row["Time"]), line
        assert doc["log"]["level"] == row["Level"], line
        assert doc["event"]["provider"] == row["Component"], line
        assert doc["message"] == row["Content"], line
        assert doc["event"] == {"kind": "event", "module": "windows", "dataset": "windows.cbs",
                                "provider": row["Component"]}
        components.add(row["Component"])
    assert components == {"CBS", "CSI"}


def test_csi_utc_times_agree_with_the_header_read_in_the_zone() -> None:
    checked = 0
    for line, _row in loghub_pairs():
        doc = parse_cbs_line(line, CTX)
        stamped = CSI_UTC.match(doc["message"])
        if stamped is None:
            continue
        year, month, day, hour, minute, second = (int(part) for part in stamped.groups())
        own = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        assert own == doc["@timestamp"], line
        checked += 1
    assert checked > 10


def test_the_file_reader_makes_an_event_of_every_loghub_line() -> None:
    """By its format word, as a sensor input names it; `event.original` is the line without CR."""
    assert PARSERS["windows_cbs"] is parse_cbs_line
    source = FileSource(tenant="hanoi", sensor="hanoi-s1", format="windows_cbs", timezone="Asia/Shanghai")
    batches = list(read_log_file(LOGHUB / "Windows_2k.log", source))
    events = [event for batch in batches for event in batch.events]
    assert sum(len(batch.dead_letters) for batch in batches) == 0
    assert [event.get("event.original") for event in events] == [line for line, _row in loghub_pairs()]
    assert events[0].timestamp == datetime(2016, 9, 27, 20, 30, 30, tzinfo=UTC)


# --- hand-written lines -------------------------------------------------------------------------

def test_error_line_in_utc() -> None:
    line = ("2026-11-23 10:00:00, Error                 CSI    0000012c (F) STATUS_SXS_ASSEMBLY_MISSING "
            "#2264 [HRESULT = 0x80073701 - ERROR_SXS_ASSEMBLY_MISSING]  ")
    assert parse_cbs_line(line, LineContext(tz=UTC, reference=CTX.reference)) == {
        "@timestamp": datetime(2026, 11, 23, 10, 0, tzinfo=UTC),
        "event": {"kind": "event", "module": "windows", "dataset": "windows.cbs", "provider": "CSI"},
        "log": {"level": "Error"},
        "message": "0000012c (F) STATUS_SXS_ASSEMBLY_MISSING #2264 [HRESULT = 0x80073701 - ERROR_SXS_ASSEMBLY_MISSING]",
    }


def test_no_text_after_the_component_is_an_empty_message() -> None:
    doc = parse_cbs_line("2026-11-23 10:00:00, Warning               CBS", CTX)
    assert (doc["message"], doc["log"]["level"], doc["event"]["provider"]) == ("", "Warning", "CBS")


@pytest.mark.parametrize("line, reason", [
    ("", "not a Windows CBS line"),
    ("CSIPERF:TXCOMMIT;27009", "not a Windows CBS line"),  # the line after `CSI perf trace:`
    ("2016-09-28 04:30:31 Info                  CBS    no comma", "not a Windows CBS line"),
    ("2016-09-28 04:30:31, Info", "not a Windows CBS line"),
    ("2016-09-28 04:30:31, Info\tCBS\ttabs", "not a Windows CBS line"),
    ("2016-09-28 04:30:31, Info                  " + "C" * 65 + " too long a component", "not a Windows CBS line"),
    ("2016-02-30 04:30:31, Info                  CBS    no such day", "Windows CBS time"),
    ("2016-09-28 24:30:31, Info                  CBS    no such hour", "Windows CBS time"),
    ("0001-01-01 00:00:00, Info                  CBS    before year 1 in UTC", "Windows CBS time"),
])
def test_not_a_cbs_line(line: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason):
        parse_cbs_line(line, CTX)


# --- robustness ---------------------------------------------------------------------------------

cbsish = st.one_of(st.text(), st.builds(lambda head, rest: head + rest, st.sampled_from([
    "2016-09-28 04:30:31, ", "2016-09-28 04:30:31, Info ", "2016-09-28 04:30:31, Info                  CBS",
    "2016-09-28 04:30:31, Info                  CSI    ", "9999-12-31 23:59:59, Info CBS ",
    "0000-00-00 00:00:00, Info CBS ",
]), st.text()))


@given(cbsish)
@example("9999-12-31 23:59:59, Info CBS x")
@example("2016-09-28 04:30:31, Info CBS\u2028x")
def test_any_text_gives_a_document_or_parse_error(line: str) -> None:
    for ctx in (CTX, LineContext(tz=timezone(timedelta(hours=-5)), reference=CTX.reference)):
        try:
            doc = parse_cbs_line(line, ctx)
        except ParseError as e:
            assert e.reason
            continue
        assert doc["@timestamp"].tzinfo is UTC
        assert isinstance(doc["message"], str) and doc["event"]["provider"]


@pytest.mark.parametrize("line", [
    "2016-09-28 04:30:31, Info " + " " * 65_000 + "x",
    "2016-09-28 04:30:31, " + "I" * 65_000,
    "2016-09-28 04:30:31, Info " + "C" * 65_000,
    "2016-09-28 04:30:31, Info CBS" + " " * 65_000,
    "2016-09-28 04:30:31, " * 3_000,
])
def test_long_hostile_lines_parse_in_linear_time(line: str) -> None:
    started = time.perf_counter()
    try:
        parse_cbs_line(line, CTX)
    except ParseError:
        pass
    assert time.perf_counter() - started < 0.5
