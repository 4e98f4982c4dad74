"""Prometheus metrics under vLLM's names (so existing Grafana dashboards work) and a `minimax2:` copy."""

from __future__ import annotations

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PREFIXES = ("vllm", "minimax2")
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
                   20.0, 40.0, 80.0, 160.0, 640.0, 2560.0)


class _EngineCollector:
    def __init__(self, model: str, stats: Callable[[], dict]):
        self.model, self.stats = model, stats

    def collect(self):
        s = self.stats()
        for p in PREFIXES:
            for name, doc, value in (("num_requests_running", "Requests in the running batch", s["running"]),
                                     ("num_requests_waiting", "Requests waiting to be scheduled", s["waiting"]),
                                     ("kv_cache_usage_perc", "KV cache usage (1 = full)", s["kv_usage"])):
                g = GaugeMetricFamily(f"{p}:{name}", doc, labels=["model_name"])
                g.add_metric([self.model], float(value))
                yield g
            for name, doc, value in (("prefix_cache_queries", "Prefix cache lookups", s["prefix_queries"]),
                                     ("prefix_cache_hits", "Prefix cache hits", s["prefix_hits"])):
                c = CounterMetricFamily(f"{p}:{name}", doc, labels=["model_name"])
                c.add_metric([self.model], float(value))
                yield c


class Metrics:
    def __init__(self, model: str, stats: Callable[[], dict]):
        self.model = model
        self.registry = CollectorRegistry()
        self.registry.register(_EngineCollector(model, stats))
        lbl = ["model_name"]
        mk_c = lambda p, n, d, extra=(): Counter(f"{p}:{n}", d, lbl + list(extra), registry=self.registry)  # noqa: E731
        mk_h = lambda p, n, d: Histogram(f"{p}:{n}", d, lbl, buckets=LATENCY_BUCKETS, registry=self.registry)  # noqa: E731
        self.prompt = [mk_c(p, "prompt_tokens", "Prefill tokens processed") for p in PREFIXES]
        self.generation = [mk_c(p, "generation_tokens", "Generated tokens") for p in PREFIXES]
        self.success = [mk_c(p, "request_success", "Finished requests", ["finished_reason"]) for p in PREFIXES]
        self.ttft = [mk_h(p, "time_to_first_token_seconds", "Time to first token") for p in PREFIXES]
        self.itl = [mk_h(p, "inter_token_latency_seconds", "Gap between streamed tokens") for p in PREFIXES]
        self.tpot = [mk_h(p, "request_time_per_output_token_seconds", "Per-request mean time per output token")
                     for p in PREFIXES]
        self.e2e = [mk_h(p, "e2e_request_latency_seconds", "Request latency, end to end") for p in PREFIXES]

    def request_done(self, prompt_tokens: int, generation_tokens: int, ttft: float | None, itls: list[float],
                     e2e: float, finished_reason: str) -> None:
        for i in range(len(PREFIXES)):
            self.prompt[i].labels(self.model).inc(prompt_tokens)
            self.generation[i].labels(self.model).inc(generation_tokens)
            self.success[i].labels(self.model, finished_reason).inc()
            if ttft is not None:
                self.ttft[i].labels(self.model).observe(ttft)
                if generation_tokens > 1:
                    self.tpot[i].labels(self.model).observe((e2e - ttft) / (generation_tokens - 1))
            for gap in itls:
                self.itl[i].labels(self.model).observe(gap)
            self.e2e[i].labels(self.model).observe(e2e)

    def render(self) -> bytes:
        return generate_latest(self.registry)
