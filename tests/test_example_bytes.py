"""Stored rows read from their bytes (data_pipelines.example_bytes) give what TFDS's own parser gives."""

import numpy as np
import pytest
import tensorflow_datasets as tfds
from tensorflow_datasets.core import example_parser
from tensorflow_datasets.proto import tf_example_pb2, tf_feature_pb2

from data_pipelines import audio, example_bytes, records, text
from data_pipelines.builders.features import FeatureSpec
from data_pipelines.builders.world_dataset import WorldBuilderConfig, WorldDataset
from data_pipelines.world import WorldConfig

WORLD = WorldConfig.small(num_train_sound=8, num_train_text=8, num_validation=4, num_test=8)


def _tfds_read(builder, split):
    """Every row of a split through TFDS's protobuf parser and decoders (the reference)."""
    features = builder.info.features
    parser = example_parser.ExampleParserNp(features.get_serialized_info())
    raw = tfds.decode.DeserializeMethod.RAW_BYTES
    source = builder.as_data_source(split, deserialize_method=raw)
    rows = [parser.parse_example(source[i]) for i in range(len(source))]
    return {name: [features[name].decode_example_np(r[name]) for r in rows] for name in features}


@pytest.fixture(scope="module", params=["float32", "float16"])
def world(request, tmp_path_factory):
    spec = FeatureSpec(
        image_size=16,
        audio=audio.AudioConfig(time_steps=64),
        text=text.TextConfig(max_words=8, word_dim=8, epochs=2),
        float_storage=request.param,
    )
    config = WorldBuilderConfig.make(
        f"tiny-{request.param}", WORLD, background_sentences=100, spec=spec
    )
    builder = WorldDataset(data_dir=str(tmp_path_factory.mktemp("world")), config=config)
    builder.download_and_prepare()
    return builder


def test_every_feature_of_every_row_equals_tfds_parse(world):
    for split in world.info.splits:
        expected = _tfds_read(world, split)
        names = list(world.info.features)
        got = records.Records(world, split).read_all(names)
        for name in names:
            reference = np.stack([np.asarray(v) for v in expected[name]])
            if reference.dtype == np.float16:  # read back as float32, to the bit
                reference = reference.astype(np.float32)
            if reference.dtype.kind not in "SO":  # strings come back as bytes objects
                assert got[name].dtype == reference.dtype, name
            np.testing.assert_array_equal(got[name], reference, err_msg=f"{split}/{name}")


def _example(**features) -> bytes:
    return tf_example_pb2.Example(
        features=tf_feature_pb2.Features(feature=features)
    ).SerializeToString()


def test_negative_and_large_integers_floats_bytes_and_unknown_features():
    raw = _example(
        a=tf_feature_pb2.Feature(
            int64_list=tf_feature_pb2.Int64List(value=[-1, 0, 2**62, -(2**63)])
        ),
        b=tf_feature_pb2.Feature(float_list=tf_feature_pb2.FloatList(value=[0.5, -3.25])),
        c=tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(value=[b"", b"x" * 300])),
        skipped=tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(value=[b"y"])),
    )
    lists = example_bytes.feature_lists(raw, frozenset({"a", "b", "c"}))
    assert set(lists) == {"a", "b", "c"}
    np.testing.assert_array_equal(
        example_bytes.number_values(raw, *lists["a"]), [-1, 0, 2**62, -(2**63)]
    )
    np.testing.assert_array_equal(example_bytes.number_values(raw, *lists["b"]), [0.5, -3.25])
    assert [bytes(v) for v in example_bytes.bytes_values(raw, *lists["c"][1:])] == [b"", b"x" * 300]


def test_unpacked_numbers_read_as_packed():
    # Int64List {value: 7, value: -2} and FloatList {value: 1.5} written field by field (not packed).
    neg = (-2) & (2**64 - 1)
    varint = bytearray()
    while True:
        varint.append((neg & 0x7F) | (0x80 if neg >> 7 else 0))
        neg >>= 7
        if not neg:
            break
    ints = bytes([0x08, 7, 0x08]) + bytes(varint)
    floats = bytes([0x0D]) + np.float32(1.5).tobytes()

    def entry(key: bytes, kind: int, body: bytes) -> bytes:
        feature = bytes([kind << 3 | 2, len(body)]) + body
        inner = bytes([0x0A, len(key)]) + key + bytes([0x12, len(feature)]) + feature
        return bytes([0x0A, len(inner)]) + inner

    features = entry(b"i", 3, ints) + entry(b"f", 2, floats)
    raw = bytes([0x0A, len(features)]) + features
    assert tf_example_pb2.Example.FromString(raw).features.feature["i"].int64_list.value == [7, -2]
    lists = example_bytes.feature_lists(raw, frozenset({"i", "f"}))
    np.testing.assert_array_equal(example_bytes.number_values(raw, *lists["i"]), [7, -2])
    np.testing.assert_array_equal(example_bytes.number_values(raw, *lists["f"]), [1.5])


def test_a_cut_row_is_a_one_line_error():
    raw = _example(c=tf_feature_pb2.Feature(bytes_list=tf_feature_pb2.BytesList(value=[b"x" * 50])))
    with pytest.raises(example_bytes.MalformedRowError):
        example_bytes.feature_lists(raw[:-10], frozenset({"c"}))


def test_training_batches_keep_the_stored_dtype(world):
    """Training batches carry sound and text as stored (the step widens float16 on the device);
    other readers get float32, the same values."""
    from data_pipelines import input_pipeline

    stored = world.info.features["sound"].np_dtype
    batch = next(input_pipeline.train_batches(world, 4, seed=0, workers=1))
    assert batch["image_sound"]["sound"].dtype == stored
    assert batch["image_text"]["text"].dtype == stored
    split = records.Records(world, "train")
    rows = np.arange(6)
    as_stored = split.read(rows, ["sound", "text"], stored_dtype=True)
    widened = split.read(rows, ["sound", "text"])
    for name in ("sound", "text"):
        assert widened[name].dtype == np.float32
        np.testing.assert_array_equal(as_stored[name].astype(np.float32), widened[name])
