"""Loading playbooks: a good one, each kind of bad one with its line and field, the shipped library."""

from __future__ import annotations

import textwrap
from pathlib import Path

import orjson
import pytest
import typer
from typer.testing import CliRunner

from api.cli.playbooks import playbooks_app
from playbooks import LIBRARY, PlaybookError, load_playbook_text, load_playbooks
from playbooks.model import ContainStep

cli = typer.Typer()
cli.add_typer(playbooks_app, name="playbooks")

GOOD = """\
id: block-brute-force
name: Block brute force
trigger:
  tags: [attack.t1110]
  min_severity: high
steps:
  - id: enrich
    type: enrich
  - id: ask
    type: approval
    roles: [admin]
  - id: block
    type: contain
    connector: http
    action: block_address
    target: "${entity.source.address}"
"""


def errors_of(tmp_path: Path, text: str) -> list[PlaybookError]:
    file = tmp_path / "p.yml"
    file.write_text(textwrap.dedent(text))
    playbooks, errors = load_playbooks([tmp_path])
    assert not playbooks
    return errors


def test_a_good_playbook_loads_with_typed_steps(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    playbooks, errors = load_playbooks([tmp_path])
    assert errors == []
    [playbook] = playbooks
    assert [s.type for s in playbook.steps] == ["enrich", "approval", "contain"]
    block = playbook.steps[2]
    assert isinstance(block, ContainStep) and block.requires_approval and not block.automatic
    assert not playbook.steps[0].requires_approval


def test_an_unknown_step_type_names_its_line(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("type: enrich", "type: enrichh"))
    assert error.location is not None and error.location.line == 8
    assert error.location.field == "steps[0].type"
    assert "unknown step type 'enrichh'" in error.reason
    assert str(error).startswith(f"{tmp_path / 'p.yml'}:8:")


def test_a_missing_field_points_at_its_step(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("    action: block_address\n", ""))
    assert error.location is not None
    assert (error.location.line, error.location.field) == (12, "steps[2].action")
    assert error.reason == "missing field 'action'"


def test_an_unknown_key_is_refused_at_its_line(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("    roles: [admin]\n", "    roles: [admin]\n    rolez: [x]\n"))
    assert error.location is not None
    assert (error.location.line, error.location.field) == (12, "steps[1].rolez")


def test_automatic_is_refused_on_a_step_without_side_effects(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("    type: enrich\n", "    type: enrich\n    automatic: true\n"))
    assert error.location is not None and error.location.line == 9
    assert "only on side-effect steps" in error.reason


def test_a_side_effect_without_approval_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: ask\n    type: approval\n    roles: [admin]\n", "")
    [error] = errors_of(tmp_path, text)
    assert error.location is not None
    assert (error.location.line, error.location.field) == (10, "steps[1].type")
    assert "approval" in error.reason


def test_an_automatic_side_effect_needs_no_approval(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: ask\n    type: approval\n    roles: [admin]\n", "")
    (tmp_path / "p.yml").write_text(text + "    automatic: true\n")
    playbooks, errors = load_playbooks([tmp_path])
    assert errors == [] and not playbooks[0].steps[1].requires_approval


def test_a_branch_that_skips_the_approval_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: ask\n", """\
  - id: skip
    type: branch
    on_step: enrich
    key: severity
    equals: low
    then: block
  - id: ask
""")
    [error] = errors_of(tmp_path, text)
    assert error.location is not None and error.location.field == "steps[3].type"
    assert error.location.line == 19


def test_a_branch_to_an_unknown_step_names_the_key(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: ask\n", """\
  - id: jump
    type: branch
    on_step: enrich
    key: severity
    equals: low
    then: nowhere
  - id: ask
""")
    [error] = errors_of(tmp_path, text)
    assert error.location is not None
    assert (error.location.line, error.location.field) == (14, "steps[1].then")
    assert error.reason == "unknown step 'nowhere'"


def test_a_branch_cycle_is_refused_at_the_jump_back(tmp_path: Path) -> None:
    text = GOOD + textwrap.indent(textwrap.dedent("""\
        - id: again
          type: branch
          on_step: block
          key: status
          equals: 500
          then: ask
        """), "  ")
    [error] = errors_of(tmp_path, text)
    assert error.location is not None
    assert (error.location.line, error.location.field) == (22, "steps[3].then")
    assert error.reason.startswith("branch cycle: ask -> block -> again -> ask")


def test_a_branch_on_a_later_step_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace("  - id: ask\n", """\
  - id: early
    type: branch
    on_step: block
    key: status
    equals: 200
    then: ask
  - id: ask
""")
    [error] = errors_of(tmp_path, text)
    assert error.location is not None and error.location.field == "steps[1].on_step"
    assert error.location.line == 11


def test_a_duplicate_key_names_both_lines(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("name: Block brute force\n", "name: A\nname: B\n"))
    assert error.location is not None and error.location.line == 3
    assert error.reason == "duplicate key 'name' (first at line 2)"


def test_a_key_yaml_reads_as_a_boolean_is_refused(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("    roles: [admin]\n", "    roles: [admin]\n    on: enrich\n"))
    assert error.location is not None
    assert (error.location.line, error.location.field) == (12, "steps[1].on")
    assert error.reason == "key 'on' is not text to YAML (it reads as bool); quote it"


def test_invalid_yaml_names_its_line(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, GOOD.replace("roles: [admin]", "roles: [admin"))
    assert error.location is not None and error.location.line is not None and error.location.line >= 11
    assert error.reason.startswith("invalid YAML")


def test_yaml_tags_beyond_safe_loading_are_refused(tmp_path: Path) -> None:
    [error] = errors_of(tmp_path, "id: !!python/object/apply:os.system ['true']\nname: x\nsteps: []\n")
    assert error.reason.startswith("invalid YAML") and error.location is not None and error.location.line == 1


def test_every_file_is_reported_in_one_pass(tmp_path: Path) -> None:
    (tmp_path / "a.yml").write_text(GOOD.replace("type: enrich", "type: nope"))
    (tmp_path / "b.yml").write_text(GOOD.replace("id: block-brute-force", "id: other"))
    (tmp_path / "c.yml").write_text(GOOD.replace("    action: block_address\n", ""))
    playbooks, errors = load_playbooks([tmp_path])
    assert [p.id for p in playbooks] == ["other"]
    assert sorted(e.location.path or "" for e in errors if e.location) == [str(tmp_path / "a.yml"),
                                                                          str(tmp_path / "c.yml")]


def test_load_playbook_text_raises_the_first_error() -> None:
    with pytest.raises(PlaybookError, match="missing field 'steps'"):
        load_playbook_text("id: x\nname: y\n", "inline.yml")


def test_the_shipped_library_loads_cleanly() -> None:
    playbooks, errors = load_playbooks([LIBRARY])
    assert errors == []
    assert {p.id for p in playbooks} >= {"brute-force-login", "malware-execution", "internal-port-scan",
                                         "data-exfiltration-anomaly", "indicator-across-agencies"}
    for playbook in playbooks:
        assert any(s.type == "enrich" for s in playbook.steps)
        assert any(s.type == "comment" for s in playbook.steps)
        assert any(s.type == "contain" and getattr(s, "connector", "") == "http" for s in playbook.steps)


def test_cli_check_lists_errors_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yml").write_text(GOOD.replace("type: enrich", "type: nope"))
    result = CliRunner().invoke(cli, ["playbooks", "check", str(tmp_path)])
    assert result.exit_code == 1
    assert f"{tmp_path / 'bad.yml'}:8:5 steps[0].type: unknown step type 'nope'" in result.stdout
    ok = CliRunner().invoke(cli, ["playbooks", "check", str(LIBRARY)])
    assert ok.exit_code == 0 and "error(s)" in ok.stdout and " 0 error(s)" in ok.stdout


def test_cli_check_without_paths_checks_the_configured_playbooks(tmp_path: Path) -> None:
    """What the `playbooks` worker would load: the shipped library plus `playbooks.playbook_dirs`."""
    own = tmp_path / "own"
    own.mkdir()
    (own / "bad.yml").write_text(GOOD.replace("type: enrich", "type: nope"))
    config = tmp_path / "govsoc.yaml"
    default = (Path(__file__).parents[2] / "config" / "default.yaml").read_text()
    config.write_text(default.replace("  playbook_dirs: []", f"  playbook_dirs: [{own}]"))
    result = CliRunner().invoke(cli, ["playbooks", "check", "--config", str(config), "--json"])
    assert result.exit_code == 1, result.output
    report = orjson.loads(result.stdout)
    assert "brute-force-login" in report["ids"]  # the shipped library
    assert [e["location"].split(":")[0] for e in report["errors"]] == [str(own / "bad.yml")]


def test_only_side_effect_steps_require_approval() -> None:
    playbook = load_playbook_text(GOOD)
    assert {s.type for s in playbook.steps if s.requires_approval} == {"contain"}
    assert all(s.is_side_effect == (s.type in {"notify_webhook", "contain"}) for s in playbook.steps)


NEW_STEPS = """\
id: new-steps
name: New steps
steps:
  - id: facts
    type: enrich
    sources: [incident, intel]
  - id: related
    type: query
    fields: [source.ip]
    before: 2h
  - id: hunt
    type: hunt_indicators
  - id: ask
    type: approval
    roles: [analyst, national_coordinator]
    levels: [tenant, parent]
  - id: mail
    type: notify_email
    connector: mail
    to_tenants_of: hunt
    subject: "Indicator ${incident.id}"
    body: "Seen at ${steps.hunt.tenants}"
    retries: 2
    timeout_s: 15
"""


@pytest.mark.parametrize(("old", "new", "line", "field", "reason"), [
    ("    roles: [analyst, national_coordinator]\n", "    roles: [analyst, soc_lead]\n", 15, "steps[3].roles[1]",
     "Input should be 'analyst', 'admin' or 'national_coordinator'"),
    ("    levels: [tenant, parent]\n", "    levels: [tenant, tenant]\n", 13, "steps[3]",
     "each approval level is named once"),
    ("    fields: [source.ip]\n", "    fields: [source.ip]\n    rule: some-rule\n", 7, "steps[1]",
     "a query names a Sigma `rule` or entity `fields`, not both"),
    ("    before: 2h\n", "    before: 2 hours\n", 10, "steps[1].before", "String should match pattern"),
    ("    to_tenants_of: hunt\n", "    to_tenants_of: related\n", 20, "steps[4].to_tenants_of",
     "'related' is not a hunt_indicators step before this one"),
    ("    to_tenants_of: hunt\n", "", 17, "steps[4]", "a mail needs `to` addresses or `to_tenants_of`"),
    ("    subject: \"Indicator ${incident.id}\"\n", "", 17, "steps[4].subject", "missing field 'subject'"),
    ("    retries: 2\n", "    retries: 20\n", 23, "steps[4].retries", "less than or equal to 10"),
    ("    type: hunt_indicators\n", "    type: hunt_indicators\n    timeout_s: 5\n", 13, "steps[2].timeout_s",
     "'timeout_s' is allowed only on side-effect steps (notify_webhook, notify_email, contain)"),
    ("    retries: 2\n", "    retries: 2\n    password: hunter2\n", 24, "steps[4].password",
     "'password' does not belong in a playbook: credentials live in the connector's credentials_file"),
    ("    connector: mail\n", "    connector: mail\n    to: [not-an-address]\n", 20, "steps[4].to[0]",
     "String should match pattern"),
])
def test_the_new_steps_errors_name_file_line_and_field(tmp_path: Path, old: str, new: str, line: int, field: str,
                                                        reason: str) -> None:
    assert old in NEW_STEPS
    [error] = errors_of(tmp_path, NEW_STEPS.replace(old, new))
    assert error.location is not None and error.location.path == str(tmp_path / "p.yml")
    assert (error.location.line, error.location.field) == (line, field)
    assert reason in error.reason


def test_the_new_steps_load_and_a_mail_needs_approval_unless_automatic(tmp_path: Path) -> None:
    playbook = load_playbook_text(NEW_STEPS)
    assert [s.type for s in playbook.steps] == ["enrich", "query", "hunt_indicators", "approval", "notify_email"]
    [error] = errors_of(tmp_path, NEW_STEPS.replace("""  - id: ask
    type: approval
    roles: [analyst, national_coordinator]
    levels: [tenant, parent]
""", ""))
    assert error.location is not None and (error.location.line, error.location.field) == (14, "steps[3].type")
    assert "notify_email changes something outside govsoc" in error.reason
    automatic = NEW_STEPS.replace("    retries: 2\n", "    retries: 2\n    automatic: true\n").replace(
        """  - id: ask
    type: approval
    roles: [analyst, national_coordinator]
    levels: [tenant, parent]
""", "")
    assert load_playbook_text(automatic).steps[-1].requires_approval is False
