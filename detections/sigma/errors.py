"""The one error of the Sigma stage: a rule that cannot be loaded, compiled or run.

Loading never stops at a bad rule: `load_rules` turns every problem into a `RuleError` naming the
file, the line (from the YAML node marks) and the reason, skips that rule and loads the rest, so
`govsoc rules check` reports everything in one run.
"""

from __future__ import annotations

from config.errors import GovsocError


class RuleError(GovsocError):
    """A Sigma rule (or rule file) that is skipped; `location` points into its YAML."""
