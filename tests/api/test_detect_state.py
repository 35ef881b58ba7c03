"""Detection checkpoints are signed: only state written with the deployment's key is ever unpickled."""

from __future__ import annotations

import pickle
import stat
from pathlib import Path

import pytest

from api.wiring.detect_state import DetectStateError, _dump, _restore, state_key
from detections.sigma.load import builtin_rules_dir, load_rules
from detections.sigma.match import SigmaEngine


def engine() -> SigmaEngine:
    ruleset, _ = load_rules([builtin_rules_dir()])
    return SigmaEngine(ruleset)


def test_a_checkpoint_round_trips_under_its_key(tmp_path: Path) -> None:
    key = state_key(tmp_path / "detect-state.key")
    assert stat.S_IMODE((tmp_path / "detect-state.key").stat().st_mode) == 0o600
    assert state_key(tmp_path / "detect-state.key") == key  # read back, not made again
    _restore(engine(), _dump(engine(), key), key)


def test_a_forged_or_foreign_checkpoint_is_refused_before_unpickling(tmp_path: Path) -> None:
    key = state_key(tmp_path / "a.key")

    class Boom:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this must never run",))

    forged = b"\0" * 32 + pickle.dumps((1, Boom(), 0))
    with pytest.raises(DetectStateError, match="refused unread"):
        _restore(engine(), forged, key)
    with pytest.raises(DetectStateError, match="refused unread"):
        _restore(engine(), _dump(engine(), state_key(tmp_path / "b.key")), key)
