"""Running a real `minimax2` server for tests: uvicorn in a thread on 127.0.0.1, port chosen by the OS."""

from __future__ import annotations

import asyncio
import threading
import time

import uvicorn


class ServerThread:
    def __init__(self, app):
        self.config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False,
                                     timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(self.config)
        self.thread = threading.Thread(target=lambda: asyncio.run(self.server.serve()), daemon=True)
        self.app = app

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        self.port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)


# Fixed M2 outputs (the text after the generation prompt) for parser tests that must not depend on a model.
WEATHER_TOOLS = [
    {"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
     "parameters": {"type": "object", "properties": {
         "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
         "zip": {"type": "string"}, "opts": {"type": "object"}, "ratio": {"type": "number"}},
         "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "description": "Current time", "parameters": {"type": "object",
                                                                                                   "properties": {}}}},
]

OUTPUTS = [
    "The user wants weather.\n</think>\n\nLet me check.\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n"
    "<parameter name=\"city\">San Francisco, \"CA\"\n</parameter>\n<parameter name=\"days\">3</parameter>\n"
    "<parameter name=\"metric\">true</parameter>\n<parameter name=\"zip\">02139</parameter>\n"
    "<parameter name=\"opts\">{\"a\": [1, 2]}</parameter>\n<parameter name=\"ratio\">0.5</parameter>\n"
    "</invoke>\n<invoke name='now'>\n</invoke>\n</minimax:tool_call>",
    "Just answer.</think>\n\n  Hello **world** <b>tag</b> a < b and 東京 🙂\n\n",
    "no think end, all reasoning with <minimax:tool_ and a half marker",
    "<think>\nleading think tag</think>\nAnswer\n<minimax:tool_call>\n<invoke name=\"get_weather\">"
    "<parameter name=\"city\">null</parameter><parameter name=\"zip\">nullable\nline2 </parameter>"
    "<parameter name=\"unknown\">x\ty\\z</parameter></invoke>\n</minimax:tool_call>\ntrailing content dropped",
    "call inside reasoning <minimax:tool_call>\n<invoke name=\"now\">\n</invoke>\n</minimax:tool_call>",
    "r</think>\n\nunclosed block <minimax:tool_call>\n<invoke name=\"now\">\n</invoke>\n",
    "r</think>c[e~[ignored after end of message",
    "r</think>\n\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">A</parameter>\n"
    "</invoke>\n</minimax:tool_call>\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n"
    "<parameter name=\"city\">B</parameter>\n<parameter name=\"days\">x7</parameter>\n</invoke>\n</minimax:tool_call>",
    "",
    "   \n  ",
    "r</think>\n\n<minimax:tool_call>\n<invoke name=\"get_weather\">\n<parameter name=\"city\">  Paris  </parameter>"
    "<parameter name=\"days\">7</parameter></invoke></minimax:tool_call>",
]
