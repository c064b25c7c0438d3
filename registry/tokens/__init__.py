"""Token counts from the text (SPEC §6): a local tokenizer, upstream's rules, a worker pool.

- :mod:`registry.tokens.loader`: a local Hugging Face tokenizer directory, offline.
- :mod:`registry.tokens.rules`: which string or chat message is tokenized for ISL, OSL, TPOT.
- :mod:`registry.tokens.counter`: counting those inputs with the tokenizer.
- :mod:`registry.tokens.pool`: the backlog, counted in worker threads off the event loop.

The aggregator (:mod:`registry.aggregator.metrics`) decides when to submit and
what to record; nothing here records a metric. ``transformers`` is imported
only by :func:`load_tokenizer`, so this package imports without the extra.
"""

from registry.tokens.counter import TokenCounter
from registry.tokens.loader import TokenizerUnavailable, check_tokenizer_dir, load_tokenizer
from registry.tokens.pool import OUTPUT, PROMPT, TokenizerPool, TokenJob

__all__ = [
    "OUTPUT",
    "PROMPT",
    "TokenCounter",
    "TokenJob",
    "TokenizerPool",
    "TokenizerUnavailable",
    "check_tokenizer_dir",
    "load_tokenizer",
]
