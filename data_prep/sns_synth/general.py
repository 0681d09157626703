"""Translation (zh<->en) and the general rehearsal tasks: arithmetic, instructions, code.

Translation pairs are parallel templates filled with the emoji package's English/Chinese item names
(the only real parallel text that ships offline); instructions carry IFEval-style constraints in
``reference.constraints``; code records carry ``reference.tests`` for the sandbox.
"""

from __future__ import annotations

import json
import random
from typing import Any

from data_prep.sns_synth import sources
from data_prep.sns_synth.sns_tasks import Example

TRANSLATION_TEMPLATES = (
    ("今天吃了{zh}，太好吃了！", "I had {en} today, it was delicious!"),
    ("给大家推荐这个{zh}。", "I recommend this {en} to everyone."),
    ("这个{zh}真的很好用。", "This {en} is really useful."),
    ("明天和朋友一起去买{zh}。", "Tomorrow I will buy {en} with friends."),
    ("{n}个{zh}只要{price}元。", "{n} {en} for only {price} yuan."),
    ("周末去看了{zh}，心情很好。", "I went to see the {en} this weekend and felt great."),
    ("我最喜欢的是{zh}。", "My favorite is the {en}."),
    ("这家店的{zh}很便宜。", "The {en} at this shop is very cheap."),
)
ARITHMETIC_OPERATORS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}
# Expression template -> its value at x (for the test asserts).
CODE_EXPRESSIONS = {
    "x * {a} + {b}": lambda x, a, b: x * a + b,
    "x ** 2 - {a}": lambda x, a, b: x**2 - a,
    "abs(x - {a})": lambda x, a, b: abs(x - a),
    "max(x, {a}) + {b}": lambda x, a, b: max(x, a) + b,
    "(x + {a}) * {b}": lambda x, a, b: (x + a) * b,
    "x % {a}": lambda x, a, b: x % a,
}
CODE_TEST_INPUTS = (0, 2, -3, 10)


def translation(rng: random.Random, direction: str) -> tuple[Example, str]:
    """A parallel pair; returns the example and its language tag (``zh-en`` or ``en-zh``)."""
    zh_template, en_template = rng.choice(TRANSLATION_TEMPLATES)
    group = rng.choice(("food", "animals", "female", "male", "neutral"))
    item = rng.choice(sources.items()[group])
    slots = {"n": str(rng.randint(2, 9)), "price": str(rng.randint(5, 99))}
    zh = zh_template.format(zh=item.zh, **slots)
    en = en_template.format(en=item.en, **slots)
    en = en[0].upper() + en[1:]
    if direction == "zh-en":
        return Example(zh, en), direction
    return Example(en, zh), direction


def arithmetic(rng: random.Random, language: str) -> Example:
    """a op b with a worked line and a final answer line (the rationale the recipe asks for)."""
    op = rng.choice(sorted(ARITHMETIC_OPERATORS))
    a, b = (rng.randint(2, 99), rng.randint(2, 99)) if op != "×" else (rng.randint(2, 30), rng.randint(2, 12))
    result = ARITHMETIC_OPERATORS[op](a, b)
    if language == "zh":
        return Example(f"计算：{a}{op}{b}=？", f"{a}{op}{b}={result}\n答案：{result}")
    return Example(f"Compute {a} {op} {b}.", f"{a} {op} {b} = {result}\nAnswer: {result}")


def instruction(rng: random.Random, language: str, fake: Any) -> Example:
    """A short instruction with verifiable constraints and an answer that satisfies them."""
    if language == "zh":
        first, second = rng.sample(sources.chinese_words(), 2)
        constraints = [
            {"type": "language", "language": "zh"},
            {"type": "keywords", "words": [first, second]},
            {"type": "forbidden_words", "words": ["不"]},
        ]
        return Example(
            f"用中文写一句包含“{first}”和“{second}”的话，不要用“不”字。",
            f"我们谈到了{first}和{second}。",
            {"constraints": constraints},
        )
    kind = rng.choice(("list", "upper", "json"))
    if kind == "list":
        count = rng.randint(2, 4)
        names = [item.en for item in rng.sample(sources.items()["animals"], count)]
        constraints = [
            {"type": "item_count", "separator": ",", "count": count},
            {"type": "case", "case": "lower"},
        ]
        answer = ", ".join(name.lower() for name in names)
        return Example(
            f"List {count} animals in lowercase, separated by commas.", answer, {"constraints": constraints}
        )
    if kind == "upper":
        word, count = rng.choice(sources.english_words()), rng.randint(2, 4)
        repeated = {"type": "keywords", "words": [word], "min_count": count, "max_count": count}
        constraints = [{"type": "case", "case": "upper"}, repeated]
        answer = " ".join([word.upper()] * count)
        question = f"Write the word {word} {count} times in uppercase, separated by spaces."
        return Example(question, answer, {"constraints": constraints})
    city = fake.city()
    constraints = [{"type": "json_object", "required_keys": ["city"]}, {"type": "keywords", "words": [city]}]
    answer = json.dumps({"city": city})
    return Example(f'Reply in JSON with the key "city" set to {city}.', answer, {"constraints": constraints})


def code(rng: random.Random, language: str) -> Example:
    """Write f(x) = expression; tests assert the values at a few inputs."""
    template = rng.choice(sorted(CODE_EXPRESSIONS))
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    expression = template.format(a=a, b=b)
    tests = "\n".join(f"assert f({x}) == {CODE_EXPRESSIONS[template](x, a, b)}" for x in CODE_TEST_INPUTS)
    answer = f"```python\ndef f(x):\n    return {expression}\n```"
    if language == "zh":
        question = f"写一个 Python 函数 f(x)，返回 {expression}。"
    else:
        question = f"Write a Python function f(x) that returns {expression}."
    return Example(question, answer, {"tests": tests})
