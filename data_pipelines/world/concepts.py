"""Concepts of the bundled world: names, words, visual and sound signatures, instance attributes.

A concept is a combination of low-level features that other concepts share (every shape family, texture,
harmonic profile and envelope belongs to several concepts), so that no single raw feature names it.
Instance attributes (size, colour, count) vary within a concept and show in every modality of a sample.
"""

from __future__ import annotations

import dataclasses

import numpy as np

# (noun, synonyms, -ing verbs, places). Every synonym belongs to one concept only.
LEXICON: tuple[tuple[str, tuple[str, ...], tuple[str, ...], tuple[str, ...]], ...] = (
    ("dog", ("puppy", "hound"), ("barking", "running", "playing"), ("in the park", "on the lawn")),
    ("church", ("chapel", "cathedral"), ("ringing", "standing"), ("in the village", "on the hill")),
    (
        "engine",
        ("motor", "generator"),
        ("running", "humming", "roaring"),
        ("in the garage", "in the shed"),
    ),
    (
        "bird",
        ("songbird", "finch"),
        ("singing", "chirping", "flying"),
        ("in the tree", "in the sky"),
    ),
    ("baby", ("infant", "toddler"), ("crying", "laughing", "babbling"), ("in the crib", "at home")),
    (
        "car",
        ("automobile", "sedan"),
        ("honking", "driving", "passing"),
        ("on the road", "in traffic"),
    ),
    (
        "train",
        ("locomotive", "railcar"),
        ("whistling", "rolling"),
        ("at the station", "on the tracks"),
    ),
    (
        "horse",
        ("pony", "stallion"),
        ("neighing", "galloping", "trotting"),
        ("in the field", "on the farm"),
    ),
    ("cow", ("calf", "cattle"), ("mooing", "grazing"), ("in the meadow", "in the barn")),
    ("sheep", ("lamb", "ewe"), ("bleating", "grazing"), ("on the hillside", "in the pen")),
    ("duck", ("duckling", "mallard"), ("quacking", "swimming"), ("on the pond", "by the lake")),
    ("frog", ("toad", "bullfrog"), ("croaking", "jumping"), ("in the swamp", "by the pond")),
    ("owl", ("owlet", "barnowl"), ("hooting", "watching"), ("in the forest", "at night")),
    (
        "bee",
        ("bumblebee", "honeybee"),
        ("buzzing", "hovering"),
        ("in the garden", "near the flowers"),
    ),
    (
        "bell",
        ("chime", "gong"),
        ("ringing", "tolling", "swinging"),
        ("in the tower", "at the gate"),
    ),
    ("drum", ("snare", "tambourine"), ("beating", "pounding"), ("on the stage", "in the band")),
    ("guitar", ("banjo", "ukulele"), ("strumming", "playing"), ("on the stage", "by the fire")),
    ("piano", ("keyboard", "organ"), ("playing", "sounding"), ("in the hall", "in the studio")),
    ("violin", ("fiddle", "viola"), ("playing", "sounding"), ("in the orchestra", "in the hall")),
    ("trumpet", ("horn", "bugle"), ("blaring", "playing"), ("in the parade", "in the band")),
    ("clock", ("alarm", "timer"), ("ticking", "chiming"), ("on the wall", "on the shelf")),
    ("phone", ("telephone", "cellphone"), ("ringing", "buzzing"), ("on the desk", "in the office")),
    (
        "siren",
        ("ambulance", "alarmbell"),
        ("wailing", "blaring"),
        ("in the city", "down the street"),
    ),
    ("boat", ("ship", "ferry"), ("sailing", "floating"), ("on the sea", "in the harbor")),
    ("plane", ("airplane", "jet"), ("flying", "taking off"), ("in the sky", "over the airport")),
    (
        "helicopter",
        ("chopper", "copter"),
        ("hovering", "flying"),
        ("over the city", "above the trees"),
    ),
    (
        "motorcycle",
        ("motorbike", "scooter"),
        ("revving", "speeding"),
        ("on the highway", "on the road"),
    ),
    ("truck", ("lorry", "pickup"), ("rumbling", "driving"), ("on the highway", "at the depot")),
    ("bus", ("coach", "minibus"), ("stopping", "driving"), ("at the stop", "in the city")),
    ("tractor", ("harvester", "plow"), ("plowing", "rumbling"), ("in the field", "on the farm")),
    (
        "hammer",
        ("mallet", "sledgehammer"),
        ("pounding", "hitting"),
        ("in the workshop", "on the site"),
    ),
    ("saw", ("chainsaw", "handsaw"), ("cutting", "buzzing"), ("in the workshop", "in the woods")),
    (
        "drill",
        ("jackhammer", "borer"),
        ("drilling", "whirring"),
        ("on the site", "in the workshop"),
    ),
    ("kettle", ("teapot", "boiler"), ("whistling", "boiling"), ("in the kitchen", "on the stove")),
    (
        "fountain",
        ("waterfall", "stream"),
        ("splashing", "flowing"),
        ("in the square", "in the garden"),
    ),
    (
        "fire",
        ("campfire", "bonfire"),
        ("crackling", "burning"),
        ("in the fireplace", "at the camp"),
    ),
    (
        "windmill",
        ("turbine", "pinwheel"),
        ("turning", "whooshing"),
        ("on the hill", "by the coast"),
    ),
    (
        "crowd",
        ("audience", "spectators"),
        ("cheering", "clapping"),
        ("in the stadium", "at the match"),
    ),
    ("ball", ("football", "basketball"), ("bouncing", "rolling"), ("on the court", "in the yard")),
    ("whistle", ("referee", "flute"), ("blowing", "shrilling"), ("on the pitch", "at the game")),
    ("lion", ("lioness", "cub"), ("roaring", "prowling"), ("in the savanna", "at the zoo")),
    ("wolf", ("coyote", "jackal"), ("howling", "prowling"), ("in the forest", "under the moon")),
    ("rooster", ("hen", "chicken"), ("crowing", "clucking"), ("in the yard", "on the farm")),
    ("pig", ("piglet", "hog"), ("oinking", "snorting"), ("in the mud", "in the sty")),
    ("goat", ("kid", "billygoat"), ("bleating", "climbing"), ("on the rocks", "on the farm")),
    ("cat", ("kitten", "kitty"), ("meowing", "purring"), ("on the sofa", "by the window")),
    ("crow", ("raven", "magpie"), ("cawing", "perching"), ("on the fence", "on the wire")),
    ("bicycle", ("bike", "tricycle"), ("ringing", "riding"), ("on the path", "in the lane")),
)
MAX_CONCEPTS = len(LEXICON)

