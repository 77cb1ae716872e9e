"""`chat`: short single-turn prompts of the kind a chat assistant gets, written here and templated.

Options: n=300, seed=0. Each prompt has a category (its prefix group) whose typical answer length
sets max_tokens (a lognormal around the category's mean): translations are short, explanations long.
"""

from __future__ import annotations

import random

from workloads.conversation import Conversation, Turn
from workloads.lengths import LengthDist
from workloads.spec import Options

SYSTEM = "You are a helpful assistant. Answer clearly and concisely."

PAIRS = [
    ("TCP", "UDP"), ("weather", "climate"), ("a virus", "a bacterium"), ("stocks", "bonds"),
    ("RAM", "disk storage"), ("a latte", "a cappuccino"), ("empathy", "sympathy"), ("a crocodile", "an alligator"),
    ("machine learning", "traditional statistics"), ("a Roth IRA", "a traditional IRA"), ("baking soda", "baking powder"),
    ("HTTP", "HTTPS"), ("a comet", "an asteroid"), ("Git merge", "Git rebase"), ("a lease", "a rental agreement"),
    ("mitosis", "meiosis"), ("affect", "effect"), ("an LLC", "a sole proprietorship"), ("latency", "throughput"),
]  # fmt: skip
HOWTO = [
    "remove a red wine stain from a cotton shirt", "set up a Python virtual environment on Windows",
    "start running if I have never exercised", "negotiate a higher salary for a new job offer",
    "keep basil alive on a windowsill", "back up my phone photos without paying for cloud storage",
    "write a good bug report", "prepare for a technical interview in two weeks", "fix a squeaky door hinge",
    "make my home Wi-Fi faster", "learn to touch type", "cook rice without a rice cooker",
    "write a cover letter for a career change", "teach a child to ride a bike", "undo the last Git commit",
    "politely decline a meeting invitation", "sharpen a kitchen knife with a whetstone", "read a nutrition label",
]  # fmt: skip
KINDS = [
    "haiku",
    "limerick",
    "short poem",
    "two-paragraph story",
    "product description",
    "tweet",
    "toast for a wedding",
]
TOPICS = [
    "a lighthouse keeper's last night on duty", "autumn in a small mountain town", "a robot learning to paint",
    "the first cup of coffee in the morning", "a cat who thinks it is a dog", "a reusable water bottle",
    "the joy of finishing a marathon", "a library after closing time", "noise-cancelling headphones",
    "a grandmother's recipe book", "moving to a new city alone", "a thunderstorm at sea",
]  # fmt: skip
TONES = ["more formal", "friendlier", "more concise", "more persuasive", "less technical"]
SENTENCES = [
    "We regret to inform you that your order has been delayed due to unforeseen circumstances.",
    "Hey, can u send me the report by tmrw? thx",
    "The meeting has been moved to Thursday because half the team is out on Wednesday.",
    "Our new app helps you track your spending and save money every month.",
    "I think maybe we should probably consider possibly changing the deadline.",
    "The server will be down for maintenance from 2 to 4 AM on Sunday.",
    "Please make sure to submit your expense reports before the end of the quarter.",
    "Thanks for your patience while we looked into the billing issue on your account.",
]  # fmt: skip
LANGS = ["French", "Spanish", "German", "Japanese", "Portuguese", "Italian", "Russian"]
PARAGRAPHS = [
    "The city council voted on Tuesday to expand the bike lane network by forty kilometres over the next three "
    "years. Supporters argued the plan would reduce traffic and improve air quality, while some business owners "
    "worried about losing parking spaces in front of their shops. The first phase will begin in the spring.",
    "Researchers found that people who took a ten-minute walk after meals had lower blood sugar levels than those "
    "who stayed seated. The effect was strongest after dinner. The authors caution that the study was small and "
    "that longer trials are needed before making firm recommendations.",
    "The company reported quarterly revenue of 4.2 billion dollars, up eight percent from a year earlier, driven "
    "mostly by its cloud division. Hardware sales fell for the third quarter in a row. Shares rose three percent "
    "in after-hours trading.",
    "After a decade of restoration, the old railway station reopened as a public market with forty food stalls, a "
    "bookshop and a rooftop garden. Local architects kept the original iron roof and the clock tower, which had "
    "been stopped since 1987.",
]  # fmt: skip
THINGS = ["a coffee shop that also sells books", "a budgeting app for students", "a hiking club", "a podcast about history",
          "a dog-walking business", "an open-source note-taking tool", "a bakery specialising in sourdough"]  # fmt: skip
