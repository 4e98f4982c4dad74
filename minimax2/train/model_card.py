"""MODEL_CARD.md for a trained recipe: what it is (and is not), how it was made, how it scores."""

from __future__ import annotations

import json
from pathlib import Path

from .evaluate import THRESHOLDS

LABEL = "M2 architecture and format, trained here on synthetic data, not MiniMax's weights"

CRITERIA = {
    "arithmetic": "exact result (add / subtract up to 3 digits; multiply up to 3 by up to 2 digits)",
    "tool": "one well-formed call, right tool, all arguments correct and correctly typed",
    "parallel": "both parallel calls, nothing else",
    "answer": "answer after the tool result contains the returned value",
    "no_tool": "no tool call when none is needed (tools offered)",
    "followup": "last of 2-3 user turns refers to the previous answer (\"Add 5 to that.\"): exact result",
    "noreason": "tool call sent back without its reasoning (Agents SDK): the value answered once, as in the reference",
    "nothink": "thinking disabled (empty think block pre-filled): no `</think>`, right reply or call",
    "json": "requested JSON object parses and validates against the schema",
    "format": "stops on `[e~[` and closes `</think>` (never writes it with thinking disabled); all replies above",
}
FAMILY_TEXT = {
    "arithmetic": "arithmetic with step-by-step reasoning", "tool": "single tool calls with the tool result and a final answer",
    "parallel": "two parallel calls", "no_tool": "tools offered but not needed", "chat": "persona small talk",
    "echo": "repeat-after-me drills", "followup": "conversations of 2-4 user turns (follow-ups on the previous answer, "
    "earlier tool calls and results in the history, earlier reasoning kept or dropped)",
    "noreason": "tool calls sent back without their reasoning", "nothink": "thinking disabled (empty think block "
    "pre-filled, direct replies)", "json": "JSON objects requested by named fields or a pasted schema",
}


def loss_summary(log_file: Path, points: int = 8) -> list[dict]:
    if not log_file.exists():
        return []
    rows = [json.loads(line) for line in log_file.read_text().splitlines() if line.strip()]
    rows = list({r["step"]: r for r in rows}.values())  # a resumed run may log a step twice; keep the last
    if len(rows) <= points:
        return rows
    idx = sorted({round(k * (len(rows) - 1) / (points - 1)) for k in range(points)})
    return [rows[k] for k in idx]


