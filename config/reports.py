"""The reports configuration: who receives agency incident reports upward, the form's choice lists,
the templates, and how forwarding retries.

The national forms and the authority that receives them change with the law (Circular
20/2017/TT-BTTTT form 03 and the final report form today; responsibility moved to the Ministry of
Public Security in 2025, and the Law on Cybersecurity in force from 1 July 2026 brings new
decrees), so none of it is code: a deployment overrides any part in YAML under `reports:`.

Contract:
- Every model forbids unknown keys and is frozen, like the rest of `config/`.
- The defaults reproduce today's form 03: each choice list carries a stable `code` (what the API
  takes and stores) with its Vietnamese and English labels (what the documents print); codes are
  unique within a list, and the lists are never empty.
- Recipients are named; names are unique. A recipient is a tenant of the tree (`kind: tenant`,
  `tenant: parent` meaning the reporter's parent), an HTTP endpoint of an external national
  platform (`kind: http`), or a mailbox (`kind: email`, with the subject prefix the coordinator
  expects).
- This module imports nothing of govsoc, so `config.settings` may import it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

Code = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Choice(_Strict):
    """One option of a choice list: the code the API takes, and the labels the documents print."""

    code: Code
    vi: Annotated[str, StringConstraints(min_length=1)]
    en: Annotated[str, StringConstraints(min_length=1)]


def _choices(*rows: tuple[str, str, str]) -> tuple[Choice, ...]:
    return tuple(Choice(code=code, vi=vi, en=en) for code, vi, en in rows)


def _current_status() -> tuple[Choice, ...]:
    return _choices(
        ("resolved", "Đã khắc phục", "Resolved"),
        ("in_progress", "Đang xử lý", "Being handled"),
        ("not_handled", "Chưa xử lý", "Not yet handled"),
    )


def _detection_method() -> tuple[Choice, ...]:
    return _choices(
        ("ids", "Qua hệ thống phát hiện xâm nhập (IDS/IPS)", "Through the intrusion detection system (IDS/IPS)"),
        ("log_review", "Qua kiểm tra nhật ký hệ thống", "Through a review of the system's logs"),
        ("monitoring", "Qua hệ thống giám sát an toàn thông tin (SOC)", "Through security monitoring (SOC)"),
        ("notified", "Nhận được thông báo từ cơ quan, tổ chức khác", "Notified by another agency or organisation"),
        ("user_report", "Người dùng phát hiện và thông báo", "Found and reported by a user"),
        ("other", "Khác", "Other"),
    )


def _help_requested() -> tuple[Choice, ...]:
    return _choices(
        ("coordination", "Điều phối ứng cứu sự cố", "Coordination of the incident response"),
        ("onsite_response", "Hỗ trợ ứng cứu trực tiếp tại chỗ", "On-site incident response"),
        ("remote_support", "Hỗ trợ kỹ thuật từ xa", "Remote technical support"),
        ("forensics", "Thu thập, phân tích chứng cứ số", "Collection and analysis of digital evidence"),
        ("malware_analysis", "Phân tích mã độc", "Malware analysis"),
        ("information", "Cung cấp thông tin, cảnh báo liên quan", "Related information and warnings"),
        ("none", "Không cần hỗ trợ", "No help needed"),
    )


def _reported_to() -> tuple[Choice, ...]:
    return _choices(
        ("owner_agency", "Cơ quan chủ quản hệ thống thông tin", "The information system owner"),
        ("specialised_unit", "Đơn vị chuyên trách về an toàn thông tin", "The specialised security unit"),
        ("national_coordinator", "Cơ quan điều phối quốc gia", "The national coordinating body"),
        ("police", "Cơ quan công an", "The police"),
        ("isp", "Doanh nghiệp cung cấp dịch vụ viễn thông, Internet", "The telecoms or Internet provider"),
        ("other", "Khác", "Other"),
    )


def _services() -> tuple[Choice, ...]:
    return _choices(
        ("web", "Web", "Web"), ("email", "Thư điện tử", "E-mail"), ("dns", "DNS", "DNS"),
        ("ftp", "FTP", "FTP"), ("database", "Cơ sở dữ liệu", "Database"), ("vpn", "VPN", "VPN"),
        ("remote_access", "Truy cập từ xa (SSH, RDP)", "Remote access (SSH, RDP)"),
        ("file_sharing", "Chia sẻ tệp", "File sharing"), ("other", "Khác", "Other"),
    )


def _security_measures() -> tuple[Choice, ...]:
    return _choices(
        ("firewall", "Tường lửa", "Firewall"), ("antivirus", "Phòng chống mã độc", "Anti-malware"),
        ("ids_ips", "Phát hiện, ngăn chặn xâm nhập (IDS/IPS)", "Intrusion detection and prevention (IDS/IPS)"),
        ("waf", "Tường lửa ứng dụng web (WAF)", "Web application firewall (WAF)"),
        ("siem", "Giám sát an toàn thông tin (SIEM/SOC)", "Security monitoring (SIEM/SOC)"),
        ("backup", "Sao lưu dữ liệu", "Data backup"), ("encryption", "Mã hóa", "Encryption"),
        ("mfa", "Xác thực đa yếu tố", "Multi-factor authentication"), ("other", "Khác", "Other"),
    )


def _incident_kinds() -> tuple[Choice, ...]:
    return _choices(
        ("malware", "Tấn công bằng mã độc", "Malware attack"),
        ("intrusion", "Tấn công xâm nhập, chiếm quyền điều khiển", "Intrusion, takeover"),
        ("ddos", "Tấn công từ chối dịch vụ", "Denial of service"),
        ("defacement", "Tấn công thay đổi giao diện", "Website defacement"),
        ("data_leak", "Lộ, lọt, mất dữ liệu", "Data leak or loss"),
        ("phishing", "Lừa đảo (phishing)", "Phishing"),
        ("outage", "Gián đoạn dịch vụ", "Service outage"),
        ("other", "Khác", "Other"),
    )


class FormChoices(_Strict):
    """The choice lists of the report forms (form 03 today)."""

    incident_kind: tuple[Choice, ...] = Field(default_factory=_incident_kinds, min_length=1)
    current_status: tuple[Choice, ...] = Field(default_factory=_current_status, min_length=1)
    detection_method: tuple[Choice, ...] = Field(default_factory=_detection_method, min_length=1)
    reported_to: tuple[Choice, ...] = Field(default_factory=_reported_to, min_length=1)
    services: tuple[Choice, ...] = Field(default_factory=_services, min_length=1)
    security_measures: tuple[Choice, ...] = Field(default_factory=_security_measures, min_length=1)
    help_requested: tuple[Choice, ...] = Field(default_factory=_help_requested, min_length=1)

    @model_validator(mode="after")
    def _codes_unique(self) -> FormChoices:
        for name in type(self).model_fields:
            codes = [c.code for c in getattr(self, name)]
            if len(codes) != len(set(codes)):
                raise ValueError(f"{name}: two choices share a code")
        return self

    def codes(self, name: str) -> frozenset[str]:
        """The codes of the list `name` (a field of this model)."""
        return frozenset(c.code for c in getattr(self, name))

    def label(self, name: str, code: str, lang: Literal["vi", "en"]) -> str:
        """The label of `code` in list `name`; an unknown code (from an older list) prints as itself."""
        for choice in getattr(self, name):
            if choice.code == code:
                return str(choice.vi if lang == "vi" else choice.en)
        return code


class TenantRecipient(_Strict):
    """A tenant of the tree: `parent` (the reporter's parent), `national` (the coordinator), or an id."""

    kind: Literal["tenant"] = "tenant"
    name: Name
    tenant: Annotated[str, StringConstraints(min_length=1)] = "parent"


class HttpRecipient(_Strict):
    """An external national platform that takes reports as JSON over HTTP(S) POST."""

    kind: Literal["http"] = "http"
    name: Name
    url: Annotated[str, StringConstraints(pattern=r"^https?://")]
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0
    headers: dict[str, str] = Field(default_factory=dict)


class EmailRecipient(_Strict):
    """A mailbox of the coordinator, through an SMTP relay; the subject starts with `subject_prefix`."""

    kind: Literal["email"] = "email"
    name: Name
    to: tuple[Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")], ...] = Field(min_length=1)
    sender: Annotated[str, StringConstraints(pattern=r"^[^@\s]+@[^@\s]+$")]
    subject_prefix: str = "[BÁO CÁO SỰ CỐ]"
    smtp_host: str = "127.0.0.1"
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    starttls: bool = False
    timeout_s: Annotated[float, Field(gt=0, le=120)] = 10.0


Recipient = Annotated[TenantRecipient | HttpRecipient | EmailRecipient, Field(discriminator="kind")]


def _default_recipients() -> tuple[TenantRecipient, ...]:
    return (TenantRecipient(name="parent", tenant="parent"), TenantRecipient(name="national", tenant="national"))


class ForwardingSettings(_Strict):
    """Retries of one delivery: `attempts` in all, waiting `backoff_s * 2**n` before retry n+1."""

    attempts: Annotated[int, Field(ge=1, le=10)] = 4
    backoff_s: Annotated[float, Field(ge=0, le=300)] = 1.0


class ReportTemplates(_Strict):
    """Jinja2 templates of the documents; `directory` None means the ones govsoc ships."""

    directory: Path | None = None
    initial: str = "initial.html.j2"
    final: str = "final.html.j2"
    period: str = "period.html.j2"


class ReportSettings(_Strict):
    """Agency incident reports: the authority, the form, the recipients upward, the documents."""

    reference_prefix: Annotated[str, StringConstraints(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] = "BC"
    national_coordinator: Annotated[str, StringConstraints(min_length=1)] = "national"
    authority_vi: str = "Cơ quan điều phối quốc gia về ứng cứu sự cố"
    authority_en: str = "National incident response coordinating body"
    legal_basis_vi: str = "Mẫu số 03, Thông tư số 20/2017/TT-BTTTT"
    legal_basis_en: str = "Form 03, Circular 20/2017/TT-BTTTT"
    final_legal_basis_vi: str = "Báo cáo kết thúc ứng cứu sự cố, Thông tư số 20/2017/TT-BTTTT"
    final_legal_basis_en: str = "Final incident response report, Circular 20/2017/TT-BTTTT"
    timezone: str = "Asia/Ho_Chi_Minh"
    acknowledge_clock: str | None = "acknowledge-report"  # the regulatory clock a receipt meets, if any
    choices: FormChoices = FormChoices()
    recipients: tuple[Recipient, ...] = Field(default_factory=_default_recipients)
    forwarding: ForwardingSettings = ForwardingSettings()
    templates: ReportTemplates = ReportTemplates()

    @model_validator(mode="after")
    def _recipient_names_unique(self) -> ReportSettings:
        names = [r.name for r in self.recipients]
        if len(names) != len(set(names)):
            raise ValueError("recipients: two recipients share a name")
        return self

    def recipient(self, name: str) -> TenantRecipient | HttpRecipient | EmailRecipient | None:
        return next((r for r in self.recipients if r.name == name), None)
