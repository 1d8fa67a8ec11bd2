"""Basics every stage stands on: errors and exit codes, units, guarded reading of files we did not write,
exact machine formats, path containment, hashing, and the one walk over folders (lstat only, no symlink
followed). Nothing here knows about fMRIPrep."""

from __future__ import annotations

from .lazy import lazy_face

__getattr__, __dir__ = lazy_face(__name__, {
    "CleanupError": "errors", "EXIT_OK": "errors", "EXIT_USAGE": "errors", "EXIT_INCOMPLETE": "errors",
    "EXIT_FAILED": "errors", "EXIT_INTERRUPTED": "errors", "EXIT_TERMINATED": "errors",
    "csv_line": "formats", "strict_json": "formats",
    "BrokenFileError": "guarded", "load_json": "guarded", "load_toml": "guarded", "load_yaml": "guarded",
    "read_bytes": "guarded", "read_text": "guarded",
    "HashingReader": "hashing", "sha256_of_fd": "hashing", "sha256_of_link": "hashing", "sha256_of_stream": "hashing",
    "below": "paths", "inside": "paths",
    "parse_duration": "units", "parse_size": "units",
    "Directory": "folders", "Entry": "folders", "walk": "diskwalk", "walk_folder": "diskwalk", "list_folder": "folders",
    "Warnings": "warnings", "Journal": "journal_writer", "filesystem_type": "mounts", "on_network": "mounts",
})