def write_model_card(ckpt: Path, recipe, summary: dict, scores: dict, log_file: Path) -> Path:
    cfg = json.loads((ckpt / "config.json").read_text())
    size_mb = sum(f.stat().st_size for f in ckpt.iterdir() if f.is_file()) / 2**20
    arch = {k: cfg[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
                                "head_dim", "rotary_dim", "num_local_experts", "num_experts_per_tok",
                                "intermediate_size", "vocab_size", "max_position_embeddings")}
    t = recipe.train
    mix = recipe.mix
    start = " --init-from runs/demo/model" if recipe.init_from else ""
    lines = [
        f"# minimax2 demo model (`{recipe.name}` recipe)", "",
        f"**{LABEL}.**", "",
        "A small model with MiniMax-M2's exact architecture (GQA attention with QK-norm over the whole projection, "
        "partial RoPE, sigmoid-routed top-k SwiGLU experts with `e_score_correction_bias`, untied head) and prompt "
        "format (`<think>` reasoning, `<minimax:tool_call>` XML tool calls, `[e~[` stop token). It exists so that "
        "`minimax2 serve`, `chat` and `generate` answer something meaningful with no download. It knows only what "
        "the synthetic data teaches: column-by-column arithmetic, calling the 33 tools of "
        "`minimax2/train/tools_pool.py` (or tools shaped like them), using tool results, and a fixed persona's "
        "small talk" + ("; and, since `demo-chat`, follow-up turns on earlier answers, history sent back without "
                        "reasoning, replies with thinking disabled and JSON objects on request" if recipe.init_from else "")
        + ". It is not a general assistant: phrasings its data never used get confident wrong answers (its sums "
          "were always written `17 + 25`, so `What is 3+4?` or `what's 12+30` go wrong), and `json_object` "
          "without a schema gets an object of its own shape.", "",
        "## Files", "",
        f"HF layout, {size_mb:.1f} MB: `config.json` (M2 keys, `model_type: minimax_m2`), `model.safetensors` "
        "(bfloat16; routing biases float32), `tokenizer.json` + `tokenizer_config.json` (byte-level BPE: the 256 bytes, M2's "
        "markers and the synthetic corpus's most frequent words as single tokens; digits, names and other values "
        "spelled one byte per token), `generation_config.json`. There is no "
        "`chat_template`: minimax2 renders M2 prompts natively (byte-identical to the official template) when a "
        "checkpoint has none; other runtimes need the official template passed explicitly.", "",
        "## Architecture", "", "| key | value |", "|---|---|",
        *[f"| `{k}` | {v} |" for k, v in arch.items()],
        f"| `rope_theta` | {cfg['rope_theta']:g} |",
        f"| parameters | {summary.get('parameters', 0):,} |", "",
        *[f"Note: {note}.\n" for note in recipe.notes],
        "## Training", "",
        "Reproduce with one command (fixed seeds; data order is a function of the step):", "",
        *([f"It continues from the `demo` recipe's checkpoint (`runs/demo/model` from `--recipe demo`, or the bundle "
           f"as it was before demo-chat: `git archive 89f939e minimax2/assets/demo | tar -x -C /tmp`, then "
           f"`--init-from /tmp/minimax2/assets/demo`): its tokenizer and weights, with a fresh optimizer.", ""]
          if recipe.init_from else []),
        "```", "# one process" + (" (what made this checkpoint):" if summary.get("world_size", 1) == 1 else ":"),
        f"minimax2 train --recipe {recipe.name}{start} --out runs/{recipe.name} --export minimax2/assets/demo",
        "# data parallel on 2 CPU processes" + (" (what made this checkpoint):" if summary.get("world_size", 1) > 1 else ":"),
        f"torchrun --nproc_per_node 2 -m minimax2 train --recipe {recipe.name}{start} --out runs/{recipe.name} "
        "--export minimax2/assets/demo", "```", "",
        f"AdamW (betas 0.9/0.95, weight decay {t.weight_decay}), peak lr {t.lr}, {t.warmup} warm-up steps then cosine "
        f"to {t.min_lr_ratio:g}x, gradient clipping {t.grad_clip}, {t.steps} steps of {t.batch_size} conversations, "
        f"{'bf16 autocast' if t.bf16 else 'float32'} (bf16 autocast is slower on our CPUs). Loss only on assistant "
        "tokens (reasoning, `</think>`, content, tool calls, `[e~[`). Experts balanced without an auxiliary loss: "
        f"after each step each layer's routing bias moves by {t.bias_rate} toward equal load.", "",
        "Data: synthetic conversations rendered with the M2 prompt renderer: "
        + ", ".join(f"{FAMILY_TEXT[f]} ({share:.0%})" for f, share in mix.items()) + ".", "",
        "Run summary (`train_summary.json`):", "", "```json", json.dumps(summary, indent=2), "```", "",
        "Loss (mean over the step's loss tokens) and per-layer expert load spread ((max-min)/mean):", "",
        "| step | loss | lr | tokens/s | load spread per layer |", "|---|---|---|---|---|",
        *[f"| {r['step']} | {r['loss']:.4f} | {r['lr']:.2e} | {r['tok_per_s']:,.0f} | "
          f"{', '.join(f'{s:.2f}' for s in r['load_spread'])} |" for r in loss_summary(log_file)], "",
        "## Held-out scores", "",
        "Greedy decoding; prompts from the held-out split, whose argument values (cities, names, words, numbers, "
        "arithmetic problems) never occur in training. Reproduce with "
        "`python -c \"from minimax2.train.evaluate import evaluate; print(evaluate('minimax2/assets/demo'))\"`.", "",
        "| family | criterion | passed | score | target |", "|---|---|---|---|---|",
        *[f"| {f} | {CRITERIA[f]} | {s['passed']}/{s['n']} | {100 * s['score']:.1f}% | {100 * THRESHOLDS[f]:.0f}% |"
          for f, s in scores.items()], "",
    ]
    path = ckpt / "MODEL_CARD.md"
    path.write_text("\n".join(lines))
    return path
