"""The rule model: what a rule set is once loaded - ordered rules, each a Match (scope, BIDS entities, paths,
sizes, ages, run statuses) and a decision (keep or junk, a category, why) - and how a match is tested against a
file, or decided for a whole folder at once. rulesets.py loads and validates the YAML; classify.py applies it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any, Protocol

import yaml

from ..basics.errors import CleanupError
from .globs import Matcher, folder_glob_to_regex, glob_to_regex, sees_labels

ACTIONS = ("keep", "junk")
SCOPES = ("derivatives", "freesurfer", "workdir", "other")
NO_SUBJECT = "none"  # the subject_status of files that belong to no subject
DEFAULT_CATEGORY = "unmatched"
DEFAULT_RULE_ID = "default"


class SubjectState(Protocol):
    """The file's subject: its run status and whether its cache is stale (fmriprep.status.RunState)."""

    @property
    def status(self) -> str: ...

    @property
    def stale(self) -> bool: ...


class FileFacts(Protocol):
    """What rules can ask about one file (classify.FileFacts provides it lazily)."""

    scope: str
    name: str
    size: int
    mtime: float
    subject: str | None

    @property
    def state(self) -> SubjectState: ...

    def present_statuses(self) -> frozenset[str]: ...

    @property
    def relpath(self) -> str: ...

    @property
    def entities(self) -> dict[str, str | int]: ...

    def entity(self, name: str) -> str | int | None: ...


@dataclass(frozen=True)
class ValueSet:
    """Any-of values for one entity: exact values plus shell-style wildcards."""

    exact: frozenset
    patterns: tuple[Matcher, ...] = ()

    def contains(self, value: str | int | None) -> bool:
        if value is None:
            return False
        if value in self.exact:
            return True
        text = str(value)
        return any(pattern.match(text) for pattern in self.patterns)


def _never(value: Any) -> bool:
    return False


def _always(value: Any) -> bool:
    return True


def _globs_see_labels(globs: tuple[str, ...]) -> bool:
    return any(sees_labels(glob) for glob in globs)


def _names_subject_or_session(entities: tuple[tuple[str, ValueSet], ...]) -> bool:
    return any(name in ("subject", "session") for name, _ in entities)


def _negation_tells_labels_apart(negations: tuple[Match, ...]) -> bool:
    return any(negation.tells_labels_apart for negation in negations)


LABELS = "tells_labels_apart"  # what every condition of a Match declares: see Match.tells_labels_apart


def condition(default: Any, tells_labels_apart: Callable[[Any], bool]) -> Any:
    """A field of Match, declared with whether, once set, it can tell apart two files that differ only in
    their subject or session label (the decision memo, plan/classifier.py, reuses one subject's decisions for
    the next wherever no condition can). A statuses condition cannot: the memo's key holds the subject's state."""
    return field(default=default, metadata={LABELS: tells_labels_apart})


