"""Classification: each file's subject, entities and the first rule that matches it.

Work is done per folder wherever it can be: the subject comes from the folder,
and the rules that cannot match a folder's scope are dropped once for it. When
the first remaining rule looks only at the scope (the whole working directory
is junk, say), every file in the folder gets its answer without per-file work.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from ..fmriprep.entities import parse_entities, parse_entity
from ..fmriprep.evidence import RunState
from ..fmriprep.layout import SUBJECT_WORKFLOW_DIR
from .model import DEFAULT_CATEGORY, DEFAULT_RULE_ID, NO_SUBJECT, Rule, RuleSet


@dataclass(frozen=True)
class Decision:
    action: str  # "keep" | "junk"
    category: str
    rule_id: str
    why: str
    source: str  # rule set the rule came from

    @classmethod
    def from_rule(cls, rule: Rule) -> Decision:
        return cls(rule.action, rule.category, rule.id, rule.why, rule.source)


# Decisions no rule set can change: what fMRIPrep did not write, what identifies the dataset or proves a
# subject's run status, and junk that must wait (see plan.py, where they are applied).
BUILT_IN = "fmriprep-cleanup"
LEFT_ALONE = Decision(
    "keep", "not fMRIPrep's (left alone)", "not-fmriprep",
    "fMRIPrep did not write this: it is in the working directory's folder (-w) but outside what fMRIPrep creates "
    "there (fmriprep_*_wf/, reportlets/, <run_uuid>/); no rule can make it junk and nothing acts on it", BUILT_IN)
IDENTITY = Decision(
    "keep", "dataset description (never junk)", "dataset-description",
    "dataset_description.json says what this dataset is; without it neither this tool nor a BIDS App recognises "
    "fMRIPrep's output", BUILT_IN)
EVIDENCE = Decision(
    "keep", "run evidence (kept while its working directory exists)", "run-evidence",
    "the subject's run status rests on this file (its report, the newest run's config and crash files, or "
    "FreeSurfer's markers) and its working directory still exists: deleting it would change the status and "
    "expose that cache", BUILT_IN)
GIT_OWN = Decision(
    "keep", "git's own file (never junk)", "git-own",
    "git or DataLad keeps this file (.gitattributes, .gitignore, .gitmodules, .noannex...): without it the "
    "repository is not what its history says, whatever a rule set says", BUILT_IN)
HELD_RUNNING = Decision(
    "keep", "held back: subject still running", "held-back-running",
    "junk by the rules, but its subject's fMRIPrep run is still going (status running): nothing of a running "
    "subject is touched", BUILT_IN)
HELD_SHARED = Decision(
    "keep", "held back: a subject is running", "held-back-shared",
    "junk by the rules, but shared by every subject (FreeSurfer's template copies, shared working-directory "
    "files) and some subject is running", BUILT_IN)
HELD_RECENT = Decision(
    "keep", "held back: modified within --min-age", "held-back-recent",
    "junk by the rules, but modified within --min-age: it may still be in use", BUILT_IN)


def subject_parts(scope: str) -> int:
    """How many leading parts of a folder's path say whose it is (``subject_of_folder`` reads no further): every
    folder below that depth is its parent's subject's."""
    return 2 if scope == "workdir" else 1


def subject_of_folder(scope: str, relpath: str) -> str | None:
    """The subject a folder belongs to, from fMRIPrep's folder names for that scope."""
    if not relpath:
        return None
    parts = relpath.split("/", 2)
    if scope == "workdir":
        # fmriprep_23_2_wf/sub_01_wf/..., or the workflow folder itself given as the root
        for part in parts[:subject_parts(scope)]:
            found = SUBJECT_WORKFLOW_DIR.match(part)
            if found:
                return found.group(1) or found.group(2)
        return None
    first = parts[0]
    if first.startswith("sub-") and len(first) > 4:
        return first[4:]
    return None


def subject_of_root_file(name: str) -> str | None:
    """``sub-01.html`` (the subject's report) sits beside the subject folders."""
    if name.startswith("sub-"):
        label = name[4:].split(".", 1)[0].split("_", 1)[0]
        return label or None
    return None


SUBJECT_LABEL = re.compile(r"(?<![a-zA-Z0-9])sub-[a-zA-Z0-9]+")
SESSION_LABEL = re.compile(r"(?<![a-zA-Z0-9])ses-[a-zA-Z0-9]+")


def path_shape(relpath: str) -> str:
    """A path with its subject and session labels blanked: sub-01/ses-2/anat/sub-01_ses-2_T1w.nii.gz and
    sub-07/ses-1/anat/sub-07_ses-1_T1w.nii.gz have the same shape."""
    return SESSION_LABEL.sub("ses-X", SUBJECT_LABEL.sub("sub-X", relpath))


def folder_labels(relpath: str) -> tuple[str, ...]:
    """The sub-<label> and ses-<label> folders of a path, which the names of its files repeat."""
    return tuple(part for part in relpath.split("/") if part.startswith(("sub-", "ses-")))


