"""Thinking-block signatures of the Anthropic route, and where their key lives.

Policy: every `thinking` block a client sends back must carry the signature this server gave it
(HMAC-SHA256 of the block's text under the server's secret), else the request is a 400 -- unless the
server runs with `--accept-unsigned-thinking` (clients it trusts, e.g. ones replaying thinking from
another server). The signature binds the text only, not the conversation: replaying a block into
another conversation is allowed, since the text is the model's own either way. It keeps a client
from putting words in the model's reasoning, not from editing its own side of the conversation.

The key persists across restarts: by default a 32-byte secret in a file created once, mode 0600,
under the user's state directory (`$XDG_STATE_HOME/minimax2/thinking-secret`, else
`~/.local/state/minimax2/thinking-secret`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from pathlib import Path

log = logging.getLogger("minimax2.server")


def sign(secret: bytes, thinking: str) -> str:
    return base64.b64encode(hmac.new(secret, thinking.encode(), hashlib.sha256).digest()).decode()


def verify(secret: bytes, thinking: str, signature) -> bool:
    """Whether `signature` is this server's signature of `thinking` (any other type or text: no).
    Compares bytes: `hmac.compare_digest` raises on non-ASCII str."""
    if not isinstance(signature, str) or not signature:
        return False
    return hmac.compare_digest(signature.encode("utf-8", "replace"), sign(secret, thinking).encode())


def default_secret_path() -> Path:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return Path(base) / "minimax2" / "thinking-secret"


def load_or_create_secret(path: Path | None = None) -> bytes:
    """The secret in `path`, creating the file (0600, in a 0700 directory) the first time. Two servers
    starting together agree: the file is created exclusively and the loser reads the winner's."""
    path = Path(path) if path is not None else default_secret_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32) + "\n")
        log.info("created the thinking-signature secret %s", path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s is readable by other users (mode %o): anyone who reads it can forge thinking "
                    "signatures; chmod 600 it", path, mode)
    text = path.read_text().strip()
    if len(text) < 32:
        raise ValueError(f"{path}: the thinking-signature secret is too short (want 32+ characters); "
                         f"delete the file to make a new one")
    return text.encode()


def server_secret(given: str | None, path: str | None) -> bytes:
    """The CLI's choice: an explicit secret, else the file (default location unless `path`); a state
    directory that cannot be written falls back to a per-process secret, loudly."""
    if given:
        return given.encode()
    try:
        return load_or_create_secret(Path(path) if path else None)
    except OSError as e:
        log.warning("cannot keep the thinking-signature secret on disk (%s); using a per-process one: "
                    "thinking blocks signed before a restart will be rejected after it", e)
        return secrets.token_bytes(32)
