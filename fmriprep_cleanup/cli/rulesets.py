"""The rules command group: list the shipped rule sets, show the rules in force, validate a rule file."""

from __future__ import annotations

import click

from .common import CleanupGroup, terminal_width, wide_option


# The rule commands call the rules stage directly (the same functions api.rule_sets and api.load_rules are), so
# that they start without importing the acting layer.
@click.group(cls=CleanupGroup)
def rules() -> None:
    """List, show and validate rule sets."""


@rules.command("list")
@wide_option
def rules_list(wide: bool) -> None:
    """The shipped rule sets and who each is for.

    \b
    Examples:
      fmriprep-cleanup rules list
      fmriprep-cleanup rules show volume-only
    """
    from ..api.reading import rule_sets as shipped_rulesets
    from ..report.text import render_ruleset_list

    click.echo(render_ruleset_list(shipped_rulesets(), terminal_width(wide)), nl=False)


@rules.command("show")
@click.argument("name")
@wide_option
def rules_show(name: str, wide: bool) -> None:
    """The rules in force for NAME (a shipped set or a file), in the order they apply.

    \b
    Examples:
      fmriprep-cleanup rules show default
      fmriprep-cleanup rules show ./lab-rules.yaml --wide
    """
    from ..api.reading import load_rules
    from ..report.text import render_ruleset

    click.echo(render_ruleset(load_rules([name]), terminal_width(wide)), nl=False)


@rules.command("validate")
@click.argument("file", type=click.Path(path_type=str))
def rules_validate(file: str) -> None:
    """Check a rule file (and what it extends); exit 2 with every problem listed.

    \b
    Examples:
      fmriprep-cleanup rules validate lab-rules.yaml
      fmriprep-cleanup report OUT --rules lab-rules.yaml
    """
    from ..api.reading import load_rules

    ruleset = load_rules([file])
    chain = f" (with {', '.join(ruleset.names[1:])})" if len(ruleset.names) > 1 else ""
    click.echo(f"{file}: OK, {len(ruleset.rules)} rules{chain}")