# Instance colour: name, RGB, and the frequency (Hz) of the colour's shimmer band in the sound.
COLOURS: tuple[tuple[str, tuple[int, int, int], float], ...] = (
    ("red", (220, 40, 40), 2000.0),
    ("orange", (240, 140, 20), 2280.0),
    ("yellow", (230, 215, 35), 2560.0),
    ("green", (40, 170, 60), 2840.0),
    ("blue", (40, 80, 220), 3120.0),
    ("purple", (150, 50, 200), 3400.0),
)
COLOUR_NAMES = tuple(c[0] for c in COLOURS)
SIZE_NAMES = ("small", "medium", "big")
MAX_COUNT = 3

SHAPES = ("circle", "square", "triangle", "diamond", "cross", "ring", "star", "ellipse")
TEXTURES = ("solid", "stripes", "checker", "dots", "rings", "split")
PALETTES = ("dark", "light")  # how a texture shades the instance colour
HARMONICS = ("pure", "saw", "square", "formant", "hollow", "bell")
ENVELOPES = ("percussive", "sustained", "swell", "reverse")
VARIANT_STYLES = ("outlined", "marked", "inverted")  # bit i of the variant index turns style i on


@dataclasses.dataclass(frozen=True)
class Concept:
    """One concept: its words, how it looks and how it sounds.

    Visual: shape family, texture and palette (the texture's shade). Sound: base pitch (Hz, for a medium
    size), harmonic profile, envelope, tremolo rate (Hz, 0 = none), pitch glide (octaves over one event),
    event duration (s) and a noise band (centre Hz, width Hz, level relative to the tone).
    """

    index: int
    name: str
    synonyms: tuple[str, ...]
    verbs: tuple[str, ...]
    places: tuple[str, ...]
    shape: str
    texture: str
    palette: str
    pitch: float
    harmonics: str
    envelope: str
    tremolo: float
    glide: float
    duration: float
    noise_centre: float
    noise_width: float
    noise_level: float

    @property
    def nouns(self) -> tuple[str, ...]:
        return (self.name, *self.synonyms)