CONCEPTS = ["inflation", "how vaccines work", "recursion", "black holes", "compound interest", "photosynthesis",
            "public-key encryption", "supply and demand", "how a CPU cache works", "the placebo effect"]  # fmt: skip
AUDIENCES = [
    "a ten-year-old",
    "my grandmother",
    "a new employee",
    "someone who has never used a computer",
    "a high-school student",
]

# category -> (templates, typical answer length: mean, std, min, max)
CATEGORIES: dict[str, tuple[list[str], tuple[int, int, int, int]]] = {
    "compare": (["What is the difference between {a} and {b}?", "{A} vs {b}: which should I pick, and why?"], (260, 110, 40, 900)),
    "howto": (["How do I {task}?", "What's the best way to {task}?", "Give me step-by-step instructions to {task}."], (320, 140, 60, 1000)),
    "write": (["Write a {kind} about {topic}.", "Can you write me a {kind} about {topic}?"], (180, 110, 20, 700)),
    "rewrite": (['Rewrite this to sound {tone}: "{sentence}"', 'Make this {tone}, please: "{sentence}"'], (45, 20, 10, 160)),
    "translate": (['Translate into {lang}: "{sentence}"'], (40, 15, 8, 120)),
    "summarize": (["Summarize this in two sentences:\n\n{paragraph}", "TL;DR please:\n\n{paragraph}"], (55, 20, 15, 160)),
    "brainstorm": (["Give me {k} name ideas for {thing}.", "List {k} creative ideas to promote {thing}."], (150, 60, 30, 500)),
    "explain": (["Explain {concept} to {audience}.", "In simple words, what is {concept}?"], (240, 100, 50, 800)),
}  # fmt: skip


def _prompt(category: str, rng: random.Random) -> str:
    templates, _ = CATEGORIES[category]
    a, b = rng.choice(PAIRS)
    fields = {
        "a": a, "A": a[:1].upper() + a[1:], "b": b, "task": rng.choice(HOWTO), "kind": rng.choice(KINDS),
        "topic": rng.choice(TOPICS), "tone": rng.choice(TONES), "sentence": rng.choice(SENTENCES),
        "lang": rng.choice(LANGS), "paragraph": rng.choice(PARAGRAPHS), "k": rng.choice([5, 8, 10]),
        "thing": rng.choice(THINGS), "concept": rng.choice(CONCEPTS), "audience": rng.choice(AUDIENCES),
    }  # fmt: skip
    return rng.choice(templates).format(**fields)


def generate(opts: Options) -> list[Conversation]:
    n = opts.integer("n", 300)
    seed = opts.integer("seed", 0, lo=0)
    names = list(CATEGORIES)
    out: list[Conversation] = []
    seen: set[str] = set()
    for i in range(n):
        rng = random.Random(f"chat:{seed}:{i}")
        for _ in range(20):  # avoid exact duplicates while the template space allows
            category = rng.choice(names)
            text = _prompt(category, rng)
            if text not in seen:
                break
        seen.add(text)
        mean, std, lo, hi = CATEGORIES[category][1]
        max_tokens = LengthDist("lognormal", mean, std, lo, hi).sample(rng)
        turn = Turn(({"role": "user", "content": text},), max_tokens, None, 0.0)
        out.append(
            Conversation(f"chat-{i:05d}", ({"role": "system", "content": SYSTEM},), (turn,), category, {})
        )
    return out
