"""Arithmetic problems with column-by-column reasoning a small model can learn to execute.

Every reasoning step is local: one digit sum, difference or product plus a carry, so each
generated token depends on a few digits the model can attend to. Multiplication works through one
partial product per digit of the second factor, then adds them column by column.
"""

from __future__ import annotations

import hashlib
import random

PLACES = ["Ones", "Tens", "Hundreds", "Thousands", "Ten-thousands", "Hundred-thousands"]


def digits(n: int, width: int) -> list[int]:
    """Least significant first, padded with zeros to `width`."""
    return [(n // 10 ** k) % 10 for k in range(width)]


def add_steps(a: int, b: int) -> list[str]:
    width = max(len(str(a)), len(str(b)))
    da, db = digits(a, width), digits(b, width)
    steps, carry, so_far = [], 0, ""
    for k in range(width):
        total = da[k] + db[k] + carry
        plus = f" + {carry}" if carry else ""
        so_far = str(total % 10) + so_far
        steps.append(f"{PLACES[k]}: {da[k]} + {db[k]}{plus} = {total}, write {total % 10}"
                     + (", carry 1" if total >= 10 else "") + f" -> {so_far}")
        carry = total // 10
    if carry:
        steps.append(f"{PLACES[width]}: write 1 -> 1{so_far}")
    return steps


def sub_steps(a: int, b: int) -> list[str]:
    """a >= b."""
    width = len(str(a))
    da, db = digits(a, width), digits(b, width)
    steps, borrow, so_far = [], 0, ""
    for k in range(width):
        top = da[k] - borrow
        minus = f" - {borrow}" if borrow else ""
        if top < db[k]:
            so_far = str(top + 10 - db[k]) + so_far
            steps.append(f"{PLACES[k]}: {da[k]}{minus} - {db[k]} needs a borrow, {top + 10} - {db[k]} = {top + 10 - db[k]} -> {so_far}")
            borrow = 1
        else:
            so_far = str(top - db[k]) + so_far
            steps.append(f"{PLACES[k]}: {da[k]}{minus} - {db[k]} = {top - db[k]} -> {so_far}")
            borrow = 0
    return steps


def mul_digit_steps(a: int, d: int) -> list[str]:
    steps, carry, so_far = [], 0, ""
    for x in digits(a, len(str(a))):
        p = x * d
        total = p + carry
        plus = f" + {carry} = {total}" if carry else ""
        so_far = str(total % 10) + so_far
        steps.append(f"{x} x {d} = {p}{plus}, write {total % 10}" + (f", carry {total // 10}" if total >= 10 else "")
                     + f" -> {so_far}")
        carry = total // 10
    if carry:
        steps.append(f"write {carry} -> {carry}{so_far}")
    return steps


def reasoning(a: int, op: str, b: int) -> str:
    """Step-by-step reasoning for `a op b`, ending with the result."""
    if op == "+":
        lines = [f"Add {a} and {b} column by column."] + add_steps(a, b)
    elif op == "-":
        if a >= b:
            lines = [f"Subtract {b} from {a} column by column."] + sub_steps(a, b)
        else:
            lines = [f"{a} is less than {b}, so compute {b} - {a} and make it negative."] + sub_steps(b, a)
    elif op == "*":
        lines = [f"Multiply {a} by {b} one digit of {b} at a time."]
        partials = []
        for k, d in enumerate(digits(b, len(str(b)))):
            shift = 10 ** k
            lines.append(f"{a} x {d}{'0' * k}:")
            lines += mul_digit_steps(a, d)
            partials.append(a * d * shift)
            lines.append(f"So {a} x {d * shift} = {a * d * shift}.")
        if len(partials) == 2:
            lines.append(f"Now add {partials[0]} and {partials[1]}.")
            lines += add_steps(partials[0], partials[1])
    else:
        raise ValueError(f"unknown operator {op!r}")
    lines.append(f"The result is {apply(a, op, b)}.")
    return "\n".join(lines)


def apply(a: int, op: str, b: int) -> int:
    return a + b if op == "+" else a - b if op == "-" else a * b


def problem_is_held_out(a: int, op: str, b: int) -> bool:
    digest = hashlib.blake2b(f"arith:{a}{op}{b}".encode(), digest_size=2).digest()
    return int.from_bytes(digest, "little") % 4 == 0


def draw_problem(rng: random.Random, split: str) -> tuple[int, str, int]:
    """Operands of 1 to 3 digits; a product's second factor has 1 or 2 digits."""
    while True:
        op = rng.choice("+-*")
        a = rng.randint(0, 10 ** rng.randint(1, 3) - 1)
        b = rng.randint(0, 10 ** (rng.randint(1, 3) if op != "*" else rng.randint(1, 2)) - 1)
        if problem_is_held_out(a, op, b) == (split == "heldout"):
            return a, op, b


QUESTIONS = ["What is {a} {op} {b}?", "Compute {a} {op} {b}.", "{a} {op} {b} = ?", "Please calculate {a} {op} {b}.",
             "How much is {a} {op} {b}?"]
