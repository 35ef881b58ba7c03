"""The door's hardening: headers, body and rate limits, metrics for the right roles, no stack traces."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from api.security import RateLimiter
from config.settings import ApiSettings, Role
from tests.api.door import open_door


def test_every_answer_carries_the_security_headers(tmp_path: Path) -> None:
    with open_door(tmp_path) as door:
        answer = door.client.get("/api/v1/incidents", headers=door.headers("hanoi", Role.ANALYST))
        assert answer.headers["X-Content-Type-Options"] == "nosniff"
        assert answer.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
        assert answer.headers["Cache-Control"] == "no-store"
        assert door.client.get("/healthz").headers["Referrer-Policy"] == "no-referrer"


def test_an_oversized_body_is_413_declared_or_streamed(tmp_path: Path) -> None:
    with open_door(tmp_path, ApiSettings(cookie_secure=False, max_body_bytes=2048, rate_per_s=1000,
                                         rate_burst=1000)) as door:
        headers = door.headers("hanoi", Role.SENSOR)
        declared = door.client.post("/api/v1/ingest", content=b"x" * 5000, headers=headers)
        assert declared.status_code == 413

        def chunks() -> object:
            for _ in range(10):
                yield b"y" * 1000

        streamed = door.client.post("/api/v1/ingest", content=chunks(), headers=headers)
        assert streamed.status_code == 413


def test_the_rate_limit_answers_429_with_retry_after(tmp_path: Path) -> None:
    with open_door(tmp_path, ApiSettings(cookie_secure=False, rate_per_s=1, rate_burst=3)) as door:
        headers = door.headers("hanoi", Role.ANALYST)
        codes = [door.client.get("/api/v1/incidents", headers=headers).status_code for _ in range(5)]
        assert codes[0] == 200 and codes[-1] == 429  # the door's own setup spent part of the burst
        assert codes == sorted(codes)  # once limited, limited until the bucket refills
        limited = door.client.get("/api/v1/incidents", headers=headers)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
        assert door.client.get("/healthz").status_code == 200  # health is never limited


def test_buckets_refill_and_forget_the_oldest() -> None:
    limiter = RateLimiter(rate=2, burst=2, max_subjects=2)
    assert [limiter.retry_after("a", 0.0) for _ in range(3)] == [0, 0, 1]
    assert limiter.retry_after("a", 1.0) == 0
    limiter.retry_after("b", 1.0)
    limiter.retry_after("c", 1.0)
    assert limiter.retry_after("a", 1.0) == 0  # forgotten: a fresh bucket


def test_metrics_are_for_admins_and_auditors(tmp_path: Path) -> None:
    with open_door(tmp_path) as door:
        door.client.get("/api/v1/incidents", headers=door.headers("hanoi", Role.ANALYST))
        assert door.client.get("/metrics", headers=door.headers("hanoi", Role.ANALYST)).status_code == 403
        text = door.client.get("/metrics", headers=door.headers("national", Role.AUDITOR)).text
        assert 'govsoc_api_requests_total{method="GET",route="/api/v1/incidents",status="200"}' in text


def test_an_unexpected_error_answers_500_without_a_traceback(tmp_path: Path) -> None:
    with open_door(tmp_path) as door:
        router = APIRouter()

        @router.get("/api/v1/boom")
        def boom() -> None:
            raise RuntimeError("secret internals /etc/govsoc")

        door.client.app.include_router(router)  # type: ignore[attr-defined]
        answer = door.client.get("/api/v1/boom")
        assert answer.status_code == 500
        assert answer.json()["detail"] == "internal error" and "request_id" in answer.json()
        assert "secret" not in answer.text and "Traceback" not in answer.text
