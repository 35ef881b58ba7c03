"""ids and gcscope: the reader's shortcuts give what the general code gives."""

from __future__ import annotations

import copy
import gc
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from pipeline.ids import stable_id
from pipeline.records import Event, to_iso
from sensors.packets import CaptureSource, CaptureStats, events
from sensors.packets.flows import Flow
from sensors.packets.gcscope import YOUNG_THRESHOLD, fewer_collections
from sensors.packets.ids import PrefixedIds, iso_utc
from sensors.packets.reader import _Session

parts = st.one_of(st.text(), st.integers(min_value=-(2**70), max_value=2**70))


@given(st.lists(parts, min_size=1, max_size=3), st.lists(parts, max_size=5))
def test_prefixed_ids_are_stable_ids(prefix: list[str | int], rest: list[str | int]) -> None:
    assert PrefixedIds(*prefix).make(*rest) == stable_id(*prefix, *rest)


@given(st.floats(min_value=0, max_value=253402300799.0))
def test_iso_utc_is_to_iso(ts: float) -> None:
    moment = datetime.fromtimestamp(ts, UTC)
    assert iso_utc(moment) == to_iso(moment)


def test_the_reader_s_event_is_what_event_create_makes() -> None:
    session = _Session(CaptureSource("hanoi", "hn-1"), "c.pcap", "/abs/c.pcap", CaptureStats())
    flow = Flow((6, b"\x01" * 4, 1, b"\x02" * 4, 2), 4, 6, b"\x01" * 4, 1, b"\x02" * 4, 2, 10.25, 11.5, 0)
    flow.end_reason = "end"
    doc = events.flow_document(flow)
    reference_doc = copy.deepcopy(doc)
    session._event(flow, doc, events.DATASET_FLOW, 0)
    (ours,) = session.out
    reference_doc["organization"] = {"id": "hanoi"}
    reference_doc["observer"] = {"name": "hn-1", "type": "sensor"}
    reference = Event.create(reference_doc, id_parts=("hn-1", "/abs/c.pcap", "flow", flow.community_id, 0,
                                                      repr(flow.start)))
    assert isinstance(ours, Event)
    assert ours == reference and ours.to_json() == reference.to_json()


def test_fewer_collections_raises_the_threshold_and_puts_it_back() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        with fewer_collections():
            assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
        assert gc.get_threshold()[0] == max(before[0], YOUNG_THRESHOLD)
    assert gc.get_threshold() == before
