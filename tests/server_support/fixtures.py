"""Session fixtures: one tiny model served by a real local server for all server tests."""

from __future__ import annotations

import logging

import pytest

from . import ServerThread


@pytest.fixture(scope="session")
def server_llm(tiny_ckpt):
    from minimax2 import LLM

    return LLM(tiny_ckpt, dtype="float32", max_model_len=1024, max_num_seqs=8, num_kv_blocks=512)


@pytest.fixture(scope="session")
def server(server_llm):
    from minimax2.server.app import create_app
    from minimax2.server.backends import LocalBackend
    from minimax2.server.service import ServerConfig

    app = create_app(LocalBackend(server_llm), ServerConfig(served_model_name="tiny", max_body_bytes=2**20,
                                                            thinking_secret=b"s3cret"))
    with ServerThread(app) as s:
        yield s


@pytest.fixture()
def prompt_log():
    """Rendered prompts logged at debug level by the server (its debug hook)."""
    records: list[str] = []

    class Grab(logging.Handler):
        def emit(self, record):
            records.append(record.args[0] if record.args else record.getMessage())

    logger, h = logging.getLogger("minimax2.server.prompt"), Grab()
    old = logger.level
    logger.setLevel(logging.DEBUG)
    logger.addHandler(h)
    yield records
    logger.removeHandler(h)
    logger.setLevel(old)
