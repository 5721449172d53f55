"""Content fingerprints of inputs, so that finished work is reused only for the same content.

A stage or job records the digest of what it read (a manifest, a tokenizer directory); started
again on an input whose content changed under the same path, it refuses or redoes the work
instead of silently keeping results made from the old one (as ``datasets`` keys its cache).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

BLOCK = 1 << 20


def file_digest(path: str | Path) -> str:
    """sha256 of a file's bytes (hex), read in blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            h.update(block)
    return h.hexdigest()


def dir_digest(path: str | Path) -> str:
    """sha256 over a directory's files (relative names and contents), hidden files left out.

    Hidden files (``.done`` records, caches) describe how a directory was made, not what it
    holds.
    """
    root = Path(path)
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if p.is_file() and not any(part.startswith(".") for part in rel.parts):
            h.update(str(rel).encode() + b"\0" + file_digest(p).encode())
    return h.hexdigest()
