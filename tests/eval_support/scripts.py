"""Scripted M2 turns (raw model output after the generation prompt `<think>\\n`)."""

SMOKE_ADD = [
    "The bug is probably in calc.py; let me look.</think>\n\nLet me read the file.\n"
    "<minimax:tool_call>\n<invoke name=\"bash\">\n<parameter name=\"command\">cat calc.py</parameter>\n"
    "</invoke>\n</minimax:tool_call>",
    "add subtracts; it must add.</think>\n\n<minimax:tool_call>\n<invoke name=\"edit\">\n"
    "<parameter name=\"command\">str_replace</parameter>\n<parameter name=\"path\">calc.py</parameter>\n"
    "<parameter name=\"old_str\">return a - b</parameter>\n<parameter name=\"new_str\">return a + b"
    "</parameter>\n</invoke>\n</minimax:tool_call>",
    "That should be it.</think>\n\nThe fix is in place.",
    "I have to call submit.</think>\n\n<minimax:tool_call>\n<invoke name=\"submit\">\n</invoke>\n"
    "</minimax:tool_call>",
]
SMOKE_ADD_REASONING = [t.partition("</think>")[0] for t in SMOKE_ADD]

CHAT = ["The user wants a short answer.</think>\n\nHello there, this is a scripted reply."]
