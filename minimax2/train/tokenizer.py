"""Train a byte-level BPE tokenizer with M2's markers as single tokens, saved the way HF checkpoints are.

`]~!b[`, `]~b]` and `[e~[` are special tokens (control markers); `<think>`, `</think>` and the
tool-call markers are added tokens that decoding keeps, as in M2's own tokenizer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers import AddedToken

from ..chat import markers as m

SPECIAL = [m.BEGIN_OF_DOCUMENT, m.BEGIN_OF_ROLE, m.END_OF_MESSAGE]
ADDED = [m.THINK_START, m.THINK_END, m.TOOL_CALL_START, m.TOOL_CALL_END]

SAMPLE_TEXT = [
    "The quick brown fox jumps over the lazy dog. Once upon a time there was a small model.",
    "def add(a, b):\n    return a + b\n\nprint(add(2, 3))  # 5",
    "User asks for the weather in Paris; the assistant calls get_weather with city=Paris.",
    '<invoke name="get_weather">\n<parameter name="city">Paris</parameter>\n</invoke>',
    "Température à Tokyo: 東京 22°C. Ünïcödé text — with dashes… and emoji 🙂.",
    "0123456789 + - * / = ( ) [ ] { } < > \" ' : ; , . ! ? # @ $ % ^ & | \\ ~ `",
    "You are a helpful assistant. Let me think step by step about this problem.",
]


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 1,
                    words_apart: bool = False) -> Tokenizer:
    """`words_apart`: every space, punctuation mark and digit is its own pre-token, so merges stay
    inside letter runs and a word is spelled with the same tokens wherever it stands ('Vienna' after
    a space, after '>' or after '= ' alike). Copying a value from a request into a tool call is then
    a plain token copy, and arithmetic sees one token per digit. It costs about 1.45x more tokens."""
    tok = Tokenizer(models.BPE())
    if words_apart:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(r"\s"), "isolated"), pre_tokenizers.Punctuation("isolated"),
            pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    else:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return tok


def save_tokenizer(tok: Tokenizer, out: str | Path, chat_template: str | None = None,
                   model_max_length: int = 4096) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    cfg = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": m.BEGIN_OF_DOCUMENT,
           "eos_token": m.END_OF_MESSAGE, "unk_token": None, "model_max_length": model_max_length,
           "add_bos_token": False, "add_eos_token": False, "clean_up_tokenization_spaces": False}
    if chat_template is not None:
        cfg["chat_template"] = chat_template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
