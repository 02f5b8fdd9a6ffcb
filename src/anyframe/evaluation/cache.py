"""Keys for per-model result caches: a benchmark that measures several models can keep each model's per-case
scores in a file named by this key, and read them back on a later call instead of generating again."""

from __future__ import annotations

import hashlib
from pathlib import Path


def weights_key(path: str | Path, *parts: object) -> str:
    """A 16-hex-digit key for the model folder ``path`` and whatever else the scores depend on (``parts``: the
    cases' count and seed, a sampling mode...). It hashes the folder's resolved path and every weight file's
    relative name, size and modification time, so a re-exported model is measured again."""
    path = Path(path)
    items = [str(path.resolve()), *map(str, parts)]
    for f in sorted(path.rglob("*.safetensors")):
        st = f.stat()
        items.append(f"{f.relative_to(path)}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("|".join(items).encode()).hexdigest()[:16]
