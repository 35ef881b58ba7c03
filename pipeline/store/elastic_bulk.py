"""Bulk requests with per-item retry: how the Elasticsearch store gets a batch into the cluster.

In: `BulkOp`s (index, create or delete one document by `_id`). Out: one `ItemResult` per op, in
the order given, each the final answer of the cluster for that op.

- Ops go out in requests of at most `MAX_ITEMS` ops and about `MAX_BYTES` bytes.
- An item refused with 429 (queue full) or 5xx is sent again, alone with the others that failed,
  after a back-off that doubles up to `RetryPolicy.max_delay`; after `RetryPolicy.attempts` sends
  its last failure is its result. Items that succeeded are never sent twice, so a retry cannot
  overwrite a newer copy with an older one.
- Any other failure (a mapping error: the document does not fit the index) is final at once:
  sending it again would fail again. The caller decides what it means (`ItemResult.is_ok`).
- A failure of the whole request (connection, HTTP error) propagates from `post`; the transport
  has already retried it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import structlog

from pipeline.errors import StoreError

log = structlog.get_logger(__name__)

MAX_ITEMS = 1000
MAX_BYTES = 8 * 1024 * 1024

Action = Literal["index", "create", "delete"]
Post = Callable[[list[bytes]], Mapping[str, Any]]
"""Sends NDJSON lines as one `_bulk` request and returns the decoded response."""

FILTER_PATH = "errors,items.*.status,items.*.result,items.*.error.type,items.*.error.reason"


@dataclass(frozen=True, slots=True)
class BulkOp:
    action: Action
    index: str
    id: str
    source: bytes | None = None  # the JSON document; None for a delete

    def lines(self) -> list[bytes]:
        header = orjson.dumps({self.action: {"_index": self.index, "_id": self.id}})
        return [header] if self.source is None else [header, self.source]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    attempts: int = 6
    first_delay: float = 0.1
    max_delay: float = 5.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after send number `attempt` (from 0) before the next one."""
        return float(min(self.max_delay, self.first_delay * 2**attempt))


@dataclass(frozen=True, slots=True)
class ItemResult:
    """The cluster's answer for one op: HTTP status, `result` (`created`, `updated`, ...) or error."""

    op: BulkOp
    status: int
    result: str = ""
    error: str = ""

    @property
    def is_retryable(self) -> bool:
        return self.status == 429 or self.status >= 500

    @property
    def is_ok(self) -> bool:
        """Succeeded, or found the state it wanted: a `create` of an existing id, a `delete` of a missing one."""
        if 200 <= self.status < 300:
            return True
        return (self.op.action, self.status) in (("create", 409), ("delete", 404))


def read_items(ops: Sequence[BulkOp], response: Mapping[str, Any]) -> list[ItemResult]:
    """Pair each op with its item of a `_bulk` response (items come back in request order)."""
    items = response.get("items")
    if not isinstance(items, list) or len(items) != len(ops):
        count = len(items) if isinstance(items, list) else "no"
        raise StoreError(f"bulk response has {count} items for {len(ops)} operations")
    results = []
    for op, item in zip(ops, items, strict=True):
        (answer,) = item.values()
        error = answer.get("error") or {}
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}" if error else ""
        results.append(ItemResult(op=op, status=int(answer.get("status", 0)), result=answer.get("result", ""),
                                  error=reason))
    return results


def chunks(ops: Sequence[BulkOp]) -> Iterator[tuple[list[BulkOp], list[bytes]]]:
    """The ops and their NDJSON lines, cut into requests of bounded count and size."""
    batch: list[BulkOp] = []
    lines: list[bytes] = []
    size = 0
    for op in ops:
        op_lines = op.lines()
        op_size = sum(len(line) + 1 for line in op_lines)
        if batch and (len(batch) >= MAX_ITEMS or size + op_size > MAX_BYTES):
            yield batch, lines
            batch, lines, size = [], [], 0
        batch.append(op)
        lines.extend(op_lines)
        size += op_size
    if batch:
        yield batch, lines


def send(post: Post, ops: Sequence[BulkOp], policy: RetryPolicy,
         sleep: Callable[[float], None] = time.sleep) -> list[ItemResult]:
    """Each op's final result, in order; see the module docstring for what is retried."""
    results: dict[int, ItemResult] = {}
    pending = list(range(len(ops)))
    for attempt in range(max(policy.attempts, 1)):
        if attempt:
            sleep(policy.delay(attempt - 1))
        retry: list[int] = []
        positions = iter(pending)
        for batch, lines in chunks([ops[i] for i in pending]):
            for item in read_items(batch, post(lines)):
                position = next(positions)
                results[position] = item
                if item.is_retryable:
                    retry.append(position)
        if not retry:
            break
        if attempt + 1 < policy.attempts:
            log.info("bulk_items_retried", items=len(retry), attempt=attempt + 1,
                     status=sorted({results[i].status for i in retry}))
        pending = retry
    return [results[i] for i in range(len(ops))]