@dataclass(frozen=True)
class Match:
    """All-of conditions; each list inside is any-of. An empty Match matches every file."""

    scopes: frozenset[str] | None = condition(None, _never)
    paths: tuple[Matcher, ...] = condition((), _never)  # what they can see is said by `globs`
    folder_paths: tuple[Matcher, ...] = condition((), _never)  # the globs of `paths` ending in /**, as folders
    name_paths: bool = condition(False, _never)  # some glob of `paths` needs each file's name
    globs: tuple[str, ...] = condition((), _globs_see_labels)  # `paths` as written
    subjects: ValueSet | None = condition(None, _always)
    entities: tuple[tuple[str, ValueSet], ...] = condition((), _names_subject_or_session)
    min_size: int | None = condition(None, _always)
    max_size: int | None = condition(None, _always)
    min_age: float | None = condition(None, _always)
    max_age: float | None = condition(None, _always)
    negations: tuple[Match, ...] = condition((), _negation_tells_labels_apart)
    statuses: frozenset[str] | None = condition(None, _never)  # subject_status: the file's subject's run status
    any_statuses: frozenset[str] | None = condition(None, _never)  # any_subject_status: some subject has it
    stale: bool | None = condition(None, _never)  # stale: the file's subject idle longer than stale_after (or not)

    def conditions(self) -> list[tuple[Field[Any], Any]]:
        """The conditions this match sets (a field away from its default), with their values."""
        return [(item, value) for item in fields(self) if (value := getattr(self, item.name)) != item.default]

    @property
    def scope_only(self) -> bool:
        """True when only the scope decides, so a whole folder shares one answer."""
        return all(item.name == "scopes" for item, _ in self.conditions())

    def may_match_scope(self, scope: str) -> bool:
        """False when no file of this scope can match (entities exist only for derivatives)."""
        if self.scopes is not None and scope not in self.scopes:
            return False
        return not (self.entities and scope != "derivatives")

    @property
    def tells_labels_apart(self) -> bool:
        """True if two files differing only in their subject or session label could get different answers: a
        subject condition, a session value, a glob that can see a label (globs.sees_labels), a size or an age
        (each condition declares it: see ``condition``)."""
        return any(item.metadata[LABELS](value) for item, value in self.conditions())

    @property
    def uses_status(self) -> bool:
        return bool(self.statuses or self.any_statuses or self.stale is not None
                    or any(n.uses_status for n in self.negations))

    @property
    def uses_any_status(self) -> bool:
        return bool(self.any_statuses or any(n.uses_any_status for n in self.negations))

    def folder_verdict(self, scope: str, folder: str, state: SubjectState | None = None,
                       present: Callable[[], frozenset[str]] = frozenset) -> bool | None:
        """For the files directly in ``folder`` (relative to the scope's root): True if every one
        matches, False if none can, None if it depends on each file. ``state`` is the run state of
        the folder's subject (None when its files belong to different subjects); ``present()`` the
        statuses some subject of the dataset has, asked last: it needs every subject judged."""
        if not self.may_match_scope(scope):
            return False
        verdict: bool | None = True
        if self.statuses is not None or self.stale is not None:
            if state is None:
                verdict = None
            elif (self.statuses is not None and state.status not in self.statuses) or (
                    self.stale is not None and state.stale != self.stale):
                return False
        if self.paths:
            if any(pattern.match(folder) for pattern in self.folder_paths):
                pass  # the path condition holds for every file here
            elif self.name_paths:
                verdict = None
            else:
                return False
        if (self.entities or self.subjects or self.min_size is not None or self.max_size is not None
                or self.min_age is not None or self.max_age is not None):
            verdict = None
        if self.any_statuses is not None and not self.any_statuses & present():
            return False
        for negation in self.negations:
            negated = negation.folder_verdict(scope, folder, state, present)
            if negated is True:
                return False
            if negated is None:
                verdict = None
        return verdict

    def matches(self, facts: FileFacts, now: float) -> bool:
        if self.scopes is not None and facts.scope not in self.scopes:
            return False
        if self.min_size is not None and facts.size < self.min_size:
            return False
        if self.max_size is not None and facts.size > self.max_size:
            return False
        if self.min_age is not None and now - facts.mtime < self.min_age:
            return False
        if self.max_age is not None and now - facts.mtime > self.max_age:
            return False
        if self.subjects is not None and not self.subjects.contains(facts.subject):
            return False
        if self.statuses is not None and facts.state.status not in self.statuses:
            return False
        if self.stale is not None and facts.state.stale != self.stale:
            return False
        if self.paths:
            relpath = facts.relpath
            if not any(pattern.match(relpath) for pattern in self.paths):
                return False
        if self.entities:
            if facts.scope != "derivatives":
                return False
            for name, values in self.entities:
                if not values.contains(facts.entity(name)):
                    return False
        if self.any_statuses is not None and not self.any_statuses & facts.present_statuses():
            return False  # asked last: it needs every subject judged
        return not any(negation.matches(facts, now) for negation in self.negations)


@dataclass(frozen=True)
class Rule:
    id: str
    action: str
    category: str
    why: str
    match: Match
    source: str  # name of the rule set it came from
    spec: str = ""  # the match as written, on one line, for `rules show`
    guard: str | None = None  # junk only where this guard holds (regeneration); otherwise the file is kept


@dataclass(frozen=True)
class RuleSet:
    """The rules in force, in order: first match wins; ``default`` decides the rest."""

    names: tuple[str, ...]
    rules: tuple[Rule, ...]
    default: str = "keep"
    descriptions: dict[str, str] = field(default_factory=dict, compare=False)
    energy: dict[str, Any] = field(default_factory=dict, compare=False)  # energy-model overrides from the files
    stale_after: float | None = None  # seconds: a cache idle longer than this is stale (the files' stale_after)

    def with_cli_globs(self, keep: tuple[str, ...] = (), junk: tuple[str, ...] = ()) -> RuleSet:
        """Put --keep and --junk globs in front, keep before junk so keep wins."""
        extra = []
        for action, globs in (("keep", keep), ("junk", junk)):
            for number, glob in enumerate(globs, start=1):
                try:
                    pattern = glob_to_regex(glob)
                except ValueError as exc:
                    raise CleanupError(f"--{action} {glob}: {exc}") from None
                folder_pattern = folder_glob_to_regex(glob)
                extra.append(
                    Rule(
                        id=f"cli-{action}-{number}",
                        action=action,
                        category=f"{action} (--{action})",
                        why=f"matches --{action} {glob!r} given on the command line",
                        match=Match(paths=(pattern,), folder_paths=(folder_pattern,) if folder_pattern else (),
                                    name_paths=folder_pattern is None, globs=(glob,)),
                        source="command line",
                        spec=yaml.safe_dump({"path": glob}, default_flow_style=True, width=10**6).strip(),
                    )
                )
        if not extra:
            return self
        return RuleSet(self.names, tuple(extra) + self.rules, self.default, self.descriptions, self.energy,
                       self.stale_after)
