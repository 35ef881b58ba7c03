"""The playbooks stage's one error type: a playbook that cannot load, or a run that cannot proceed.

`str()` reads `playbooks/x.yml:14:7 steps[2].connector: reason` when the error comes from a file,
or just the reason when it concerns a run (an approval by the wrong role, an unknown run id).
"""

from __future__ import annotations

from config.errors import GovsocError


class PlaybookError(GovsocError):
    """A playbook file is invalid, or a run was asked to do something it cannot."""
