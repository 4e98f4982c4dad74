"""Recipes: everything needed to reproduce a trained checkpoint from a fixed seed with one command.

`demo` is the bundled model (minimax2/assets/demo): M2's architecture scaled down, trained on the
synthetic conversations of synthetic.py with a byte-level tokenizer whose words come from the same data
(values spelled per byte, see tokenizer.train_word_tokenizer).
`tiny` is the same pipeline at toy size, for tests. Steps and batch can be overridden.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from tokenizers import Tokenizer

from ..model.config import ModelConfig
from ..model.minimax_m2 import MiniMaxM2
from ..model.writer import save_checkpoint
from .data import Encoded, assistant_spans, encode_conversations
from .random_init import init_weights
from .synthetic import TRAIN_MIX, training_example
from .tokenizer import save_tokenizer, train_word_tokenizer
from .tools_pool import TOOLS
from .values import CITIES, PEOPLE, WORDS
from .trainer import TrainConfig


@dataclass
class Recipe:
    name: str
    model: dict
    train: TrainConfig
    vocab_size: int = 2048
    tokenizer_corpus: int = 3000  # training conversations the BPE is trained on
    seed: int = 0  # weights
    data_seed: int = 0  # conversation stream
    max_position_embeddings: int = 4096
    notes: list[str] = field(default_factory=list)
    mix: dict[str, float] = field(default_factory=lambda: dict(TRAIN_MIX))  # family -> share of the stream
    init_from: str | None = None  # continue from this checkpoint (its tokenizer and weights) instead of a fresh model


DEMO_MODEL = dict(hidden_size=256, num_hidden_layers=2, num_attention_heads=8, num_key_value_heads=2, head_dim=32,
                  rotary_dim=16, num_local_experts=8, num_experts_per_tok=2, intermediate_size=256, rope_theta=10000.0)
# demo-chat continues from the `demo` recipe's checkpoint; the bundle held it until demo-chat replaced it
# (commit 89f939e has it: `git archive 89f939e minimax2/assets/demo | tar -x -C /tmp` restores it).
DEMO_START = "runs/demo/model"
# demo-chat: the demo families replayed (46% of the stream, parallel calls weighted up) with conversations
# (dialog.py) and JSON answers (json_answers.py) added.
CHAT_MIX = {"arithmetic": 0.12, "tool": 0.08, "parallel": 0.14, "no_tool": 0.03, "chat": 0.03, "echo": 0.06,
            "followup": 0.26, "noreason": 0.04, "nothink": 0.12, "json": 0.12}

CHAT_NOTES = ["**Status: meets every issue-5 and issue-18 target** (held-out, greedy): follow-up turns 93%, history "
              "without reasoning 100%, thinking disabled 98.5%, JSON answers 100% (targets 90%); arithmetic 96.5%, "
              "single tool calls 99.5%, parallel pairs 95%, answers after tool results 99.5%, no-tool turns 100%, "
              "format 99.9%",
              "demo-chat continues from the `demo` checkpoint for 1,500 steps at peak lr 6e-4 (10.7M tokens in "
              "1,853 s at 5,764 tokens/s on 2 cores), the demo families replayed at 46% of the stream so they are "
              "not forgotten",
              "Tried first, same start: 160 steps at lr 4e-4 left the new skills unlearned (follow-ups 32.5%, JSON "
              "23.5%, thinking disabled 64%) and parallel pairs fell from 95% to 83%; 1,200 steps at 6e-4 with 22% "
              "follow-ups reached follow-ups 89%, JSON 100%, thinking disabled 95.5%, parallel 92%. Its follow-up "
              "failures all copied the previous answer right and then slipped a carry in 4-5 digit column "
              "arithmetic, so this run gives follow-ups 26% (from JSON and history-without-reasoning, both at "
              "100%) and 300 more steps"]
DEMO_NOTES = ["rope_theta is 10000 instead of M2's 5,000,000 (a config value): with short contexts and 16 "
              "rotary dims, M2's theta leaves about two rotating frequency pairs",
              "2 layers at lr 1e-3: on a variable-offset copy task this model code formed copying (induction) "
              "heads in ~500-1,000 steps at 2 layers and lr 1e-3, later at 3e-3, and not within 1,500 steps at "
              "3-4 layers. In the 4,500-step run before this one copying formed between steps 1,000 and 3,200 "
              "(held-out tool calls 76% at step 2,600, 93% at 3,200, 98.5% at 4,500; parallel pairs 30.5%, "
              "49.5%, 79%)",
              "The tokenizer spells every value (names, cities, words, enum members, digits) one byte per "
              "token and keeps the corpus's frequent words whole. With a trained BPE, names were cut into "
              "hundreds of rare pieces and the model learned to copy only digits (0/40 on repeat-after-me, "
              "held-out tool arguments 16.5% after 2,600 steps); spelled out, copying a name is the same "
              "skill as copying a number. Half of the training names are made up and 10% of conversations "
              "are repeat-after-me drills, so values must be read from the context rather than recalled",
              "**Status: meets every issue-5 target**: arithmetic 97%, single tool calls 96%, parallel pairs 95% "
              "(both calls, every argument exact), answers after tool results 100%, no-tool turns 100%, format 100%",
              "This checkpoint: 27% parallel examples (was 19%), taken from single calls (25 -> 17%), tools offered"
              " but not needed (10 -> 7%) and small talk (6 -> 5%), with arithmetic (30 -> 32%) and repeat-after-me"
              " drills (10 -> 12%), both short, filling the rest so a step holds about as many tokens as before "
              "(7,670 vs 7,636); 5,500 steps as before. Against the previous checkpoint, same held-out prompts: "
              "parallel 87.5 -> 95%, single tool calls 98.0 -> 96%, arithmetic 98.0 -> 97%, answers 100 -> 100%, "
              "no-tool 100 -> 100%. It read 42.9M tokens in 8,520 s (2 h 22 min) at 5,032 tokens/s: this stop's "
              "machine ran the unchanged trainer at 5,000-5,600 tokens/s where the previous stop's ran 6,790, and a"
              " quarter hour of the run overlapped GPU-test preparation; the recipe is past the 2-hour budget on "
              "such a machine; at the earlier speed the same tokens take about 1 h 45 min",
              "The checkpoint before it: 19% parallel examples (was 13%, taken from arithmetic and single calls) and "
              "5,500 steps (was 4,500). Against the previous checkpoint, same held-out prompts: parallel 79.0 -> "
              "87.5%, single tool calls 98.5 -> 98.0%, arithmetic 98.0 -> 98.0%, answers 99.0 -> 100%. It "
              "read 42.0M tokens in 6,185 s (1 h 43 min) at 6,790 tokens/s, the previous recipe's quiet speed",
              "Made-up training names end in a vowel or any of n r s t k x d l m, and their syllables include x "
              "and y. An earlier checkpoint's names ended only in a vowel or n r s t, and it dropped held-out "
              "letters it had never copied at the end of a name (benchmark -> benchmar, index -> inde, "
              "Bordeaux -> Bordeau): most of its tool-call (94.0%) and parallel (80.0%) failures. With the "
              "wider endings, same command and steps: tool calls 94.0 -> 98.5%, arithmetic 96 -> 98%, parallel "
              "80 -> 79%. Copying formed later (loss 0.10 vs 0.04 at step 1,600) and caught up by the end",
              "Tried and not adopted: made-up names over the whole alphabet (1-4 syllables with consonant "
              "clusters, up to 10 letters), a digit-by-digit comparison step before each subtraction, 17% "
              "parallel examples and 5,000 steps. Same command, held-out arithmetic 89%, tool calls 78%, "
              "parallel 34%: its loss reached the 4,500-step run's step-1,500 level only at step 3,000 (copying formed "
              "later) and copies stayed sloppy (office -> ofice, 126 -> 162). Harder names need a longer "
              "run than the 2-hour budget allows at this size"]

RECIPES = {
    "demo": Recipe("demo", DEMO_MODEL,
                   TrainConfig(steps=5500, batch_size=16, lr=1e-3, warmup=100, save_every=100, log_every=10),
                   notes=DEMO_NOTES),
    "demo-chat": Recipe("demo-chat", DEMO_MODEL, TrainConfig(steps=1500, batch_size=16, lr=6e-4, warmup=50, save_every=100,
                                                             log_every=10),
                        mix=CHAT_MIX, init_from=DEMO_START, data_seed=1,
                        notes=[*CHAT_NOTES, "The notes below are those of the `demo` checkpoint this run starts from",
                               *DEMO_NOTES]),
    "tiny": Recipe("tiny", dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                head_dim=16, rotary_dim=8, num_local_experts=4, num_experts_per_tok=2,
                                intermediate_size=64),
                   TrainConfig(steps=20, batch_size=8, lr=3e-3, warmup=4, save_every=10, log_every=1),
                   vocab_size=600, tokenizer_corpus=300),
}


def get_recipe(name: str, **overrides) -> Recipe:
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; choose one of {', '.join(RECIPES)}")
    r = RECIPES[name]
    if overrides.get("init_from"):
        r = replace(r, init_from=str(overrides["init_from"]))
    train_kw = {k: v for k, v in overrides.items() if v is not None and k in TrainConfig.__dataclass_fields__}
    return replace(r, train=replace(r.train, **train_kw))


def build_tokenizer(r: Recipe) -> Tokenizer:
    texts = []
    for i in range(r.tokenizer_corpus):
        ex = training_example(r.data_seed, i)
        texts.append(assistant_spans(ex.messages, ex.tools)[0])
    return train_word_tokenizer(texts, vocab_size=r.vocab_size, spelled=copied_values())


def copied_values() -> set[str]:
    """Every value a request names and a reply must copy: all pool names (both splits) and enum members."""
    enums = {x for t in TOOLS for p in t.params.values() for x in (p.enum or [])}
    return set(CITIES) | set(PEOPLE) | set(WORDS) | enums


def model_config(r: Recipe, tok: Tokenizer) -> ModelConfig:
    eos = tok.token_to_id("[e~[")
    return ModelConfig(**r.model, vocab_size=tok.get_vocab_size(), max_position_embeddings=r.max_position_embeddings,
                       eos_token_id=[eos], bos_token_id=tok.token_to_id("]~!b["))


def build_model(r: Recipe, tok: Tokenizer) -> MiniMaxM2:
    torch.manual_seed(r.seed)
    with torch.device("meta"):
        model = MiniMaxM2(model_config(r, tok))
    model.to_empty(device="cpu")
    init_weights(model, r.seed)
    return model


class ExampleStream:
    """`stream(i)` -> the i-th encoded training conversation; encodes a block at a time."""

    def __init__(self, tok: Tokenizer, data_seed: int, block: int = 256, mix: dict[str, float] | None = None):
        self.tok, self.seed, self.block, self.mix = tok, data_seed, block, mix
        self.cache: dict[int, Encoded] = {}

    def __call__(self, i: int) -> Encoded:
        if i not in self.cache:
            start = i - i % self.block
            self.cache = {}  # the stream only moves forward
            exs = [training_example(self.seed, j, self.mix) for j in range(start, start + self.block)]
            for j, enc in zip(range(start, start + self.block), encode_conversations(self.tok, [e.conversation() for e in exs])):
                self.cache[j] = enc
        return self.cache[i]


def prepare(r: Recipe, out: Path, resume: bool) -> tuple[Tokenizer, MiniMaxM2]:
    """The tokenizer (trained once, kept in `out` for resuming) and a freshly initialised model, or, for a
    recipe with `init_from`, that checkpoint's tokenizer and weights (its architecture must be the recipe's)."""
    if r.init_from:
        return _from_checkpoint(r, out)
    tok_file = out / "tokenizer.json"
    if resume and tok_file.exists():
        tok = Tokenizer.from_file(str(tok_file))
    else:
        tok = build_tokenizer(r)
        out.mkdir(parents=True, exist_ok=True)
        tok.save(str(tok_file))
    return tok, build_model(r, tok)


def _from_checkpoint(r: Recipe, out: Path) -> tuple[Tokenizer, MiniMaxM2]:
    from ..model.loader import load_model

    src = Path(r.init_from)
    if not (src / "config.json").exists():
        raise FileNotFoundError(
            f"recipe {r.name!r} continues from {src}, which holds no checkpoint: train it with `minimax2 train "
            f"--recipe demo --out runs/demo` (about 2 hours on 2 cores), or restore the demo checkpoint as bundled "
            f"before demo-chat (`git archive 89f939e minimax2/assets/demo | tar -x -C /tmp`) and pass "
            f"--init-from /tmp/minimax2/assets/demo")
    tok = Tokenizer.from_file(str(src / "tokenizer.json"))
    model = build_model(r, tok)
    trained = load_model(src, dtype=torch.float32, quantization="bf16")
    model.load_state_dict(trained.state_dict())  # raises if the recipe's architecture is not the checkpoint's
    out.mkdir(parents=True, exist_ok=True)
    tok.save(str(out / "tokenizer.json"))
    return tok, model


def export(model: MiniMaxM2, tok: Tokenizer, dst: Path, dtype: torch.dtype = torch.bfloat16) -> Path:
    """Write the HF checkpoint: config.json, model.safetensors, tokenizer files, generation_config.json."""
    if dst.exists():
        shutil.rmtree(dst)
    model = model.cpu().eval()
    save_checkpoint(model, dst, dtype=dtype)
    # No chat_template: minimax2 renders M2 prompts natively when a checkpoint carries none.
    save_tokenizer(tok, dst, model_max_length=model.cfg.max_position_embeddings)
    eos = tok.token_to_id("[e~[")
    (dst / "generation_config.json").write_text(json.dumps(
        {"bos_token_id": tok.token_to_id("]~!b["), "eos_token_id": eos, "temperature": 1.0, "top_p": 0.95, "top_k": 40},
        indent=2) + "\n")
    return dst