def name_shape(name: str, labels: tuple[str, ...]) -> str:
    """A file name with its folder's labels blanked (sub-01_ses-2_T1w.nii.gz -> sub-X_ses-X_T1w.nii.gz):
    the per-file half of ``path_shape``, with plain string replacement instead of a regex per file."""
    for label in labels:
        name = name.replace(label, label[:4] + "X")
    return name


UNKNOWN_STATE = RunState("unknown")  # a subject whose run status is not known


class FileFacts:
    """What rules may ask about one file; the path and entities are worked out only if asked."""

    __slots__ = ("scope", "name", "size", "mtime", "subject", "state", "_present", "_folder", "_relpath", "_entities")

    def __init__(self, scope: str, folder: str, name: str, size: int, mtime: float, subject: str | None,
                 state: RunState = UNKNOWN_STATE, present: Callable[[], frozenset[str]] = frozenset) -> None:
        self.scope = scope
        self.name = name
        self.size = size
        self.mtime = mtime
        self.subject = subject
        self.state = state  # the run status of the file's subject (see status.py), and whether it is stale
        self._present = present  # asked only by rules on any_subject_status: it needs every subject judged
        self._folder = folder
        self._relpath: str | None = None
        self._entities: dict[str, str | int | None] | None = None  # asked one by one, absent ones too

    @property
    def relpath(self) -> str:
        if self._relpath is None:
            self._relpath = f"{self._folder}/{self.name}" if self._folder else self.name
        return self._relpath

    def present_statuses(self) -> frozenset[str]:
        """The run statuses some subject of the dataset has."""
        return self._present()

    @property
    def entities(self) -> dict[str, str | int]:
        """All BIDS entities; only derivatives have BIDS names, other scopes go by path."""
        return parse_entities(self.relpath) if self.scope == "derivatives" else {}

    def entity(self, name: str) -> str | int | None:
        """One entity, parsed on first use: rules ask for a few, not all forty."""
        if self.scope != "derivatives":
            return None
        if self._entities is None:
            self._entities = {}
        if name not in self._entities:
            self._entities[name] = parse_entity(self.relpath, name)
        return self._entities[name]


NOT_ASKED = RunState("not asked")  # the state of files no rule asks it of: judging it would cost reading folders
NO_SUBJECT_STATE = RunState(NO_SUBJECT)


class Guards(Protocol):
    """Whether a guarded junk rule's file may go (regeneration.RegenerationBook): None if so, else why not."""

    def problem(self, subject: str | None, relpath: str) -> str | None: ...


class GuardsHold:
    """Every guard holds: for asking what a rule set would make junk at most (``essential_junk``)."""

    def problem(self, subject: str | None, relpath: str) -> str | None:
        return None


GUARD_KEPT_CATEGORY = "kept: cannot be regenerated"


class RunStatuses(Protocol):
    """Subjects' run statuses (status.StatusBook); judged on first question, so asked only where needed."""

    def state_of(self, label: str) -> RunState: ...

    def present(self) -> frozenset[str]: ...


@dataclass(frozen=True)
class ScopeRules:
    """The rules that can match some file of one scope, and what they look at (worked out once per scope)."""

    rules: tuple[tuple[Rule, Decision], ...]
    whole_folder: Decision | None  # the first rule looks only at the scope: one decision for every file
    uses_status: bool  # some rule reads a run status (the file's subject's or any subject's)
    uses_any_status: bool  # some rule asks whether some subject of the dataset has a status
    reads_paths: bool  # some rule looks at paths


