"""How notebooks/demo.ipynb shows a search: query rows, spectrogram and image grids, sound players and
the retrieval table of a SearchIndex.

    show_sound_matches(index, index.search(...), world_of(index))
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from data_pipelines.world import World
from experiments.evaluation import retrieval, suite
from experiments.evaluation.rows import RESULTS
from experiments.search.index import Match, SearchIndex

SHORT = {"image": "IMG", "sound": "SND", "text": "TXT"}


def world_of(index: SearchIndex) -> World | None:
    """The bundled world the index's data set was generated from (None for other data sets)."""
    world_config = getattr(index.builder.builder_config, "world", None)
    return None if world_config is None else World(world_config)


def test_query(index: SearchIndex, modality: str, position: int = 0) -> tuple[str, dict]:
    """(id, model inputs with a batch of 1) of the `position`-th test row holding `modality`."""
    row = int(np.flatnonzero(index.test[f"has_{modality}"])[position])
    names = ("text", "text_mask") if modality == "text" else (modality,)
    return str(index.test["id"][row]), index.read(row, list(names))


def describe_item(index: SearchIndex, item_id: str) -> str:
    """A test row's id, concept and caption, e.g. for the query of a search."""
    row = _row(index, item_id)
    label = int(index.test["label"][row])
    name = index.names[label] if 0 <= label < len(index.names) else ""
    return f"{item_id}  [{name}]  {index.test['caption'][row]}"


def _row(index: SearchIndex, item_id: str) -> int:
    return int(np.flatnonzero(index.test["id"] == item_id)[0])


def _title(match: Match) -> str:
    return f"#{match.rank} {match.id}\ncos {match.cosine:+.3f} [{match.label}]"


def _png(figure: Figure):
    from IPython.display import Image

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=80, bbox_inches="tight")
    return Image(data=buffer.getvalue(), format="png")


def _grid(index: SearchIndex, ids: Sequence[str], titles: Sequence[str], modality: str):
    figure = Figure(figsize=(3 * len(ids), 2.8))
    for i, (item_id, title) in enumerate(zip(ids, titles, strict=True)):
        axis = figure.add_subplot(1, len(ids), i + 1)
        values = index.read(_row(index, item_id), [modality])[modality][0]
        if modality == "sound":
            # [T, F] log spectrogram: time across, frequency up.
            axis.imshow(values.T, origin="lower", aspect="auto", cmap="magma")
            axis.set_xlabel("time step")
            if i == 0:
                axis.set_ylabel("frequency bin")
        else:
            axis.imshow(values)
            axis.axis("off")
        axis.set_title(title, fontsize=8)
    return _png(figure)


def sound_player(world: World | None, item_id: str):
    """An audio player of the world's waveform for a row id such as "test-0000012" (None off-world)."""
    if world is None:
        return None
    from IPython.display import Audio

    split, index = item_id.rsplit("-", 1)
    waveform = world.sample(split, int(index))["waveform"]
    if waveform is None:
        return None
    return Audio(data=waveform, rate=world.config.sample_rate, normalize=True)


def show_sounds(index: SearchIndex, ids: Sequence[str], titles: Sequence[str], world) -> None:
    """Spectrograms of test sounds, then a player for each when the data set is the bundled world."""
    from IPython.display import HTML, display

    display(_grid(index, ids, titles, "sound"))
    if world is None:
        print("(not the bundled world: no waveforms to play)")
        return
    for item_id, title in zip(ids, titles, strict=True):
        display(HTML(f"<b>{title.splitlines()[0]}</b>"), sound_player(world, item_id))


def show_sound_matches(index: SearchIndex, matches: Sequence[Match], world) -> None:
    show_sounds(index, [m.id for m in matches], [_title(m) for m in matches], world)


def show_images(index: SearchIndex, ids: Sequence[str], titles: Sequence[str]) -> None:
    from IPython.display import display

    display(_grid(index, ids, titles, "image"))


def show_image_matches(index: SearchIndex, matches: Sequence[Match]) -> None:
    show_images(index, [m.id for m in matches], [_title(m) for m in matches])


def retrieval_summary(index: SearchIndex) -> str:
    """The retrieval evaluator's median rank and recall@k per direction for the index's run, as text."""
    (row,) = [r for r in suite.run(index.context, ["retrieval"]) if r.table == RESULTS]
    return format_retrieval(row.fields)


def format_retrieval(result: Mapping[str, Any]) -> str:
    """One line per direction of a retrieval evaluator's fields (sound<->text marked never paired)."""
    chunk, pairs = result["chunk"], result["num_pairs"]
    lines = [
        f"retrieval at {result['layer']}, step {result['step']}: median rank within chunks of {chunk} "
        f"of {pairs} test triplets (random about {(chunk + 1) / 2:.0f}, best 1)",
        f"{'direction':<10} {'median rank':>11} {'R@1':>6} {'R@5':>6} {'R@10':>6}",
    ]
    for query, target in retrieval.DIRECTIONS:
        scores = result["retrieval"][f"{query}->{target}"]
        note = "  (never paired)" if (query, target) in retrieval.UNPAIRED_DIRECTIONS else ""
        lines.append(
            f"{SHORT[query] + '->' + SHORT[target]:<10} {scores['median_rank']:>11.1f} "
            + " ".join(f"{100 * scores[f'recall@{k}']:>5.0f}%" for k in retrieval.RECALL_KS)
            + note
        )
    return "\n".join(lines)
