"""Sigma rules: the list with hit counts, enable/disable, per-tenant exceptions, upload.

Reads `request.app.state.rules` (a `detections.sigma.manage.RuleService`; 503 when the app was
built without one) and, for hit counts, `app.state.incidents` (alerts by rule id, counted within
the caller's scope: a tenant never learns of a sibling's hits).

- Listing and reading exceptions: any role that reads detections (analyst, admin, national
  coordinator, auditor); exceptions are shown for tenants in the caller's scope only.
- Enable/disable and upload: admin only. An upload is validated as loading validates (size,
  YAML bombs, unknown modifiers, regexes RE2 refuses, unmapped log sources): a refusal answers 422
  with every reason; an id a loaded rule already has answers 422 too.
- Exceptions: admin, or analyst, for a tenant in the caller's scope (their own or one below).
- Every change is audited by the service; the engines reload without a restart.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from pydantic import BaseModel, ConfigDict, Field

from api.auth import Principal, require_roles
from config.settings import Role
from detections.sigma.errors import RuleError
from detections.sigma.load import MAX_RULE_FILE_BYTES
from detections.sigma.manage import RuleService, RuleSummary, UnknownRule, UploadRefused
from detections.sigma.state import RuleException
from pipeline.store.base import AlertQuery, IncidentStore

router = APIRouter(prefix="/api/v1", tags=["rules"])

Readers = Annotated[Principal, Depends(require_roles(Role.ANALYST, Role.ADMIN, Role.NATIONAL_COORDINATOR,
                                                      Role.AUDITOR))]
Admins = Annotated[Principal, Depends(require_roles(Role.ADMIN))]
ExceptionWriters = Annotated[Principal, Depends(require_roles(Role.ADMIN, Role.ANALYST))]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RulePublic(_Model):
    id: str
    title: str
    level: str
    tags: list[str]
    source: str
    correlation: bool
    enabled: bool
    exceptions: int
    hits: int | None = None


class RulesPublic(_Model):
    rules: list[RulePublic]
    total: int
    refused: int


class RuleExceptionCreate(_Model):
    tenant: str = Field(min_length=1, max_length=200)
    detection: dict[str, Any]
    reason: str = Field(min_length=1, max_length=2000)


class RuleExceptionPublic(_Model):
    id: str
    rule_id: str
    tenant: str
    detection: dict[str, Any]
    reason: str
    created_at: str
    created_by: str


class RuleExceptionsPublic(_Model):
    exceptions: list[RuleExceptionPublic]


class RuleUpload(_Model):
    yaml: str = Field(min_length=1, max_length=MAX_RULE_FILE_BYTES)


class RuleUploaded(_Model):
    rules: list[RulePublic]


def _service(request: Request) -> RuleService:
    service: RuleService | None = getattr(request.app.state, "rules", None)
    if service is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "rule management is not configured")
    return service


def _public(summary: RuleSummary, hits: int | None = None) -> RulePublic:
    info = summary.info
    return RulePublic(id=info.rule_id, title=info.title, level=info.severity.label, tags=list(info.tags),
                      source=info.source, correlation=summary.is_correlation, enabled=summary.enabled,
                      exceptions=summary.exceptions, hits=hits)


def _exception_public(exception: RuleException) -> RuleExceptionPublic:
    return RuleExceptionPublic(id=exception.id, rule_id=exception.rule_id, tenant=exception.tenant,
                               detection=dict(exception.detection), reason=exception.reason,
                               created_at=exception.created_at.isoformat(), created_by=exception.created_by)


def _summary(service: RuleService, rule_id: str) -> RuleSummary:
    found = next((summary for summary in service.summaries() if summary.info.rule_id == rule_id), None)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}")
    return found


@router.get("/rules", response_model=RulesPublic)
def list_rules(request: Request, principal: Readers, limit: Annotated[int, Query(ge=1, le=1000)] = 100,
               offset: Annotated[int, Query(ge=0)] = 0) -> RulesPublic:
    """The loaded rules in load order, a page at a time, with their alerts in the caller's scope."""
    service = _service(request)
    summaries = service.summaries()
    incidents: IncidentStore | None = getattr(request.app.state, "incidents", None)
    page = summaries[offset:offset + limit]
    rules = [_public(summary, None if incidents is None else
                     incidents.count_alerts(principal.scope, AlertQuery(rule_id=summary.info.rule_id)))
             for summary in page]
    return RulesPublic(rules=rules, total=len(summaries), refused=len(service.errors))


def _network_wide(request: Request, principal: Principal) -> None:
    """Rules run for every tenant: only an admin of the tree's root changes or adds them."""
    if principal.tenant != request.app.state.tree.root:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "only the national centre's admins change rules for the "
                                                       "whole network; ask for a tenant exception instead")


def _set_enabled(request: Request, principal: Principal, rule_id: str, enabled: bool) -> RulePublic:
    _network_wide(request, principal)
    service = _service(request)
    try:
        service.set_enabled(rule_id, enabled, actor=principal.name, tenant=principal.tenant)
    except UnknownRule as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}") from e
    return _public(_summary(service, rule_id))


@router.post("/rules/{rule_id}/enable", response_model=RulePublic)
def enable_rule(request: Request, principal: Admins, rule_id: str) -> RulePublic:
    return _set_enabled(request, principal, rule_id, True)


@router.post("/rules/{rule_id}/disable", response_model=RulePublic)
def disable_rule(request: Request, principal: Admins, rule_id: str) -> RulePublic:
    return _set_enabled(request, principal, rule_id, False)


@router.get("/rules/{rule_id}/exceptions", response_model=RuleExceptionsPublic)
def list_exceptions(request: Request, principal: Readers, rule_id: str) -> RuleExceptionsPublic:
    try:
        found = _service(request).exceptions(rule_id, principal.scope)
    except UnknownRule as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}") from e
    return RuleExceptionsPublic(exceptions=[_exception_public(exception) for exception in found])


@router.post("/rules/{rule_id}/exceptions", response_model=RuleExceptionPublic, status_code=status.HTTP_201_CREATED)
def add_exception(request: Request, principal: ExceptionWriters, rule_id: str,
                  body: RuleExceptionCreate) -> RuleExceptionPublic:
    """An exception for a tenant in the caller's scope (an analyst's own tenant or one below)."""
    if body.tenant not in principal.scope:  # 404 as everywhere: a sibling's tenant is not confirmed
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no tenant {body.tenant!r} here")
    try:
        exception = _service(request).add_exception(rule_id, body.tenant, body.detection, body.reason,
                                                    actor=principal.name, actor_tenant=principal.tenant)
    except UnknownRule as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no rule {rule_id!r}") from e
    except RuleError as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, f"exception refused: {e.reason}") from e
    return _exception_public(exception)


@router.post("/rules", response_model=RuleUploaded, status_code=status.HTTP_201_CREATED)
def upload_rule(request: Request, principal: Admins, body: RuleUpload) -> RuleUploaded:
    """Add a Sigma rule file; 422 with every reason when it does not load completely."""
    _network_wide(request, principal)
    service = _service(request)
    try:
        infos = service.upload(body.yaml, actor=principal.name, tenant=principal.tenant)
    except UploadRefused as e:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, [str(r) for r in e.reasons]) from e
    return RuleUploaded(rules=[_public(_summary(service, info.rule_id)) for info in infos])
