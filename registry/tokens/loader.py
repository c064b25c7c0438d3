"""Loading a local Hugging Face tokenizer directory, offline (SPEC §6 ``--tokenizer PATH``).

The tokenizer is whatever ``transformers.AutoTokenizer`` makes of a local
directory (a model snapshot's ``tokenizer.json``/``tokenizer_config.json``
and friends). Loading is offline by construction: the Hub's offline switches
are set before ``transformers`` is imported and ``local_files_only`` is
passed, so a missing file is an error, never a download. Code shipped with a
tokenizer (``trust_remote_code``) is not run.

Every failure becomes a :class:`TokenizerUnavailable` whose message is one
line a command line can print as it is. This module only loads: it never
counts tokens.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

__all__ = ["EXTRA_HINT", "TOKENIZER_FILES", "TokenizerUnavailable", "load_tokenizer"]

log = logging.getLogger(__name__)

#: Files of which a tokenizer directory has at least one.
TOKENIZER_FILES: tuple[str, ...] = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "vocab.json",
    "vocab.txt",
)
EXTRA_HINT = "install the optional extra: pip install 'bench-metrics[tokenizer]'"
_EXTRA_MODULES = frozenset({"transformers", "tokenizers", "jinja2"})

# Set before transformers / huggingface_hub are imported: they read them once.
_OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": "1",
}


class TokenizerUnavailable(Exception):
    """The tokenizer cannot be used; the message is one line naming the reason."""


def check_tokenizer_dir(path: str | os.PathLike[str]) -> Path:
    """``path`` as a directory that looks like a tokenizer (cheap: no import, no load)."""
    p = Path(path)
    if not p.exists():
        raise TokenizerUnavailable(f"{p}: no such directory")
    if not p.is_dir():
        raise TokenizerUnavailable(f"{p}: not a directory (give a local tokenizer directory)")
    if not any((p / name).is_file() for name in TOKENIZER_FILES):
        raise TokenizerUnavailable(
            f"{p}: not a tokenizer directory (none of {', '.join(TOKENIZER_FILES)})"
        )
    return p


def transformers_available() -> bool:
    """Whether the optional extra is installed (without importing it)."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("transformers", "tokenizers"))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    text = text or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def load_tokenizer(path: str | os.PathLike[str]) -> Any:
    """The ``AutoTokenizer`` of local directory ``path``, loaded offline.

    ``TokenizerUnavailable`` when the path is not a tokenizer directory, the
    extra is not installed, or ``transformers`` cannot load it.
    """
    p = check_tokenizer_dir(path)
    os.environ.update(_OFFLINE_ENV)
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import transformers
    except ImportError as exc:
        raise TokenizerUnavailable(
            f"--tokenizer needs transformers ({_one_line(exc)}): {EXTRA_HINT}"
        ) from None
    transformers.logging.set_verbosity_error()
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            str(p), local_files_only=True, trust_remote_code=False
        )
    except ImportError as exc:
        # A module of the extra missing (jinja2, tokenizers) is ours to name; any other
        # (sentencepiece, protobuf for a slow tokenizer) is the tokenizer's own need.
        if getattr(exc, "name", None) in _EXTRA_MODULES:
            raise TokenizerUnavailable(f"{p}: {_one_line(exc)}: {EXTRA_HINT}") from None
        raise TokenizerUnavailable(f"{p}: not a usable tokenizer: {_one_line(exc)}") from None
    except Exception as exc:
        raise TokenizerUnavailable(f"{p}: not a usable tokenizer: {_one_line(exc)}") from None
    if not callable(getattr(tokenizer, "encode", None)):
        raise TokenizerUnavailable(f"{p}: loaded {type(tokenizer).__name__}, not a tokenizer")
    log.info("tokenizer %s loaded from %s", type(tokenizer).__name__, p)
    return tokenizer
