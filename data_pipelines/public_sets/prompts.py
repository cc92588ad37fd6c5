"""Class names to sentences for zero-shot classification: words, templates, vocabulary coverage.

A class "car_horn" becomes the words "car horn", then one sentence per template ("the sound of car
horn"); the text tower embeds each sentence, and the caller averages a class's sentence embeddings
(alignment.zero_shot.ensemble_class_embeddings) into one class embedding.

Why these default templates: the text tower reads the word2vec vectors of a sentence's known words
(unknown words are dropped, data_pipelines.text) through a few convolutions, so it behaves much like a
bag of words: every known template word pulls all classes the same way, and only the class words tell
them apart. The defaults are therefore short, with few and generic filler words: the bare class words,
an article, and three sound phrasings ("sound", "recording") that move the class toward its sound sense
when the vocabulary knows those words and drop out harmlessly when it does not. Averaging over them
evens out what any one filler word does.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Collection, Sequence

from data_pipelines.text import tokenize

SLOT = "{}"
DEFAULT_TEMPLATES = (
    "{}",
    "a {}",
    "the sound of {}",
    "a recording of {}",
    "this is the sound of {}",
)
# A word boundary inside camelCase: "dogBark" -> "dog Bark", "HTTPServer" -> "HTTP Server".
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def class_words(name: str) -> str:
    """A class name as lowercase words: "car_horn" -> "car horn", "dog-bark" -> "dog bark",
    "chirpingBirds" -> "chirping birds". Words are split as the text tower's tokenizer splits them."""
    return " ".join(tokenize(_CAMEL.sub(" ", name)))


def fill(template: str, words: str) -> str:
    """The template with every {} replaced by the words (other braces are kept as they are)."""
    return template.replace(SLOT, words)


def class_prompts(
    class_names: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES
) -> list[list[str]]:
    """[C][T] sentences: for each class, each template filled with the class's words."""
    if not templates:
        raise ValueError("no templates")
    bad = [t for t in templates if SLOT not in t]
    if bad:
        raise ValueError(f"templates without {SLOT}: {bad}")
    return [[fill(t, class_words(name)) for t in templates] for name in class_names]


def read_templates(path: str | os.PathLike) -> tuple[str, ...]:
    """Templates from a UTF-8 text file, one a line, {} marking the class words.

    ValueError, one line naming the file and line, for a blank line or a line without {}; and for a
    file with no line at all.
    """
    path = os.fspath(path)
    with open(path, encoding="utf-8") as f:
        lines = f.read().splitlines()
    templates = []
    for number, line in enumerate(lines, start=1):
        template = line.strip()
        if not template:
            raise ValueError(
                f"{path}:{number}: blank line (one template a line, {SLOT} marks the class)"
            )
        if SLOT not in template:
            raise ValueError(f"{path}:{number}: {template!r} has no {SLOT} to mark the class")
        templates.append(template)
    if not templates:
        raise ValueError(f"{path}: no template in the file")
    return tuple(templates)


@dataclasses.dataclass(frozen=True)
class Coverage:
    """Which prompt words the text tower's vocabulary lacks (those words are dropped when embedding).

    missing: class name -> its words without a vector, for the classes that lose any.
    unknown: classes with no known word at all: their prompts say nothing of the class, so their
      embedding is the templates' alone and the classifier cannot tell them apart.
    template_missing: template -> its filler words without a vector, for the templates that lose any.
    """

    missing: dict[str, tuple[str, ...]]
    unknown: tuple[str, ...]
    template_missing: dict[str, tuple[str, ...]]


def vocabulary_coverage(
    class_names: Sequence[str],
    vocabulary: Collection[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
) -> Coverage:
    """What each class and template loses to `vocabulary` (a set of words, or a word2vec key_to_index)."""
    missing: dict[str, tuple[str, ...]] = {}
    unknown = []
    for name in class_names:
        words = tokenize(class_words(name))
        lost = tuple(word for word in words if word not in vocabulary)
        if lost:
            missing[name] = lost
        if len(lost) == len(words):
            unknown.append(name)
    template_missing = {}
    for template in templates:
        lost = tuple(word for word in tokenize(fill(template, " ")) if word not in vocabulary)
        if lost:
            template_missing[template] = lost
    return Coverage(missing, tuple(unknown), template_missing)
