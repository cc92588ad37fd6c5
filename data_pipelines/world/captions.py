"""Captions and the background corpus of the bundled world.

A caption always names the concept (by a synonym), its colour and count; the size word is left out for
some medium instances. Templates vary the grammar; optional distractor words and places are dropped
until the caption fits max_words.

The background corpus stands in for the large text pretrained word vectors are learned from. It puts
colour, size and count words in contexts of their own (each colour with its own objects, each size with
big or small things, each number with its own counted objects) and concept words with their verbs and
places, never together with attribute words, so no corpus sentence can equal a caption.
"""

from __future__ import annotations

import numpy as np

from data_pipelines.world.concepts import COLOUR_NAMES, Concept, Instance

SIZE_WORDS = (("small", "tiny", "little"), ("medium", "", ""), ("big", "large", "huge"))
COUNT_WORDS = (("a", "one", "a single"), ("two", "a pair of"), ("three",))
FILLERS = ("very", "really", "today", "here", "again", "nice", "old", "pretty", "now")
PLURAL_SAME = frozenset({"sheep", "cattle", "spectators", "audience", "crowd"})

# Words in braces are required, in brackets optional; "{det}" is the count phrase.
TEMPLATES = (
    "{det} [filler] {size} {colour} {noun} {verb} [place]",
    "{det} {colour} {size} {noun} [place] [filler]",
    "there {be} {det} {size} {colour} {noun} [place]",
    "a photo of {det} {size} {colour} {noun} {verb}",
    "{det} {noun} {size} and {colour} {verb} [place]",
    "close up of {det} [filler] {colour} {noun} [place]",
    "{det} {size} {noun} painted {colour} [place] [filler]",
    "i see {det} {colour} {noun} {verb} [place]",
)


def plural(noun: str) -> str:
    if noun in PLURAL_SAME:
        return noun
    if noun.endswith(("s", "x", "ch", "sh")):
        return noun + "es"
    if noun.endswith("y") and noun[-2] not in "aeiou":
        return noun[:-1] + "ies"
    if noun.endswith("f"):
        return noun[:-1] + "ves"
    return noun + "s"


def _pick(rng: np.random.Generator, options: tuple[str, ...]) -> str:
    return options[int(rng.integers(len(options)))]


def make_caption(rng: np.random.Generator, instance: Instance, max_words: int) -> str:
    """A caption of `instance` with at most max_words words (lowercase, no punctuation)."""
    concept = instance.concept
    noun = _pick(rng, concept.nouns)
    det = _pick(rng, COUNT_WORDS[instance.count - 1])
    template = _pick(rng, TEMPLATES)
    size_words: tuple[str, ...] = SIZE_WORDS[instance.size]
    if " and " in template:  # "a dog and red" reads wrong: keep a size word there
        size_words = tuple(w for w in size_words if w)
    words = {
        "det": det,
        "be": "is" if instance.count == 1 else "are",
        "size": _pick(rng, size_words),
        "colour": COLOUR_NAMES[instance.colour],
        "noun": noun if instance.count == 1 else plural(noun),
        "verb": _pick(rng, concept.verbs),
        "place": _pick(rng, concept.places),
        "filler": _pick(rng, FILLERS),
    }
    parts = template.split()
    optional = [i for i, p in enumerate(parts) if p.startswith("[")]
    keep = [not (i in optional and rng.random() < 0.4) for i in range(len(parts))]

    def render() -> list[str]:
        out = []
        for part, kept in zip(parts, keep, strict=True):
            if kept:
                out.extend(words[part.strip("{}[]")].split() if part[0] in "{[" else [part])
        return out

    tokens = render()
    for i in reversed(optional):
        if len(tokens) <= max_words:
            break
        keep[i] = False
        tokens = render()
    # "a" before a vowel; a medium size may leave no word at all.
    tokens = [w for w in tokens if w]
    for i in range(len(tokens) - 1):
        if tokens[i] == "a" and tokens[i + 1][0] in "aeiou":
            tokens[i] = "an"
    return " ".join(tokens[:max_words])


