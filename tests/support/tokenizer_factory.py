"""Small real tokenizers for the tests, built with the ``tokenizers`` library and saved as a
Hugging Face tokenizer directory (``tokenizer.json`` + ``tokenizer_config.json`` with a
chat template), so they load back through ``transformers.AutoTokenizer`` exactly as a
model's tokenizer does.

- :func:`make_word_tokenizer`: word level, whitespace split, unknown words are ``[UNK]``:
  a text's token count is its number of words, so the tests can count by hand.
- :func:`make_bpe_tokenizer`: a BPE trained on a few sentences; its counts are taken from
  the ``tokenizers`` library directly, independently of transformers and of our code.

The chat template renders ``<|role|>[ <think> R </think>] CONTENT[ <tool> NAME K V … </tool>]``
and a newline per message, ``<tools> NAMES </tools>`` when tools are given and
``<|assistant|>`` plus a newline for the generation prompt. It iterates a tool call's
``arguments`` as a mapping (as real templates do) and raises on a message whose content
contains ``boom`` (``raise_exception``, as real templates do on bad input).
"""

from __future__ import annotations

import json
from pathlib import Path

SENTENCES = (
    "the model answer is a token stream of text and a reply",
    "why is the answer not the first result",
    "we run the test and the data is the value",
    "what time is it when you ask a question",
    "get weather city paris unit celsius search query",
)
SPECIALS = ("[UNK]", "<|system|>", "<|user|>", "<|assistant|>", "<think>", "</think>", "<tool>")
EXTRA_WORDS = ("</tool>", "<tools>", "</tools>")

CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if 'boom' in (message['content'] or '') -%}"
    "{{ raise_exception('boom: the template refuses this message') }}"
    "{%- endif -%}"
    "<|{{ message['role'] }}|>"
    "{%- if message.get('reasoning_content') %} <think> {{ message['reasoning_content'] }}"
    " </think>{%- endif %} {{ message['content'] }}"
    "{%- for call in message.get('tool_calls') or [] %} <tool> {{ call['function']['name'] }}"
    "{%- for k, v in call['function']['arguments'].items() %} {{ k }} {{ v }}{%- endfor %}"
    " </tool>{%- endfor %}"
    "{{ '\\n' }}"
    "{%- endfor -%}"
    "{%- if tools %}<tools>{%- for t in tools %} {{ t['function']['name'] }}{%- endfor %}"
    " </tools>{{ '\\n' }}{%- endif -%}"
    "{%- if add_generation_prompt %}<|assistant|>{{ '\\n' }}{%- endif -%}"
)


def _save(tok: object, directory: Path, *, chat_template: str | None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))  # type: ignore[attr-defined]
    config: dict[str, object] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
        "model_max_length": 1_000_000,
        "clean_up_tokenization_spaces": False,
    }
    if chat_template is not None:
        config["chat_template"] = chat_template
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    return directory


def make_word_tokenizer(
    directory: Path,
    *,
    chat_template: str | None = CHAT_TEMPLATE,
    unknown_words_fail: bool = False,
) -> Path:
    """A word-level tokenizer in ``directory``, its vocabulary trained on :data:`SENTENCES`.

    ``unknown_words_fail=True``: the vocabulary lacks its ``[UNK]`` token, so the real
    library raises on any text with a word outside the vocabulary and counts the others:
    a tokenizer that fails on some inputs only.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordLevelTrainer(special_tokens=[*SPECIALS, *EXTRA_WORDS])
    tok.train_from_iterator(SENTENCES, trainer)
    if unknown_words_fail:
        vocab = {w: i for w, i in tok.get_vocab().items() if w != "[UNK]"}
        strict = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
        strict.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tok = strict
    return _save(tok, directory, chat_template=chat_template)


def make_bpe_tokenizer(directory: Path) -> Path:
    """A BPE trained on :data:`SENTENCES` (whitespace pre-tokenizer, small vocabulary)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=120, special_tokens=list(SPECIALS))
    tok.train_from_iterator(SENTENCES, trainer)
    return _save(tok, directory, chat_template=CHAT_TEMPLATE)


def library_count(directory: Path, text: str) -> int:
    """Tokens of ``text`` by the ``tokenizers`` library itself (no special tokens)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(directory / "tokenizer.json"))
    return len(tok.encode(text, add_special_tokens=False).ids)
