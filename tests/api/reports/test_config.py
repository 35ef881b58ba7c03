"""The reports configuration: today's form by default, overridable, strict about typos."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from config.reports import EmailRecipient, HttpRecipient, ReportSettings, TenantRecipient


def test_the_defaults_hold_todays_form_and_recipients() -> None:
    settings = ReportSettings()
    assert settings.legal_basis_vi == "Mẫu số 03, Thông tư số 20/2017/TT-BTTTT"
    assert {"resolved", "in_progress", "not_handled"} == settings.choices.codes("current_status")
    assert settings.choices.label("detection_method", "ids", "vi") == "Qua hệ thống phát hiện xâm nhập (IDS/IPS)"
    assert settings.choices.label("detection_method", "retired-code", "en") == "retired-code"
    assert [r.name for r in settings.recipients] == ["parent", "national"]


def test_a_deployment_replaces_the_lists_and_recipients_from_yaml_values() -> None:
    settings = ReportSettings.model_validate({
        "legal_basis_vi": "Mẫu số 01, Nghị định mới", "national_coordinator": "bca",
        "choices": {"current_status": [{"code": "open", "vi": "Đang mở", "en": "Open"}]},
        "recipients": [
            {"kind": "http", "name": "platform", "url": "https://intake.gov.example/api"},
            {"kind": "email", "name": "mail", "to": ["ir@gov.example"], "sender": "soc@moh.example",
             "subject_prefix": "[SU CO]"},
            {"kind": "tenant", "name": "up", "tenant": "parent"},
        ],
    })
    assert settings.choices.codes("current_status") == {"open"}
    assert settings.choices.codes("help_requested")  # the lists not given keep their defaults
    assert [type(r) for r in settings.recipients] == [HttpRecipient, EmailRecipient, TenantRecipient]
    assert settings.recipient("mail") == settings.recipients[1]


@pytest.mark.parametrize(("values", "where"), [
    ({"recipients": [{"kind": "http", "name": "a", "url": "ftp://x"}]}, "url"),
    ({"recipients": [{"kind": "tenant", "name": "a"}, {"kind": "tenant", "name": "a"}]}, "share a name"),
    ({"choices": {"services": [{"code": "web", "vi": "W", "en": "W"}, {"code": "web", "vi": "X", "en": "X"}]}},
     "services: two choices share a code"),
    ({"choices": {"services": []}}, "services"),
    ({"recipient": []}, "recipient"),
    ({"forwarding": {"attempts": 0}}, "attempts"),
])
def test_mistakes_are_refused_naming_the_key(values: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ReportSettings.model_validate(values)
    assert where in str(caught.value)
