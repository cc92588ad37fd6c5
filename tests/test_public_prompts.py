"""Class names to words and prompts, templates read from a file, and vocabulary coverage."""

import pytest

from data_pipelines.public_sets import prompts


@pytest.mark.parametrize(
    "name, words",
    [
        ("car_horn", "car horn"),
        ("dog-bark", "dog bark"),
        ("chirping_birds", "chirping birds"),
        ("chirpingBirds", "chirping birds"),
        ("DogBark", "dog bark"),
        ("HTTPServer", "http server"),
        ("Door_wood_KNOCK", "door wood knock"),
        ("  siren ", "siren"),
        ("Speech, male", "speech male"),
    ],
)
def test_class_words(name, words):
    assert prompts.class_words(name) == words


def test_class_prompts_fill_every_template():
    sentences = prompts.class_prompts(["car_horn", "dog"], ("{}", "the sound of {}", "{} {{x}}"))
    assert sentences == [
        ["car horn", "the sound of car horn", "car horn {{x}}"],
        ["dog", "the sound of dog", "dog {{x}}"],
    ]
    assert len(prompts.class_prompts(["siren"])[0]) == len(prompts.DEFAULT_TEMPLATES)
    assert all("{}" in t for t in prompts.DEFAULT_TEMPLATES)
    with pytest.raises(ValueError, match="without"):
        prompts.class_prompts(["dog"], ("a dog",))


def test_read_templates(tmp_path):
    path = tmp_path / "templates.txt"
    path.write_text("{}\n  a recording of {}  \nthe {} sound\n", encoding="utf-8")
    assert prompts.read_templates(path) == ("{}", "a recording of {}", "the {} sound")


@pytest.mark.parametrize(
    "contents, message",
    [
        ("{}\n\nthe {}\n", r"templates.txt:2: blank line"),
        ("{}\nthe sound\n", r"templates.txt:2: 'the sound' has no \{\}"),
        ("", r"no template"),
    ],
)
def test_read_templates_rejects_bad_lines(tmp_path, contents, message):
    path = tmp_path / "templates.txt"
    path.write_text(contents, encoding="utf-8")
    with pytest.raises(ValueError, match=message) as err:
        prompts.read_templates(path)
    assert "\n" not in str(err.value)


def test_vocabulary_coverage():
    vocabulary = {"car", "dog", "sound", "the", "of", "a"}
    coverage = prompts.vocabulary_coverage(
        ["car_horn", "dog", "chirping_birds"],
        vocabulary,
        ("{}", "the sound of {}", "a recording of {}"),
    )
    assert coverage.missing == {"car_horn": ("horn",), "chirping_birds": ("chirping", "birds")}
    assert coverage.unknown == ("chirping_birds",)
    assert coverage.template_missing == {"a recording of {}": ("recording",)}
    # A gensim key_to_index dict serves as the vocabulary too.
    assert prompts.vocabulary_coverage(["dog"], {"dog": 0}, ("{}",)).missing == {}
