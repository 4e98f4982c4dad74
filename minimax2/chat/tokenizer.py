"""The checkpoint's tokenizer (`tokenizer.json` through the `tokenizers` library) and streaming detokenization.

M2's markers (`]~!b[`, `]~b]`, `[e~[`, `<think>`, ...) are added tokens: `encode` turns each marker in
its text into the marker's single id, and decoding keeps them, because the output parser needs
`</think>` and the tool-call markers.

Chat prompts are encoded with `encode_prompt` instead: only markers the template wrote become control
tokens; the conversation's own text (which may spell any marker) is encoded by `encode_text`, which
never yields a control id. Between two template markers the text is encoded in one piece, exactly as
`encode` encodes it, so a prompt whose content spells no marker gets the ids `encode` would give.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from tokenizers import Tokenizer as _HFTokenizer

from .prompt import Prompt


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
        added = self._tok.get_added_tokens_decoder()
        self.special_ids = {i for i, t in added.items() if t.special}
        self.control_ids = set(added)  # every added token: what content text must never become
        self._marker_ids = {t.content: i for i, t in added.items()}
        self._markers = _marker_pattern(added.values())
        self._plain = _without_added_tokens(file)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def encode(self, text: str) -> list[int]:
        """Encode text as it is (markers in the text become their token ids; no BOS/EOS added).

        Through the batch API, which gives the same ids as `encode` but releases the GIL while it
        works: a server tokenizing a large prompt in a worker thread keeps its event loop answering."""
        return _batch_ids(self._tok, [text])[0]

    def encode_text(self, text: str) -> list[int]:
        """Encode text as ordinary text: a marker spelled in it becomes its characters' tokens."""
        return self._encode_texts([text])[0]

    def encode_prompt(self, prompt: Prompt) -> list[int]:
        """Encode a rendered chat prompt: markers in its structural text become their control ids,
        everything else (all of its content) is encoded as ordinary text."""
        spans, markers = [], []  # spans[i] is the text before markers[i]; one more span at the end
        pending: list[str] = []
        for text, structural in prompt.segments:
            if structural and self._markers is not None:
                pos = 0
                for match in self._markers.finditer(text):
                    pending.append(text[pos:match.start()])
                    spans.append("".join(pending))
                    token = match.group()
                    markers.append(self._marker_ids[token if token in self._marker_ids else token.strip()])
                    pending, pos = [], match.end()
                text = text[pos:]
            pending.append(text)
        spans.append("".join(pending))
        encoded = self._encode_texts(spans)
        ids = list(encoded[0])
        for marker, span_ids in zip(markers, encoded[1:]):
            ids.append(marker)
            ids.extend(span_ids)
        return ids

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        out = []
        for text, ids in zip(texts, _batch_ids(self._plain, texts)):
            if self.control_ids.intersection(ids):  # a merge spelled a control token: go char by char
                ids = [i for char_ids in _batch_ids(self._plain, list(text)) for i in char_ids]
                if self.control_ids.intersection(ids):
                    raise TokenizerError(f"this tokenizer cannot encode {text!r} without control tokens")
            out.append(ids)
        return out

    def decode(self, ids: list[int], skip_special_tokens: bool = False) -> str:
        return self._tok.decode(ids, skip_special_tokens=skip_special_tokens)

    def token_to_id(self, token: str) -> int | None:
        return self._tok.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        return self._tok.id_to_token(i)


def _batch_ids(tok: _HFTokenizer, texts: list[str]) -> list[list[int]]:
    """The ids of each text, as `tok.encode(text, add_special_tokens=False).ids` gives them, with the
    GIL released while the texts are encoded. `encode_batch_fast` (tokenizers 0.21+) skips the offsets,
    which also makes its encodings cheap to free (freeing is done holding the GIL)."""
    batch = getattr(tok, "encode_batch_fast", None) or tok.encode_batch
    return [e.ids for e in batch(texts, add_special_tokens=False)]


def _marker_pattern(tokens) -> re.Pattern | None:
    """Leftmost-longest match of the added tokens, as `tokenizers` splits them (lstrip / rstrip /
    single_word are honoured inside the template's text only)."""
    alternatives = []
    for t in sorted(tokens, key=lambda t: len(t.content), reverse=True):
        body = re.escape(t.content)
        if t.single_word:
            body = rf"(?<!\w){body}(?!\w)"
        alternatives.append((r"\s*" if t.lstrip else "") + body + (r"\s*" if t.rstrip else ""))
    return re.compile("|".join(alternatives)) if alternatives else None


def _without_added_tokens(file: Path) -> _HFTokenizer:
    """The same tokenizer with no added tokens: its normaliser, pre-tokenizer and model encode text
    as text, since nothing in it is matched as a marker."""
    spec = json.loads(file.read_text(encoding="utf-8"))
    spec["added_tokens"] = []
    return _HFTokenizer.from_str(json.dumps(spec))


def _token_str(tok) -> str | None:
    if isinstance(tok, dict):  # {"content": "...", ...} form
        return tok.get("content")
    return tok


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas that never end in a broken UTF-8 sequence, with
    one `decode` call per token.

    Byte-level BPE splits multi-byte characters across tokens; decoding a prefix then yields U+FFFD.
    Each push decodes the window of tokens from `prefix` to the end and releases what is new in it
    (`released`: characters of the window's text already handed out), holding text that ends in a
    broken character until later tokens finish it. Once a window holds `WINDOW` tokens and nothing is
    held, it starts over so decoding stays short. A byte-level decoder (M2's) decodes a sequence as
    the concatenation of its parts, so the new window starts empty; for any other decoder it keeps
    `CONTEXT` tokens, whose text is decoded once when the window restarts, so the decoder's space and
    merge handling sees them.
    """

    WINDOW = 8
    CONTEXT = 4

    def __init__(self, tokenizer: Tokenizer, skip_ids: set[int] | None = None):
        self.tok = tokenizer
        self.skip = skip_ids or set()
        self.ids: list[int] = []
        self.prefix = 0  # start of the decoding window
        self.released = 0  # characters of the window's text already released
        self.context = 0 if type(tokenizer._tok.decoder).__name__ == "ByteLevel" else self.CONTEXT
        self.text = ""

    def push(self, token_id: int) -> str:
        if token_id in self.skip:
            return ""
        self.ids.append(token_id)
        now = self.tok.decode(self.ids[self.prefix:])
        if len(now) <= self.released or now.endswith("\ufffd"):
            return ""
        delta, self.released = now[self.released:], len(now)
        self.text += delta
        if len(self.ids) - self.prefix >= self.WINDOW:
            self._restart()
        return delta

    def _restart(self) -> None:
        self.prefix = max(len(self.ids) - self.context, 0)
        self.released = len(self.tok.decode(self.ids[self.prefix:])) if self.context else 0

    def flush(self) -> str:
        """Whatever is still held back (at the end of generation), even if incomplete."""
        now = self.tok.decode(self.ids[self.prefix:])
        delta = now[self.released:]
        self.prefix, self.released = len(self.ids), 0
        self.text += delta
        return delta
