"""Train a byte-level BPE tokenizer with M2's markers as single tokens, saved the way HF checkpoints are.

`]~!b[`, `]~b]` and `[e~[` are special tokens (control markers); `<think>`, `</think>` and the
tool-call markers are added tokens that decoding keeps, as in M2's own tokenizer.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Collection, Iterable

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


def _words_apart() -> pre_tokenizers.PreTokenizer:
    """Every space, punctuation mark and digit is its own pre-token; letter runs stay together."""
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s"), "isolated"), pre_tokenizers.Punctuation("isolated"),
        pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])


def _finish(tok: Tokenizer) -> Tokenizer:
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIAL)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    return tok


def train_tokenizer(texts: Iterable[str], vocab_size: int = 1024, min_frequency: int = 1) -> Tokenizer:
    """A byte-level BPE trained with `tokenizers`' BPE trainer (random test and benchmark checkpoints)."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    return _finish(tok)


def train_word_tokenizer(texts: Iterable[str], vocab_size: int = 2048, min_count: int = 10,
                         spelled: Collection[str] = ()) -> Tokenizer:
    """A byte-level BPE whose vocabulary is the 256 bytes plus the corpus's most frequent words
    (at least `min_count` times), with no merges: a word in the vocabulary is one token and every
    other word is spelled byte by byte. Words in `spelled` (the values a model must copy: names,
    cities, enum members) never get a token of their own.

    Why: a trained BPE cuts names into hundreds of rare pieces, and a small model only learned to
    copy the few tokens it copies all the time (digits). Spelled out, any name, seen or not, is a
    string over ~60 letters that every training name exercises, so copying it is the same skill as
    copying a number. Spaces, punctuation and digits are their own pre-tokens (see `_words_apart`)."""
    pre = _words_apart()
    spelled = {w for x in spelled for w in (x, x.lower(), x.capitalize())}
    counts: Counter = Counter()
    for text in texts:
        counts.update(w for w, _ in pre.pre_tokenize_str(text) if len(w) > 1 and w.isalpha())
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {t: i for i, t in enumerate(SPECIAL + alphabet)}
    room = vocab_size - len(vocab) - len(ADDED)
    for word, n in counts.most_common():
        if room <= 0 or n < min_count:
            break
        if word not in spelled:
            vocab[word] = len(vocab)
            room -= 1
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], ignore_merges=True))
    tok.pre_tokenizer = pre
    return _finish(tok)


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