def make_concepts(num_concepts: int, seed: int) -> list[Concept]:
    """The world's concepts, a pure function of (num_concepts, seed).

    Shape and texture pairs are all distinct, and each shape and texture serves several concepts; base
    pitches are log-spaced over 170-850 Hz (2.3 octaves) and dealt out at random, so pitch alone is ambiguous once the
    instance size moves it by up to 0.4 octave either way.
    """
    if not 2 <= num_concepts <= MAX_CONCEPTS:
        raise ValueError(f"num_concepts must be in [2, {MAX_CONCEPTS}], got {num_concepts}")
    rng = np.random.default_rng([seed, 9001])
    names = rng.permutation(MAX_CONCEPTS)[:num_concepts]
    shape_ids = rng.permutation(len(SHAPES))
    texture_ids = rng.permutation(len(TEXTURES))
    pitches = rng.permutation(np.geomspace(170.0, 850.0, num_concepts))
    noise_centres = rng.permutation(np.geomspace(350.0, 1500.0, num_concepts))
    harmonics = rng.permutation(np.arange(num_concepts) % len(HARMONICS))
    envelopes = rng.permutation(np.arange(num_concepts) % len(ENVELOPES))
    concepts = []
    for k in range(num_concepts):
        # (k % 8, (k // 8 + k % 8) % 6) is injective for k < 48: distinct shape/texture pairs.
        shape = shape_ids[k % len(SHAPES)]
        texture = texture_ids[(k // len(SHAPES) + k % len(SHAPES)) % len(TEXTURES)]
        name, synonyms, verbs, places = LEXICON[names[k]]
        concepts.append(
            Concept(
                index=k,
                name=name,
                synonyms=synonyms,
                verbs=verbs,
                places=places,
                shape=SHAPES[shape],
                texture=TEXTURES[texture],
                palette=PALETTES[int(rng.integers(len(PALETTES)))],
                pitch=float(pitches[k]),
                harmonics=HARMONICS[harmonics[k]],
                envelope=ENVELOPES[envelopes[k]],
                tremolo=float(rng.choice([0.0, 0.0, 22.0, 30.0])),
                glide=float(rng.choice([-0.35, 0.0, 0.0, 0.35])),
                duration=float(rng.uniform(0.12, 0.22)),
                noise_centre=float(noise_centres[k]),
                noise_width=float(rng.uniform(80.0, 300.0)),
                noise_level=float(rng.choice([0.0, 0.2, 0.45])),
            )
        )
    return concepts


def variant_styles(variant: int) -> tuple[str, ...]:
    """The visible sub-styles of a fine class: bit i of `variant` turns VARIANT_STYLES[i] on."""
    return tuple(s for i, s in enumerate(VARIANT_STYLES) if variant >> i & 1)


def fine_class_name(concept: Concept, variant: int) -> str:
    return f"{concept.name} ({' '.join(variant_styles(variant)) or 'plain'})"


@dataclasses.dataclass(frozen=True)
class Instance:
    """What one sample shows: a concept, its fine variant and the instance attributes.

    size_value in (0, 1) is continuous and increases with the size level (0 small, 1 medium, 2 big);
    pixels and pitch follow size_value, captions follow the level.
    """

    concept: Concept
    variant: int
    size: int
    size_value: float
    colour: int
    count: int

    def attributes(self) -> dict[str, str | int]:
        return dict(size=SIZE_NAMES[self.size], colour=COLOUR_NAMES[self.colour], count=self.count)


def draw_instance(rng: np.random.Generator, concept: Concept, variants: int) -> Instance:
    size = int(rng.integers(len(SIZE_NAMES)))
    return Instance(
        concept=concept,
        variant=int(rng.integers(variants)),
        size=size,
        size_value=(size + float(rng.uniform(0.15, 0.85))) / len(SIZE_NAMES),
        colour=int(rng.integers(len(COLOURS))),
        count=int(rng.integers(1, MAX_COUNT + 1)),
    )
