"""Endpoint configuration and token prices."""
from __future__ import annotations

import os
import tomllib
from pathlib import Path

HERE = Path(__file__).parent
PRICES = HERE / "prices.toml"
EXAMPLE = HERE / "endpoints.example.toml"
M2_SAMPLING = {"temperature": 1.0, "top_p": 0.95, "top_k": 40}


def load_prices(path: Path = PRICES) -> dict:
    return tomllib.loads(Path(path).read_text())


def load(name: str, path: Path | None = None) -> dict:
    """The endpoint called `name`, with its price entry resolved and its API key read."""
    if path is None:
        path = Path("endpoints.toml") if Path("endpoints.toml").exists() else EXAMPLE
    entries = tomllib.loads(Path(path).read_text()).get("endpoint", [])
    found = [e for e in entries if e.get("name") == name]
    if not found:
        known = ", ".join(e.get("name", "?") for e in entries)
        raise SystemExit(f"no endpoint {name!r} in {path} (known: {known})")
    endpoint = dict(found[0])
    if endpoint.get("protocol") not in ("openai", "anthropic"):
        raise SystemExit(f"endpoint {name!r}: protocol must be openai or anthropic")
    endpoint.setdefault("sampling", dict(M2_SAMPLING))
    prices = load_prices()
    price_key = endpoint.get("price", "local")
    if price_key not in prices:
        raise SystemExit(f"endpoint {name!r}: price {price_key!r} not in {PRICES}")
    endpoint["prices"] = {"name": price_key, **prices[price_key]}
    key_env = endpoint.get("api_key_env")
    endpoint["api_key"] = os.environ.get(key_env, "") if key_env else "not-needed"
    if key_env and not endpoint["api_key"]:
        raise SystemExit(f"endpoint {name!r}: environment variable {key_env} is not set")
    return endpoint


def cost(usage: dict, prices: dict) -> float:
    """Dollars for one call's normalised usage {input, cached, cache_write, output}."""
    cached = usage.get("cached", 0) or 0
    written = usage.get("cache_write", 0) or 0
    fresh = (usage.get("input", 0) or 0) - cached - written
    per_m = (fresh * prices.get("input", 0.0) + cached * prices.get("cache_read", prices.get("input", 0.0))
             + written * prices.get("cache_write", prices.get("input", 0.0))
             + (usage.get("output", 0) or 0) * prices.get("output", 0.0))
    return per_m / 1_000_000
