"""`minimax2 serve`: one process, the engine loop inside it (or a remote engine behind it).

    minimax2 serve --model DIR [--host 127.0.0.1] [--port 8000] [--api-key KEY | env MINIMAX2_API_KEY]
                   [--served-model-name NAME] [--max-model-len N] [--max-num-seqs N]
                   [--quantization bf16|fp8|int8|int4] [--backend local | --backend remote --backend-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import logging
import os
import socket
import sys

log = logging.getLogger("minimax2.server")


def add_serve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="checkpoint directory (remote backend: tokenizer and template only), or 'demo' for the "
                        "bundled demo model (default: demo)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    from ..engine.options import add_load_arguments, device, port, positive_float, positive_int

    p.add_argument("--port", type=port, default=8000, help="port to listen on (default 8000; 0: any free port)")
    p.add_argument("--api-key", default=os.environ.get("MINIMAX2_API_KEY"),
                   help="require this key (Authorization: Bearer or x-api-key; default: $MINIMAX2_API_KEY, else none)")
    p.add_argument("--served-model-name", nargs="+", default=None,
                   help="model id(s) clients may send; the first is reported (default: the directory name)")
    p.add_argument("--max-model-len", type=positive_int, default=None, help="context length (default: the model's)")
    p.add_argument("--max-num-seqs", type=positive_int, default=16, help="sequences decoded together (default 16)")
    add_load_arguments(p)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32", "float16"],
                   help="compute dtype (default bfloat16)")
    p.add_argument("--device", default="cpu", type=device, help="cpu | cuda | cuda:N | auto (default cpu)")
    p.add_argument("--kv-cache-gb", type=positive_float, default=None,
                   help="KV cache budget in GiB (default: what --max-num-seqs full contexts need, at most 4)")
    p.add_argument("--num-kv-blocks", type=positive_int, default=None,
                   help="KV cache size in blocks of 16 tokens (default: from --kv-cache-gb, which it overrides)")
    p.add_argument("--backend", choices=["local", "remote"], default="local",
                   help="local: run the model in this process; remote: forward to --backend-url (default local)")
    p.add_argument("--backend-url", default=None,
                   help="remote backend base URL, an OpenAI-compatible server (default: none; needed by --backend remote)")
    p.add_argument("--backend-model", default=None, help="model name at the remote backend (default: its first)")
    p.add_argument("--backend-api-key", default=os.environ.get("MINIMAX2_BACKEND_API_KEY"),
                   help="API key sent to the remote backend (default: $MINIMAX2_BACKEND_API_KEY, else none)")
    p.add_argument("--max-pending", type=positive_int, default=256,
                   help="requests in flight before answering 429 (default 256)")
    p.add_argument("--max-body-mb", type=positive_float, default=16.0,
                   help="largest request body in MiB, 413 above (default 16)")
    p.add_argument("--drain-timeout", type=positive_float, default=30.0,
                   help="seconds to finish in-flight requests on SIGTERM (default 30)")
    p.add_argument("--header-timeout", type=positive_float, default=10.0,
                   help="seconds a connection may take to send a request's headers (default 10)")
    p.add_argument("--thinking-secret", default=os.environ.get("MINIMAX2_THINKING_SECRET"),
                   help="key of the thinking-block signatures (default: the --thinking-secret-file)")
    p.add_argument("--thinking-secret-file", default=None,
                   help="file holding that key, created once (mode 0600) if missing; default "
                        "$XDG_STATE_HOME/minimax2/thinking-secret or ~/.local/state/minimax2/thinking-secret")
    p.add_argument("--accept-unsigned-thinking", action="store_true",
                   help="render thinking blocks without a valid signature (trusted clients only; default: 400)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"],
                   help="server log verbosity (default info)")


def build_backend(args):
    from .backends import LocalBackend, RemoteBackend

    if args.backend == "remote":
        if not args.backend_url:
            raise ValueError("--backend remote needs --backend-url URL")
        return RemoteBackend(args.model, args.backend_url, args.backend_api_key, args.backend_model, args.max_model_len)
    from ..engine.llm import LLM
    from ..engine.options import load_kwargs

    return LocalBackend(LLM(args.model, dtype=args.dtype, device=args.device, progress=True, **load_kwargs(args),
                            max_model_len=args.max_model_len, max_num_seqs=args.max_num_seqs,
                            kv_cache_gb=args.kv_cache_gb, num_kv_blocks=args.num_kv_blocks))


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_socket(host: str, port: int) -> socket.socket:
    """The server's socket, bound before the model loads: a port in use is an error in a second, not after
    minutes of loading. Port 0 takes any free port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port}: {e.strerror or e} (--port picks another)") from None
    sock.set_inheritable(True)
    return sock


def cmd_serve(args) -> int:
    try:
        from .app import create_app
        from .service import ServerConfig
        from .signing import server_secret
        from .uvicorn_server import DrainingServer, uvicorn_config
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
                          drain_timeout=args.drain_timeout, accept_unsigned_thinking=args.accept_unsigned_thinking,
                          thinking_secret=server_secret(args.thinking_secret, args.thinking_secret_file))
    sock = listen_socket(args.host, args.port)
    try:
        backend = build_backend(args)
    except BaseException:
        sock.close()
        raise
    app = create_app(backend, config)
    port = sock.getsockname()[1]
    log.info("serving %s (%s backend) on http://%s:%d", name, args.backend, args.host, port)
    uconfig = uvicorn_config(app, args.host, port, args.drain_timeout, args.header_timeout, args.log_level)
    try:  # SIGTERM/SIGINT: stop accepting, finish in-flight requests (up to --drain-timeout)
        DrainingServer(uconfig, app.state.server).run(sockets=[sock])
    finally:
        sock.close()
        asyncio.run(backend.close())
    log.info("stopped")
    return 0


def register_serve(subparsers) -> None:
    s = subparsers.add_parser("serve", help="OpenAI- and Anthropic-compatible HTTP server",
                              description="Serve the model over the OpenAI and Anthropic APIs (tool calls, reasoning).")
    add_serve_args(s)
    s.set_defaults(func=cmd_serve)


if __name__ == "__main__":  # not an entry point: say which one is, rather than exit silently
    sys.exit("minimax2.server.cli only registers `serve`; run `python -m minimax2 serve ...`")