class Classifier:
    """Applies a RuleSet: first match wins, the set's default decides the rest."""

    def __init__(self, ruleset: RuleSet, now: float, statuses: RunStatuses | None = None,
                 guards: Guards | None = None) -> None:
        self.ruleset = ruleset
        self.now = now
        self.statuses = statuses
        self.guards = guards  # None: no guard holds, every guarded rule's file is kept
        self._guard_kept: dict[tuple[str, str], Decision] = {}
        self._plans: dict[tuple, tuple[tuple[tuple[Rule, Decision], ...], Decision]] = {}  # see folder_plan
        self.default = Decision(ruleset.default, DEFAULT_CATEGORY, DEFAULT_RULE_ID, f"no rule matched; the rule set's default is {ruleset.default}", "default")
        self._scopes: dict[str, ScopeRules] = {}
        self._labels_blind = self.decisions_repeat_across_labels  # folders of one shape share a folder plan

    def scope_rules(self, scope: str) -> ScopeRules:
        found = self._scopes.get(scope)
        if found is None:
            rules = tuple(
                (rule, Decision.from_rule(rule)) for rule in self.ruleset.rules if rule.match.may_match_scope(scope)
            )
            whole_folder: Decision | None
            if not rules:
                whole_folder = self.default
            else:
                whole_folder = rules[0][1] if rules[0][0].match.scope_only and not rules[0][0].guard else None
            found = self._scopes[scope] = ScopeRules(
                rules, whole_folder,
                uses_status=any(rule.match.uses_status for rule, _ in rules),
                uses_any_status=any(rule.match.uses_any_status for rule, _ in rules),
                reads_paths=any(rule.match.paths or rule.guard for rule, _ in rules),
            )
        return found

    def rules_for_scope(self, scope: str) -> tuple[tuple[Rule, Decision], ...]:
        """The rules that can match some file of this scope, each with its decision."""
        return self.scope_rules(scope).rules

    def folder_decision(self, scope: str) -> Decision | None:
        """The decision for every file of a folder in this scope, when no per-file check is needed."""
        return self.scope_rules(scope).whole_folder

    @property
    def decisions_repeat_across_labels(self) -> bool:
        """True when no rule can tell files apart by subject or session label alone, so a decision made for
        sub-01's file holds for the same file of every other subject (see Plan.folders' memo)."""
        return not any(rule.match.tells_labels_apart or rule.guard for rule in self.ruleset.rules)

    def state_of(self, subject: str | None) -> RunState:
        if subject is None:
            return NO_SUBJECT_STATE
        return self.statuses.state_of(subject) if self.statuses is not None else UNKNOWN_STATE

    def state_for(self, scope: str, subject: str | None) -> RunState:
        """The subject's state where a rule of the scope reads it; asking may judge the subject."""
        return self.state_of(subject) if self.scope_rules(scope).uses_status else NOT_ASKED

    def present_statuses(self) -> frozenset[str]:
        """The statuses some subject has; asking judges every subject."""
        return self.statuses.present() if self.statuses is not None else frozenset()

    def folder_plan(self, scope: str, folder: str, subject: str | None = None,
                    mixed_subjects: bool = False) -> tuple[tuple[tuple[Rule, Decision], ...], Decision]:
        """The rules each file of ``folder`` must still be checked against, in order, and the decision
        for files that match none of them. Rules that cannot match here are dropped; the first rule that
        matches every file here ends the list. No rules left: one decision for the whole folder.
        Where no rule of the scope looks at paths, the plan depends only on the subject's status and is
        worked out once per status (the working directory: hundreds of thousands of folders); where no rule can
        see a label, once per status and path shape (sub-01/anat and sub-02/anat)."""
        state = None if mixed_subjects else self.state_for(scope, subject)
        scope_rules = self.scope_rules(scope)
        rules = scope_rules.rules
        cache_key: tuple | None = None
        if state is not None:
            if not scope_rules.reads_paths:
                cache_key = (scope, state)
            elif self._labels_blind:
                cache_key = (scope, state, path_shape(folder))
        if cache_key is not None and cache_key in self._plans:
            return self._plans[cache_key]
        to_check: list[tuple[Rule, Decision]] = []
        plan = None
        for rule, decision in rules:
            verdict = rule.match.folder_verdict(scope, folder, state, self.present_statuses)
            if verdict is True and rule.guard:
                verdict = None  # the guard is asked file by file (each BOLD run has its own)
            if verdict is True:
                plan = (tuple(to_check), decision)
                break
            if verdict is None:
                to_check.append((rule, decision))
        if plan is None:
            plan = (tuple(to_check), self.default)
        if cache_key is not None:
            self._plans[cache_key] = plan
        return plan

    def decide(self, facts: FileFacts, rules: tuple[tuple[Rule, Decision], ...] | None = None,
               fallback: Decision | None = None) -> Decision:
        """The first matching rule's decision; by default every rule of the file's scope is tried."""
        now = self.now
        for rule, decision in self.rules_for_scope(facts.scope) if rules is None else rules:
            if rule.match.matches(facts, now):
                return decision if not rule.guard else self._guarded(rule, decision, facts)
        return fallback or self.default

    def _guarded(self, rule: Rule, decision: Decision, facts: FileFacts) -> Decision:
        """A guarded rule's junk where its guard holds; else the file is kept, saying which guard failed."""
        problem = ("no regeneration guard was consulted" if self.guards is None
                   else self.guards.problem(facts.subject, facts.relpath))
        if problem is None:
            return decision
        kept = self._guard_kept.get((rule.id, problem))
        if kept is None:
            kept = self._guard_kept[(rule.id, problem)] = Decision(
                "keep", GUARD_KEPT_CATEGORY, rule.id,
                f"kept: {problem} (rule {rule.id} reclaims it only when it can be rebuilt: {rule.why})", rule.source)
        return kept


FINISHED_STATE = RunState("finished")
YEARS_AGO = 10 * 365 * 86400


def essential_junk(ruleset: RuleSet, examples: tuple[str, ...], now: float) -> list[tuple[str, Decision]]:
    """Which of a pipeline's essential outputs (an example path of each, in the derivatives folder) the rule set
    makes junk, judged for a subject whose run finished long ago: a set that junks these reclaims what every
    analysis needs (a ``path: "**"`` rule, ``default: junk``), and acting on it needs the person's explicit word."""
    classifier = Classifier(ruleset, now, guards=GuardsHold())  # what the set junks at most
    found = []
    for example in examples:
        folder, _, name = example.rpartition("/")
        subject = subject_of_folder("derivatives", folder) or subject_of_root_file(name)
        facts = FileFacts("derivatives", folder, name, 1 << 20, now - YEARS_AGO, subject, FINISHED_STATE,
                          lambda: frozenset({"finished"}))
        decision = classifier.decide(facts)
        if decision.action == "junk":
            found.append((example, decision))
    return found
