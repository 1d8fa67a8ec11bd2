"""Before a run removes outputs a guarded (regenerable) rule reclaims, the command that rebuilds them is written
down: into the journal, and as code/regenerate-sub-<label>.sh in the output folder, beside what stays, with the
list of the names it gives back (code/regenerate-sub-<label>.reclaimed.txt)."""

from __future__ import annotations

import os
import secrets

from ..basics.handles import open_folder_nofollow
from ..basics.journal_writer import Journal
from ..plan.plan import Plan
from ..plan.rows import PlannedFile

RECIPE_FOLDER = "code"  # BIDS's place for code in a dataset


def write_recipes(plan: Plan, files: list[PlannedFile], journal: Journal) -> list[str]:
    """For every subject with files of a guarded rule among ``files``: its recipe in the journal and in
    code/regenerate-sub-<label>.sh. Returns problems (the script could not be written: the journal has it)."""
    book = plan.regeneration()
    guarded = {rule.id for rule in plan.ruleset.rules if rule.guard}
    subjects = sorted({planned.subject for planned in files if planned.rule_id in guarded and planned.subject})
    if book is None or not subjects or not plan.dataset.derivatives:
        return []
    problems = []
    for label in subjects:
        reclaimed = tuple(planned.path for planned in files if planned.rule_id in guarded and planned.subject == label)
        recipe = book.recipe(label, reclaimed)
        script = recipe.script()
        journal.regeneration(label, recipe.command(), script)
        folder = os.path.join(plan.dataset.derivatives, RECIPE_FOLDER)
        try:
            _write_script(folder, f"regenerate-sub-{label}.sh", script)
            _write_script(folder, f"regenerate-sub-{label}.reclaimed.txt",
                          "".join(f"{name}\n" for name in recipe.files if "\n" not in name), mode=0o644)
        except OSError as exc:
            problems.append(f"could not write {RECIPE_FOLDER}/regenerate-sub-{label}.sh in "
                            f"{plan.dataset.derivatives} ({exc.strerror or exc}): the journal holds the recipe")
    return problems


def _write_script(folder: str, name: str, text: str, mode: int = 0o755) -> None:
    """Write ``name`` in ``folder`` (made if missing) whole or not at all, never through a symlink."""
    fd = open_folder_nofollow(os.path.abspath(folder), create=True)
    temporary = f".{name}.{secrets.token_hex(4)}.tmp"
    try:
        handle = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode, dir_fd=fd)
        try:
            os.write(handle, text.encode())
            os.fsync(handle)
        finally:
            os.close(handle)
        os.replace(temporary, name, src_dir_fd=fd, dst_dir_fd=fd)  # a link named so is replaced, never followed
    except OSError:
        try:
            os.unlink(temporary, dir_fd=fd)
        except OSError:
            pass
        raise
    finally:
        os.close(fd)
