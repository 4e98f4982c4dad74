"""Many concurrent streaming clients on both APIs: zero errors, and the KV cache is whole afterwards."""

from __future__ import annotations

import asyncio
import json

import anthropic
import openai
import pytest

from server_support.http import wait_idle

pytest_plugins = ["server_support.fixtures"]


async def _openai(client, i: int) -> tuple[str, int]:
    stream = await client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": f"request {i}"}], max_tokens=8 + i % 9, seed=i,
        stream=True, stream_options={"include_usage": True})
    text, usage, finish = "", None, None
    async for c in stream:
        if c.usage:
            usage = c.usage.completion_tokens
        for ch in c.choices:
            text += (ch.delta.model_extra or {}).get("reasoning_content") or ch.delta.content or ""
            finish = ch.finish_reason or finish
    assert finish in ("stop", "length") and usage is not None
    return text, usage


async def _anthropic(client, i: int) -> tuple[str, int]:
    async with client.messages.stream(model="tiny", max_tokens=6 + i % 5, extra_body={"seed": i},
                                      messages=[{"role": "user", "content": f"request {i}"}]) as s:
        msg = await s.get_final_message()
    return json.dumps([b.model_dump() for b in msg.content]), msg.usage.output_tokens


@pytest.mark.parametrize("clients", [64])
def test_concurrent_streaming_clients(server, clients):
    backend = server.app.state.server.backend
    start = wait_idle(backend)["free_blocks"]

    async def main():
        oa = openai.AsyncOpenAI(base_url=server.url + "/v1", api_key="x", max_retries=0, timeout=120)
        an = anthropic.AsyncAnthropic(base_url=server.url, api_key="x", max_retries=0, timeout=120)
        jobs = [_openai(oa, i) if i % 4 else _anthropic(an, i) for i in range(clients)]
        return await asyncio.gather(*jobs, return_exceptions=True)

    results = asyncio.run(main())
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    assert all(n > 0 for _, n in results)
    wait_idle(backend, free_blocks=start)
    assert server.app.state.server.inflight == 0
