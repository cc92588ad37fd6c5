"""Captions and the background corpus of the bundled world.

A caption always names the concept (by a synonym), its colour and count; the size word is left out for
some medium instances. Templates vary the grammar; optional distractor words and places are dropped
until the caption fits max_words.

Every caption also names one other concept in a negated clause ("... but no cats meowing", "no cat but
...") whose verb appears exactly when the main clause has one, and the place belongs to either concept at
random. So the bag of words of "a dog, no cat" equals that of "a cat, no dog" in distribution: the
concept is in the word order (which noun the negation governs), not in which words occur, and a linear
read-out of the words cannot tell the two apart while a model of the sequence can.

The background corpus stands in for the large text pretrained word vectors are learned from. It puts
colour, size and count words in contexts of their own (each colour with its own objects, each size with
big or small things, each number with its own counted objects) and concept words with their verbs and
places, never together with attribute words, so no corpus sentence can equal a caption.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from data_pipelines.world.concepts import COLOUR_NAMES, MAX_COUNT, Concept, Instance

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
# The clause naming the absent concept: after the main clause, or before it.
NEGATIONS_AFTER = ("but no", "and no", "not any", "without any")
NEGATIONS_BEFORE = (("no", "but"), ("no", "just"), ("not any", "but"))


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


def _noun_phrase(rng: np.random.Generator, concept: Concept, count: int) -> str:
    noun = _pick(rng, concept.nouns)
    return noun if count == 1 else plural(noun)


def make_caption(
    rng: np.random.Generator, instance: Instance, concepts: Sequence[Concept], max_words: int
) -> str:
    """A caption of `instance` with at most max_words words (lowercase, no punctuation).

    The negated clause names a concept drawn uniformly from the others in `concepts`; it is left out
    only when the main clause alone fills max_words.
    """
    concept = instance.concept
    others = [c for c in concepts if c.index != concept.index]
    absent = others[int(rng.integers(len(others)))] if others else None
    det = _pick(rng, COUNT_WORDS[instance.count - 1])
    template = _pick(rng, TEMPLATES)
    size_words: tuple[str, ...] = SIZE_WORDS[instance.size]
    if " and " in template:  # "a dog and red" reads wrong: keep a size word there
        size_words = tuple(w for w in size_words if w)
    place_owner = absent if absent is not None and rng.random() < 0.5 else concept
    words = {
        "det": det,
        "be": "is" if instance.count == 1 else "are",
        "size": _pick(rng, size_words),
        "colour": COLOUR_NAMES[instance.colour],
        "noun": _noun_phrase(rng, concept, instance.count),
        "verb": _pick(rng, concept.verbs),
        "place": _pick(rng, place_owner.places),
        "filler": _pick(rng, FILLERS),
    }
    parts = template.split()
    if absent is not None:
        words["absent"] = _noun_phrase(rng, absent, int(rng.integers(1, MAX_COUNT + 1)))
        words["absent_verb"] = _pick(rng, absent.verbs)
        # The absent concept's verb goes with it exactly when the main clause has a verb.
        clause = ["{absent}"] + (["{absent_verb}"] if "{verb}" in parts else [])
        if rng.random() < 0.5:
            parts = parts + _pick(rng, NEGATIONS_AFTER).split() + clause
        else:
            negation, joint = NEGATIONS_BEFORE[int(rng.integers(len(NEGATIONS_BEFORE)))]
            parts = negation.split() + clause + [joint] + parts
    optional = [i for i, p in enumerate(parts) if p.startswith("[")]
    keep = [not (i in optional and rng.random() < 0.4) for i in range(len(parts))]

    def render(parts: list[str], keep: list[bool]) -> list[str]:
        out = []
        for part, kept in zip(parts, keep, strict=True):
            if kept:
                out.extend(words[part.strip("{}[]")].split() if part[0] in "{[" else [part])
        # "a" before a vowel; a medium size may leave no word at all.
        out = [w for w in out if w]
        return ["an" if w == "a" and i + 1 < len(out) and out[i + 1][0] in "aeiou" else w
                for i, w in enumerate(out)]  # fmt: skip

    tokens = render(parts, keep)
    for i in reversed(optional):
        if len(tokens) <= max_words:
            break
        keep[i] = False
        tokens = render(parts, keep)
    if len(tokens) > max_words:  # the main clause alone fills the caption
        main = template.split()
        tokens = render(main, [not p.startswith("[") for p in main])
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
