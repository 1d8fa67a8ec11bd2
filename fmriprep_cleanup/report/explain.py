"""Explain one file in words: the explanation plan/explain.py made - where it sits, what its name says, its
content (annexed, stored in git) and which rule decided it."""

from __future__ import annotations

from typing import Any

import humanize

from .people import size as human_size

ACTING = {"here": "annexed: content here; junk is dropped with git annex drop, never unlinked",
          "elsewhere only": "annexed: content elsewhere only (not on this disk; git annex get fetches it): "
                            "nothing to free here",
          "stored in git": "stored in git: left in place unless clean --git-rm (which commits the removal)"}


def _stale(item: dict[str, Any]) -> str:
    """What "stale" means where it is said: idle longer than --stale-after, so its working directory is an old
    cache a rule may junk."""
    if not item["stale"]:
        return ""
    return f"; stale: idle more than {item['stale_after_days']:g} days (--stale-after), its cache counts as old"


def render_explanation(item: dict[str, Any]) -> str:
    entities = " ".join(f"{name}={value}" for name, value in item["entities"].items())
    if not entities:
        entities = "(none: not a BIDS derivative; classified by scope and path)"
    size = human_size(item["size"])
    lines = [
        item["path"],
        f"  scope     {item['scope']} ({item['root']})",
        f"  subject   {('sub-' + item['subject'] + ' (run ' + item['subject_status'] + _stale(item) + ')') if item['subject'] else '(none)'}"
        + ("" if item["selected"] else "  (not selected by --participant-label)"),
        f"  entities  {entities}",
        f"  size      {size} ({humanize.intcomma(item['size'])} bytes)" + (
            f"  {ACTING[item['content']]}" if item["content"] else
            "  symlink: removed as a link, target untouched" if item["symlink"] else ""),
        f"  decision  {item['action'].upper()} · category \"{item['category']}\" · rule {item['rule_id']} ({item['rule_set']})",
        f"  why       {item['why']}",
    ]
    return "\n".join(lines) + "\n"
