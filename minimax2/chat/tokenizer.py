"""The checkpoint's tokenizer (`tokenizer.json` through the `tokenizers` library) and streaming detokenization.

M2's markers (`]~!b[`, `]~b]`, `[e~[`, `<think>`, ...) are added tokens: a rendered prompt that
contains them as text encodes each to its single id, and decoding keeps them, because the output
parser needs `</think>` and the tool-call markers.
"""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer


class TokenizerError(ValueError):
    pass


class Tokenizer:
    def __init__(self, path: str | Path):
        path = Path(path)
        file = path / "tokenizer.json" if path.is_dir() else path
        if not file.exists():
            raise TokenizerError(f"no tokenizer.json at {file}")
        try:
            self._tok = _HFTokenizer.from_file(str(file))
        except Exception as e:  # the tokenizers library raises a bare Exception subclass
            raise TokenizerError(f"{file}: cannot load tokenizer ({e})") from e
        cfg_file = file.parent / "tokenizer_config.json"
        self.config = json.loads(cfg_file.read_text()) if cfg_file.exists() else {}
        self.eos_token = _token_str(self.config.get("eos_token")) or "[e~["
        self.bos_token = _token_str(self.config.get("bos_token")) or "]~!b["
        self.eos_token_id = self._tok.token_to_id(self.eos_token)
        self.special_ids = {i for i, t in self._tok.get_added_tokens_decoder().items() if t.special}

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Encode text as it is (markers in the text become their token ids; no BOS/EOS added)."""
        return self._tok.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)


def _token_str(tok) -> str | None:
    if isinstance(tok, dict):  # {"content": "...", ...} form
        return tok.get("content")
    return tok


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas that never end in a broken UTF-8 sequence.

    Byte-level BPE splits multi-byte characters across tokens; decoding a prefix then yields U+FFFD.
    We decode a short window (from `prefix` to the end) and release only text that is complete,
    holding the rest until later tokens finish the character. Decoding a window rather than the last
    token alone keeps tokenizers' space and merge handling right.
    """

    def __init__(self, tokenizer: Tokenizer, skip_ids: set[int] | None = None):
        self.tok = tokenizer
        self.skip = skip_ids or set()
        self.ids: list[int] = []
        self.prefix = 0  # start of the decoding window
        self.read = 0  # tokens before this have been released as text
        self.text = ""

    def push(self, token_id: int) -> str:
        if token_id in self.skip:
            return ""
        self.ids.append(token_id)
        before = self.tok.decode(self.ids[self.prefix:self.read])
        now = self.tok.decode(self.ids[self.prefix:])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            delta = now[len(before):]
            self.prefix, self.read = self.read, len(self.ids)
            self.text += delta
            return delta
        return ""

    def flush(self) -> str:
        """Whatever is still held back (at the end of generation), even if incomplete."""
        before = self.tok.decode(self.ids[self.prefix:self.read])
        now = self.tok.decode(self.ids[self.prefix:])
        delta = now[len(before):]
        self.prefix = self.read = len(self.ids)
        self.text += delta
        return delta