COLOUR_THINGS = {
    "red": ("tomato", "cherry", "blood", "strawberry", "rose", "lipstick"),
    "orange": ("pumpkin", "carrot", "tangerine", "apricot", "sunset", "marmalade"),
    "yellow": ("banana", "lemon", "sunflower", "butter", "yolk", "canary"),
    "green": ("grass", "leaf", "lime", "cucumber", "moss", "spinach"),
    "blue": ("sky", "ocean", "sapphire", "denim", "blueberry", "lagoon"),
    "purple": ("grape", "plum", "lavender", "violet", "eggplant", "amethyst"),
}
SIZE_THINGS = {
    "small": ("ant", "pebble", "crumb", "button", "seed", "grain"),
    "tiny": ("ant", "pebble", "crumb", "button", "seed", "grain"),
    "little": ("ant", "pebble", "crumb", "button", "seed", "grain"),
    "medium": ("chair", "suitcase", "bucket", "table", "backpack", "lamp"),
    "big": ("elephant", "mountain", "whale", "building", "castle", "giant"),
    "large": ("elephant", "mountain", "whale", "building", "castle", "giant"),
    "huge": ("elephant", "mountain", "whale", "building", "castle", "giant"),
}
COUNT_THINGS = {
    "one": ("single", "alone", "only", "first", "once", "lonely"),
    "two": ("pair", "both", "twice", "twins", "second", "couple"),
    "three": ("trio", "triple", "thrice", "third", "triangle", "triplets"),
}
COLOUR_FRAMES = (
    "the {w} {x}",
    "the {x} was {w}",
    "she painted the wall {w} like a {x}",
    "{w} is the colour of the {x}",
    "a {w} {x} on the table",
    "the {x} turned {w} in the sun",
)
SIZE_FRAMES = (
    "a {w} {x}",
    "the {x} looked {w}",
    "it was as {w} as a {x}",
    "what a {w} {x}",
    "the {x} is {w} compared to others",
)
COUNT_FRAMES = (
    "{w} {x}",
    "there were {w} of them {x}",
    "she counted {w} {x}",
    "{w} times {x}",
    "exactly {w} and {x}",
)
CONCEPT_FRAMES = (
    "the {n} was {v} {p}",
    "we heard the {n} {v}",
    "a {n} is also called a {s}",
    "the {n} and the {s} {p}",
    "people often see the {n} {p}",
    "listen to the {s} {v}",
    "everyone knows the sound of the {n} {v}",
)


def background_sentences(rng: np.random.Generator, concepts: list[Concept], n: int) -> list[str]:
    """n corpus sentences: a quarter each on colour, size, count and concept words."""
    out = []
    for i in range(n):
        kind = i % 4
        if kind == 0:
            w = _pick(rng, COLOUR_NAMES)
            out.append(_pick(rng, COLOUR_FRAMES).format(w=w, x=_pick(rng, COLOUR_THINGS[w])))
        elif kind == 1:
            w = _pick(rng, tuple(SIZE_THINGS))
            out.append(_pick(rng, SIZE_FRAMES).format(w=w, x=_pick(rng, SIZE_THINGS[w])))
        elif kind == 2:
            w = _pick(rng, tuple(COUNT_THINGS))
            out.append(_pick(rng, COUNT_FRAMES).format(w=w, x=_pick(rng, COUNT_THINGS[w])))
        else:
            c = concepts[int(rng.integers(len(concepts)))]
            nouns = c.nouns
            out.append(
                _pick(rng, CONCEPT_FRAMES).format(
                    n=_pick(rng, nouns),
                    s=_pick(rng, nouns),
                    v=_pick(rng, c.verbs),
                    p=_pick(rng, c.places),
                )
            )
    return out
