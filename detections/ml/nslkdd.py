"""NSL-KDD CSV -> labelled feature matrices: the tabular adapter for the public benchmark.

Stage: evaluation input only (tests, bench/ml_nslkdd.py); the product's own rows come from features.py.
In: the headerless CSVs of NSL-KDD (41 features, the label, a difficulty score). Out: `NslKdd`, a
float matrix whose columns are the 38 numeric features followed by one-hot protocol, service and flag.

Invariants:
- The one-hot columns come from an `NslKddEncoder` fitted on the training file only; a category
  unseen in training is all zeros, so the test matrices have the training columns in training order.
- Attack names map to DoS, Probe, R2L, U2R as in the data set's documentation; an unknown attack
  name is "unknown", never dropped.
- A malformed line raises `ModelError` with its file and line number (the files are fixed data).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from config.errors import SourceLocation
from detections.ml.models import ModelError

COLUMNS = (
    "duration", "protocol_type", "service", "flag", "src_bytes", "dst_bytes", "land", "wrong_fragment", "urgent",
    "hot", "num_failed_logins", "logged_in", "num_compromised", "root_shell", "su_attempted", "num_root",
    "num_file_creations", "num_shells", "num_access_files", "num_outbound_cmds", "is_host_login",
    "is_guest_login", "count", "srv_count", "serror_rate", "srv_serror_rate", "rerror_rate", "srv_rerror_rate",
    "same_srv_rate", "diff_srv_rate", "srv_diff_host_rate", "dst_host_count", "dst_host_srv_count",
    "dst_host_same_srv_rate", "dst_host_diff_srv_rate", "dst_host_same_src_port_rate",
    "dst_host_srv_diff_host_rate", "dst_host_serror_rate", "dst_host_srv_serror_rate", "dst_host_rerror_rate",
    "dst_host_srv_rerror_rate",
)
CATEGORICAL = ("protocol_type", "service", "flag")
NUMERIC = tuple(c for c in COLUMNS if c not in CATEGORICAL)

ATTACK_CATEGORIES: dict[str, str] = {
    **dict.fromkeys(("back", "land", "neptune", "pod", "smurf", "teardrop", "apache2", "mailbomb",
                     "processtable", "udpstorm"), "DoS"),
    **dict.fromkeys(("ipsweep", "nmap", "portsweep", "satan", "mscan", "saint"), "Probe"),
    **dict.fromkeys(("ftp_write", "guess_passwd", "imap", "multihop", "phf", "spy", "warezclient", "warezmaster",
                     "named", "sendmail", "snmpgetattack", "snmpguess", "worm", "xlock", "xsnoop"), "R2L"),
    **dict.fromkeys(("buffer_overflow", "loadmodule", "perl", "rootkit", "httptunnel", "ps", "sqlattack",
                     "xterm"), "U2R"),
}
CATEGORY_NAMES = ("DoS", "Probe", "R2L", "U2R")


@dataclass(frozen=True, slots=True)
class RawRecords:
    """The CSV as read: numeric part, categorical part, labels and difficulty, row-aligned."""

    numeric: npt.NDArray[np.float64]
    categorical: tuple[tuple[str, str, str], ...]
    labels: tuple[str, ...]
    difficulty: npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class NslKdd:
    """An encoded split: `rows` x `feature_names`, the label per row and its category."""

    rows: npt.NDArray[np.float64]
    feature_names: tuple[str, ...]
    labels: tuple[str, ...]
    difficulty: npt.NDArray[np.int64]

    @property
    def is_attack(self) -> npt.NDArray[np.bool_]:
        return np.array([label != "normal" for label in self.labels])

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(category_of(label) for label in self.labels)


def category_of(label: str) -> str:
    """`normal`, one of `CATEGORY_NAMES`, or `unknown`."""
    return "normal" if label == "normal" else ATTACK_CATEGORIES.get(label, "unknown")


def read_records(path: Path) -> RawRecords:
    """Parse one NSL-KDD file; raises `ModelError` at the first malformed line."""
    numeric: list[list[float]] = []
    categorical: list[tuple[str, str, str]] = []
    labels: list[str] = []
    difficulty: list[int] = []
    with path.open(newline="", encoding="ascii") as handle:
        for line_no, fields in enumerate(csv.reader(handle), start=1):
            if len(fields) != len(COLUMNS) + 2:
                raise ModelError(f"expected {len(COLUMNS) + 2} fields, got {len(fields)}",
                                 SourceLocation(path=str(path), line=line_no))
            try:
                numeric.append([float(v) for i, v in enumerate(fields[:41]) if COLUMNS[i] not in CATEGORICAL])
                difficulty.append(int(fields[42]))
            except ValueError as e:
                raise ModelError(f"not a number: {e}", SourceLocation(path=str(path), line=line_no)) from e
            categorical.append((fields[1], fields[2], fields[3]))
            labels.append(fields[41])
    return RawRecords(np.asarray(numeric, dtype=np.float64), tuple(categorical), tuple(labels),
                      np.asarray(difficulty, dtype=np.int64))


class NslKddEncoder:
    """One-hot columns for protocol, service and flag, learnt from the training records."""

    def __init__(self, categories: Sequence[Sequence[str]]) -> None:
        self.categories = tuple(tuple(values) for values in categories)

    @classmethod
    def fit(cls, records: RawRecords) -> NslKddEncoder:
        return cls([sorted({row[i] for row in records.categorical}) for i in range(len(CATEGORICAL))])

    @property
    def feature_names(self) -> tuple[str, ...]:
        one_hot = [f"{name}={value}" for name, values in zip(CATEGORICAL, self.categories, strict=True)
                   for value in values]
        return NUMERIC + tuple(one_hot)

    def encode(self, records: RawRecords) -> NslKdd:
        index = [{value: i for i, value in enumerate(values)} for values in self.categories]
        offsets = np.cumsum([0] + [len(values) for values in self.categories])
        one_hot = np.zeros((len(records.labels), int(offsets[-1])), dtype=np.float64)
        for row, values in enumerate(records.categorical):
            for part, value in enumerate(values):
                column = index[part].get(value)
                if column is not None:
                    one_hot[row, offsets[part] + column] = 1.0
        return NslKdd(np.hstack([records.numeric, one_hot]), self.feature_names, records.labels,
                      records.difficulty)


def load_splits(data_dir: Path) -> tuple[NslKdd, dict[str, NslKdd]]:
    """(KDDTrain+_20Percent, {"KDDTest+": ..., "KDDTest-21": ...}) encoded with the training categories."""
    train_raw = read_records(data_dir / "KDDTrain+_20Percent.txt")
    encoder = NslKddEncoder.fit(train_raw)
    tests = {name: encoder.encode(read_records(data_dir / f"{name}.txt")) for name in ("KDDTest+", "KDDTest-21")}
    return encoder.encode(train_raw), tests
