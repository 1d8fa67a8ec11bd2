"""Which subjects a command looks at: BIDS Apps' --participant-label (and its opposite), and the files of no
subject."""

from __future__ import annotations

from dataclasses import dataclass


def normalize_label(label: str) -> str:
    """BIDS Apps accept participant labels with or without ``sub-``."""
    return label[4:] if label.startswith("sub-") else label


@dataclass(frozen=True)
class Selection:
    """Which files a command looks at, beyond the rules: BIDS Apps' --participant-label."""

    participant_labels: frozenset[str] | None = None
    excluded_labels: frozenset[str] = frozenset()
    shared_files: bool | None = None  # files of no subject: None = included unless labels are given

    @classmethod
    def from_labels(cls, labels: tuple[str, ...] | list[str] | None,
                    exclude: tuple[str, ...] | list[str] | None = None) -> Selection:
        labels = [normalize_label(label) for label in labels or () if label.strip()]
        excluded = frozenset(normalize_label(label) for label in exclude or () if label.strip())
        return cls(frozenset(labels) if labels else None, excluded)

    def wants(self, subject: str | None) -> bool:
        if subject is None:
            return self.participant_labels is None if self.shared_files is None else self.shared_files
        if subject in self.excluded_labels:
            return False
        return self.participant_labels is None or subject in self.participant_labels

    def selects_subjects(self) -> bool:
        """Whether some subjects are left out (a walk may then skip their folders)."""
        return self.participant_labels is not None or bool(self.excluded_labels)

    def only(self, labels: frozenset[str], shared_files: bool) -> Selection:
        """These subjects (never one this selection excludes), with or without the files of no subject."""
        return Selection(labels, self.excluded_labels, shared_files)
