"""Declared once: each option set, match condition, scan-list format and output format is declared in one place,
and these tests find every signature and command that must follow it - a new one a command forgets, or an
API signature that drifts from its declaration, fails here rather than in a user's hands."""

import inspect
from dataclasses import fields

import click
import pytest

from fmriprep_cleanup import api
from fmriprep_cleanup.basics.scanformats import FORMATS, detect_format
from fmriprep_cleanup.cli import cli
from fmriprep_cleanup.energy.overrides import EnergyOverrides
from fmriprep_cleanup.plan.options import CleanOptions, PlanOptions
from fmriprep_cleanup.report.outputs import AUDIT, HISTORY, PLAN_FORMATS, REPORT, STATUS
from fmriprep_cleanup.rules.model import LABELS, Match

# The commands that open a dataset's plan: each offers every flag PlanOptions declares. Any other command with
# a PATH argument must be named in NOT_A_PLAN, so a new command is sorted into one or the other on purpose.
PLAN_COMMANDS = {"report", "plan", "status", "explain", "regenerate", "clean"}
NOT_A_PLAN = {"journals list", "journals discard", "journals finish"}  # a dataset's state folder, not its files
FORMATS_OF = {"report": REPORT.names(), "merge": REPORT.names() + list(PLAN_FORMATS), "audit": AUDIT.names(),
              "status": STATUS.names(), "history": HISTORY.names(), "plan": list(PLAN_FORMATS)}


def commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def flags_of(command: click.Command) -> set[str]:
    return {spelling for param in command.params for spelling in param.opts}


def declared_flags(options: type) -> set[str]:
    return {spelling for item in fields(options) if item.metadata["flag"] for spelling in
            item.metadata["flag"].spellings()}


def parameters(function) -> dict[str, object]:
    return {name: param.default for name, param in inspect.signature(function).parameters.items()}


def defaults(options: type, recorded_only: bool = False) -> dict[str, object]:
    return {item.name: item.default for item in fields(options) if item.metadata["recorded"] or not recorded_only}


def test_the_python_calls_take_exactly_the_declared_options_with_the_declared_defaults():
    """api.open_plan and api.plan_options keep readable, typed keyword signatures; they must say what PlanOptions
    declares (plan_options: what a shard records), and api.energy_model what EnergyOverrides declares."""
    assert parameters(api.open_plan) == {**defaults(PlanOptions), "path": inspect.Parameter.empty}
    assert parameters(api.plan_options) == {**defaults(PlanOptions, recorded_only=True),
                                            "path": inspect.Parameter.empty}
    energy = parameters(api.energy_model)
    assert energy.pop("ruleset") is inspect.Parameter.empty and energy == defaults(EnergyOverrides)


def test_the_signature_check_sees_a_drift():
    def drifted(path, rules=(), work_dir=None):  # an option forgotten
        return None
    assert parameters(drifted) != {**defaults(PlanOptions), "path": inspect.Parameter.empty}


def test_every_command_that_opens_a_plan_offers_every_declared_plan_flag():
    found = commands()
    with_path = {name for name, command in found.items() if any(param.name == "path" for param in command.params)}
    assert with_path == PLAN_COMMANDS | NOT_A_PLAN, "sort the new command into PLAN_COMMANDS or NOT_A_PLAN"
    for name in PLAN_COMMANDS:
        missing = declared_flags(PlanOptions) - flags_of(found[name])
        assert not missing, f"{name} does not offer {sorted(missing)}"
    assert declared_flags(CleanOptions) <= flags_of(found["clean"])


def test_every_command_with_an_energy_model_offers_every_override():
    found = commands()
    for name in ("report", "merge", "audit"):
        assert declared_flags(EnergyOverrides) <= flags_of(found[name]), name


@pytest.mark.parametrize("name", sorted(FORMATS_OF))
def test_each_command_offers_every_output_format_of_its_kind(name):
    """A format registered in report/outputs.py is offered by every command that shows that kind of result."""
    command = commands()[name]
    (option,) = [param for param in command.params if "--format" in param.opts]
    assert isinstance(option.type, click.Choice)
    assert sorted(option.type.choices) == sorted(set(FORMATS_OF[name]))


@pytest.mark.parametrize("kind", [REPORT, AUDIT, STATUS, HISTORY], ids=["report", "audit", "status", "history"])
def test_a_format_not_registered_is_refused_by_the_registry(kind):
    with pytest.raises(ValueError, match="unknown format 'yaml'"):
        kind.render("yaml", {})


def test_every_scan_format_is_offered_wherever_a_scan_list_is_read_and_detected_from_its_first_bytes():
    found = commands()
    readers = [name for name, command in found.items() if "--from-scan" in flags_of(command)]
    assert set(readers) >= PLAN_COMMANDS | {"audit"}
    for name in readers:
        (option,) = [param for param in found[name].params if "--scan-format" in param.opts]
        assert sorted(option.type.choices) == sorted(FORMATS), name
    heads = {"ncdu": b'[1,2,{"progname":"ncdu"},\n[{"name":"/data"}', "gdu": b'[1, 2, {"progname": "gdu"}, [',
             "find": b"d 4096 8 1700000000.0 2049 12 3 /data\0f 10 8 1700000000.0 2049 13 1 /data/a\0",
             "find-links": b"d 4096 8 1700000000.0 2049 12 3 /data\0\0l 10 8 1700000000.0 2049 13 1 /data/a\0"
                           b".git/annex/objects/x/y/MD5E-s5--0.nii/MD5E-s5--0.nii\0f 1 8 1700000000.0 2049 14 1 /data/b\0",
             "gpfs": b"12 0 0  10 16 1700000000 0100644 1 -- /data/a\n"}
    assert {name: detect_format(head) for name, head in heads.items()} == {
        "ncdu": "ncdu", "gdu": "ncdu", "find": "find", "find-links": "find-links", "gpfs": "gpfs"}
    assert set(FORMATS) == {detect_format(head) for head in heads.values()}  # a new format brings its sample


def test_every_match_condition_declares_whether_it_tells_labels_apart():
    """The decision memo reuses one subject's decisions for another only when no condition of a rule can tell
    their labels apart: a condition that does not say would make that reuse silently wrong."""
    undeclared = [item.name for item in fields(Match) if LABELS not in item.metadata]
    assert not undeclared
    assert Match(subjects=object()).tells_labels_apart  # type: ignore[arg-type]
    assert not Match(scopes=frozenset({"derivatives"})).tells_labels_apart
    assert Match(globs=("sub-01/**",)).tells_labels_apart and not Match(globs=("**/*.h5",)).tells_labels_apart


def test_every_mode_has_its_words_its_action_and_every_command_that_takes_a_clean_mode_offers_it():
    """A new mode is a Mode member, its MODE_WORDS and its act/clean.ACTIONS entry: forgetting one fails here."""
    from fmriprep_cleanup.act.clean import ACTIONS
    from fmriprep_cleanup.ops.policy import MODES
    from fmriprep_cleanup.plan.options import MODE_WORDS, Mode

    assert set(MODE_WORDS) == set(Mode)
    assert set(ACTIONS) == {mode for mode in Mode if MODE_WORDS[mode].changes_files}
    found = commands()
    for name, flag in (("clean", "--mode"), ("schedule slurm-array", "--clean"), ("schedule print", "--clean")):
        (option,) = [param for param in found[name].params if flag in param.opts]
        assert sorted(option.type.choices) == sorted(Mode.values()), name
    assert sorted(MODES) == sorted(Mode.values())  # a policy's mode
