"""`govsoc audit verify`: recompute the audit trail's hash chain and name the first altered entry.

Exit codes: 0 the chain is intact ("ok, N entries"), 1 an entry does not fit (its seq and why,
on stdout as the finding), 2 usage or configuration error, 3 the store could not be read.
`--json` prints `{"ok", "entries", "first_bad_seq", "reason"}` instead.
"""

from __future__ import annotations

import orjson
import typer

from api.cli.common import ConfigOption, DataDirOption, ExitCode, JsonOption, fail, settings_from
from config.errors import GovsocError
from pipeline.store.base import AuditCheck
from pipeline.store.registry import open_incident_store

audit_app = typer.Typer(help="The append-only audit trail (nhật ký kiểm toán).", no_args_is_help=True)


def _verify(url: str) -> AuditCheck:
    store = open_incident_store(url)
    try:
        return store.verify_audit()
    finally:
        store.close()


@audit_app.command("verify")
def verify(config: ConfigOption = None, data_dir: DataDirOption = None, as_json: JsonOption = False) -> None:
    """Check every entry's hash and its link to the one before.

    Exit codes: 0 intact, 1 an altered, missing or reordered entry, 2 usage, 3 runtime error.
    """
    settings = settings_from(config, data_dir)
    try:
        check = _verify(settings.incidents_url)
    except GovsocError as e:
        fail(e, ExitCode.RUNTIME)
    if as_json:
        typer.echo(orjson.dumps({"ok": check.ok, "entries": check.entries, "first_bad_seq": check.first_bad_seq,
                                 "reason": check.reason}).decode())
    elif check.ok:
        typer.echo(f"ok, {check.entries} entries")
    else:
        typer.echo(f"altered: entry seq {check.first_bad_seq} of {check.entries}: {check.reason}")
    if not check.ok:
        raise typer.Exit(int(ExitCode.FINDINGS))
