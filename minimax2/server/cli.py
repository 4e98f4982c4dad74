"""`minimax2 serve`: one process, the engine loop inside it (or a remote engine behind it).

    minimax2 serve --model DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY | env MINIMAX2_API_KEY]
                   [--served-model-name NAME] [--max-model-len N] [--max-num-seqs N]
                   [--quantization int8|int4] [--backend local | --backend remote --backend-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import signal
import sys

log = logging.getLogger("minimax2.server")


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="checkpoint directory (remote backend: tokenizer and template only); default: the bundled demo model")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=os.environ.get("MINIMAX2_API_KEY"),
                   help="require this key (Authorization: Bearer or x-api-key); default env MINIMAX2_API_KEY")
    p.add_argument("--served-model-name", nargs="+", default=None,
                   help="model id(s) clients may send; the first is reported (default: the directory name)")
    p.add_argument("--max-model-len", type=int, default=None, help="context length (default: the model's)")
    p.add_argument("--max-num-seqs", type=int, default=16, help="sequences decoded together (default 16)")
    p.add_argument("--quantization", choices=["int8", "int4"], default=None, help="weight-only quantization")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"])
    p.add_argument("--device", default="cpu", help="cpu | cuda | auto (default cpu)")
    p.add_argument("--kv-cache-gb", type=float, default=None, help="KV cache budget in GiB")
    p.add_argument("--num-kv-blocks", type=int, default=None, help="KV cache size in blocks (overrides --kv-cache-gb)")
    p.add_argument("--backend", choices=["local", "remote"], default="local")
    p.add_argument("--backend-url", default=None, help="remote backend base URL (an OpenAI-compatible server)")
    p.add_argument("--backend-model", default=None, help="model name at the remote backend (default: its first)")
    p.add_argument("--backend-api-key", default=os.environ.get("MINIMAX2_BACKEND_API_KEY"))
    p.add_argument("--max-pending", type=int, default=256, help="requests in flight before answering 429")
    p.add_argument("--max-body-mb", type=float, default=16.0, help="largest request body (413 above)")
    p.add_argument("--drain-timeout", type=float, default=30.0, help="seconds to finish in-flight requests on SIGTERM")
    p.add_argument("--thinking-secret", default=os.environ.get("MINIMAX2_THINKING_SECRET"),
                   help="key of the thinking-block signatures (default: random per process)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_backend(args):
    from .backends import LocalBackend, RemoteBackend

    if args.backend == "remote":
        if not args.backend_url:
            raise ValueError("--backend remote needs --backend-url URL")
        return RemoteBackend(args.model, args.backend_url, args.backend_api_key, args.backend_model, args.max_model_len)
    from ..engine.llm import LLM

    return LocalBackend(LLM(args.model, dtype=args.dtype, device=args.device, quantization=args.quantization,
                            max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
                            kv_cache_gb=args.kv_cache_gb, num_kv_blocks=args.num_kv_blocks))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_serve(args) -> int:
    try:
        import uvicorn

        from .app import create_app
        from .service import ServerConfig
    except ImportError as e:
        print(f"minimax2 serve needs the server extra ({e.name} is missing): pip install 'minimax2[serve]'",
              file=sys.stderr)
        return 1

    from ..assets import resolve_model

    args.model = resolve_model(args.model)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not _loopback(args.host) and not args.api_key:
        log.warning("binding %s without an API key: anyone who can reach this port can use the model", args.host)
    names = args.served_model_name or [os.path.basename(os.path.normpath(args.model))]
    name = names[0]
    config = ServerConfig(served_model_name=name, aliases=tuple(names[1:]), api_key=args.api_key,
                          max_pending=args.max_pending, max_body_bytes=int(args.max_body_mb * 2**20),
                          drain_timeout=args.drain_timeout)
    if args.thinking_secret:
        config.thinking_secret = args.thinking_secret.encode()
    backend = build_backend(args)
    app = create_app(backend, config)
    log.info("serving %s (%s backend) on http://%s:%d", name, args.backend, args.host, args.port)
    config = uvicorn.Config(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                            timeout_graceful_shutdown=max(1, int(args.drain_timeout)))
    try:  # SIGTERM/SIGINT: stop accepting, finish in-flight requests (up to --drain-timeout)
        _DrainingServer(config, app.state.server).run()
    finally:
        asyncio.run(backend.close())
    log.info("stopped")
    return 0


class _DrainingServer:
    """uvicorn's server, but a SIGTERM drain ends with exit status 0 (uvicorn re-raises the signal)."""

    def __new__(cls, config, state):
        import uvicorn

        class Server(uvicorn.Server):
            def handle_exit(self, sig, frame):
                state.draining = True  # /health says 503 and new requests are refused while draining
                super().handle_exit(sig, frame)
                if sig == signal.SIGTERM and sig in getattr(self, "_captured_signals", []):
                    self._captured_signals.remove(sig)

        return Server(config)


def register_serve(subparsers) -> None:
    s = subparsers.add_parser("serve", help="OpenAI- and Anthropic-compatible HTTP server",
                              description="Serve the model over the OpenAI and Anthropic APIs (tool calls, reasoning).")
    add_serve_args(s)
    s.set_defaults(func=cmd_serve)


def main(argv: list[str] | None = None) -> int:
    """`python -m minimax2.server.cli ...` is the `minimax2` command itself (argv starts with the command)."""
    from ..cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
