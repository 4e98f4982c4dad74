"""Value pools for the synthetic data, each split once into a training and a held-out part.

Every free value a conversation can contain (city, person, word, integer, amount, ...) is drawn
through `Values(split)`, so a held-out prompt's arguments never occur in training. Strings are split
by a seeded shuffle of their pool; integers by a seeded hash of the number; decimals by their
integer part. Enum members come from the tool schemas and are shared by both splits.

Half of the training draws from a string pool are made-up names (random syllables, never a
held-out name): a model that has seen every training city many times can recall them instead of
reading them from the request, and held-out values then fail. Made-up names leave copying from
the context as the only way to get them right.
"""

from __future__ import annotations

import hashlib
import random

HELD_OUT_FRACTION = 0.25

CITIES = """Paris Rome Oslo Lima Cairo Tokyo Berlin Madrid Dublin Vienna Prague Warsaw Lisbon Athens
Helsinki Stockholm Copenhagen Brussels Amsterdam Zurich Geneva Munich Hamburg Milan Naples Venice Florence
Seville Valencia Porto Krakow Budapest Bucharest Sofia Belgrade Zagreb Riga Tallinn Vilnius Minsk Kyiv
Istanbul Ankara Beirut Amman Dubai Doha Riyadh Tehran Karachi Delhi Mumbai Chennai Kolkata Dhaka Bangkok
Hanoi Manila Jakarta Singapore Seoul Busan Osaka Kyoto Beijing Shanghai Shenzhen Taipei Sydney Melbourne
Perth Auckland Wellington Toronto Montreal Vancouver Chicago Boston Denver Seattle Austin Houston Miami
Atlanta Phoenix Dallas Quito Bogota Caracas Santiago Havana Nairobi Lagos Accra Dakar Tunis Algiers
Casablanca Marrakesh Luanda Harare Kampala Kigali Reykjavik Bergen Malmo Gdansk Leipzig Dresden Lyon
Marseille Nice Bordeaux Toulouse Lille Nantes Bilbao Granada Palermo Turin Genoa Bologna""".split()

PEOPLE = """Alice Bob Carol David Emma Frank Grace Henry Irene Jack Karen Liam Mia Noah Olivia Peter
Quinn Rosa Sam Tina Umar Vera Walter Xena Yusuf Zoe Aaron Bella Caleb Diana Ethan Fiona George Hannah Isaac
Julia Kevin Laura Mason Nina Oscar Paula Ryan Sofia Thomas Ursula Victor Wendy Yara Zane Amir Bianca Chloe
Dmitri Elena Felix Greta Hugo Ines Jonas Kira Leon Maya Nils Omar Priya Rafael Sara Tomas Uma Vivian Wanda
Ximena Yosef Zara Anton Beatrix Cyrus Dalia Emil Farah Gustav Hedda Igor Jana Kofi Lena Marco Nadia Otto
Pia Ravi Selma Theo Ulla Vlad Willa""".split()

WORDS = """budget report invoice summary notes draft agenda minutes roadmap contract proposal
schedule backlog release changelog design review survey forecast payroll inventory receipt estimate
manual guide tutorial outline letter memo resume portfolio ledger quota metrics journal diary recipe
playlist photo banner logo poster slides chart table index catalog archive backup config profile
settings license readme script module plugin template theme palette sketch mockup prototype benchmark
dataset model sample trace log audit ticket issue patch branch commit merge deploy cluster server router
gateway printer scanner camera sensor battery charger monitor keyboard speaker headset tablet laptop
garden kitchen garage office studio library museum stadium harbor bridge tunnel castle temple market""".split()

_SEED = 20251126


def _split(pool: list[str], seed: int) -> tuple[list[str], list[str]]:
    items = sorted(set(pool))
    random.Random(seed).shuffle(items)
    cut = int(len(items) * HELD_OUT_FRACTION)
    return sorted(items[cut:]), sorted(items[:cut])


def number_is_held_out(n: int) -> bool:
    """A fixed 25% of all integers, chosen by a seeded hash (so ranges of any width split alike)."""
    digest = hashlib.blake2b(f"{_SEED}:{n}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "little") % 4 == 0


_POOLS = {name: _split(pool, _SEED + i) for i, (name, pool) in enumerate(
    (("city", CITIES), ("person", PEOPLE), ("word", WORDS)))}
# A name in two pools (Sofia is a city and a person) must not be held out in one and trained in the other.
_TRAINED = set().union(*(train for train, _ in _POOLS.values()))
_POOLS = {name: (train, [x for x in held if x not in _TRAINED]) for name, (train, held) in _POOLS.items()}


_SYLLABLES = [c + v for c in "bcdfghjklmnprstvwxyz" for v in "aeiou"] + ["an", "el", "or", "is", "un", "ex", "ax", "ok"]
# Closing letters: a name may end in any of these, so a held-out word's last letter (benchmark, index,
# Bordeaux) is one the model has copied at the end of a name before.
_ENDINGS = ["", "", "", "n", "r", "s", "t", "k", "x", "d", "l", "m"]
_HELD_OUT = set().union(*(held for _, held in _POOLS.values()))
MADE_UP_FRACTION = 0.5


def made_up_name(rng: random.Random, capitalized: bool) -> str:
    """Two to four random syllables, usually with a closing consonant; never a held-out name."""
    while True:
        name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))) + rng.choice(_ENDINGS)
        name = name.capitalize() if capitalized else name
        if name not in _HELD_OUT:
            return name


class Values:
    """Draw values of one split ("train" or "heldout") from a `random.Random`."""

    def __init__(self, rng: random.Random, split: str = "train"):
        if split not in ("train", "heldout"):
            raise ValueError(f"split must be 'train' or 'heldout', got {split!r}")
        self.rng = rng
        self.held = split == "heldout"

    def pick(self, pool: str) -> str:
        if not self.held and self.rng.random() < MADE_UP_FRACTION:
            return made_up_name(self.rng, capitalized=pool != "word")
        return self.rng.choice(_POOLS[pool][1 if self.held else 0])

    def pick_many(self, pool: str, k: int) -> list[str]:
        """`k` distinct values."""
        out: list[str] = []
        while len(out) < k:
            x = self.pick(pool)
            if x not in out:
                out.append(x)
        return out

    def integer(self, lo: int, hi: int) -> int:
        while True:
            n = self.rng.randint(lo, hi)
            if number_is_held_out(n) == self.held:
                return n

    def decimal(self, lo: int, hi: int) -> float:
        """A number with one or two decimals, never integral, split by its integer part."""
        whole = self.integer(lo, hi)
        return whole + self.rng.choice([0.25, 0.5, 0.75, 0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])

    def date(self) -> str:
        month, day = self.rng.randint(1, 12), self.integer(1, 28)
        return f"2026-{month:02d}-{day:02d}"

    def choice(self, options):
        return self.rng.choice(options)


def pool(name: str, split: str) -> list[str]:
    return list(_POOLS[name][1 if split == "heldout" else 0])
