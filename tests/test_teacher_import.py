"""Importing torchvision's AlexNet: the converted Teacher computes torch's logits (also from raw uint8
frames, cropped and normalized as torchvision does), the command writes a checkpoint that restores and
refuses a torchvision import without ImageNet normalization, and a file that is not a plain state_dict
is refused without running it."""

import pickle

import jax
import numpy as np
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn

from alignment import parallel  # noqa: E402
from alignment.models import create_teacher  # noqa: E402
from experiments.runtime import restore  # noqa: E402
from experiments.training import teacher, teacher_import  # noqa: E402
from tests import helpers  # noqa: E402


class TorchAlexNet(nn.Module):
    """torchvision.models.AlexNet, layer for layer (torchvision is not needed), with its widths,
    kernels and strides as arguments; padding min(k // 2, 2) gives torchvision's 2, 2, 1, 1, 1."""

    def __init__(self, channels, kernels, strides, hidden, num_classes):
        super().__init__()
        c, k, s = channels, kernels, strides
        pad = [min(size // 2, 2) for size in k]
        self.features = nn.Sequential(
            nn.Conv2d(3, c[0], k[0], s[0], pad[0]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c[0], c[1], k[1], s[1], pad[1]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(c[1], c[2], k[2], s[2], pad[2]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[2], c[3], k[3], s[3], pad[3]),
            nn.ReLU(inplace=True),
            nn.Conv2d(c[3], c[4], k[4], s[4], pad[4]),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=0.5),
            nn.Linear(c[4] * 6 * 6, hidden[0]),
            nn.ReLU(inplace=True),
            nn.Dropout(p=0.5),
            nn.Linear(hidden[0], hidden[1]),
            nn.ReLU(inplace=True),
            nn.Linear(hidden[1], num_classes),
        )

    def forward(self, x):
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))


# torchvision's AlexNet geometry with narrow layers: the conversion does not depend on the widths.
SMALL = dict(channels=(8, 16, 16, 16, 16), kernels=(11, 5, 3, 3, 3), strides=(4, 1, 1, 1, 1),
             hidden=(32, 32), num_classes=10)  # fmt: skip


def _teacher_config(size: int, **shapes):
    from experiments.configs import tiny

    config = tiny.get_config().teacher
    with config.unlocked():
        config.update(image_size=size, pool="flatten", **shapes)
    return config


def _saved_alexnet(path, seed: int = 0, **shapes) -> TorchAlexNet:
    torch.manual_seed(seed)
    model = TorchAlexNet(**shapes).eval()
    with torch.no_grad():  # larger biases than torch's default, so every layer matters
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.uniform_(-0.1, 0.1)
    torch.save(model.state_dict(), path)
    return model


# 224: the real input, pool5 is 6x6; 163: pool5 is 4x4, which the adaptive pool spreads over 6x6 bins
# that overlap.
@pytest.mark.parametrize("size", [224, 163])
def test_converted_alexnet_gives_torch_logits(tmp_path, size):
    path = str(tmp_path / "alexnet.pth")
    model = _saved_alexnet(path, **SMALL)
    images = np.random.default_rng(size).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
        pool5 = model.features(torch.from_numpy(images))
    assert pool5.shape[-1] == (6 if size == 224 else 4)

    params = teacher_import.convert_alexnet(teacher_import.load_state_dict(path))
    module = create_teacher(_teacher_config(size, **SMALL))
    # Float images go in unchanged (uint8 ones would be scaled to [-1, 1]): NCHW -> NHWC.
    logits = module.apply({"params": params}, images.transpose(0, 2, 3, 1))
    assert logits.shape == (2, SMALL["num_classes"])
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4 * scale)


def _torchvision_eval_transform(images: np.ndarray):
    """torchvision's ImageNet eval preprocessing of uint8 [B, 227, 227, 3] frames, step by step:
    ToTensor (to [0, 1], NCHW), CenterCrop(224), Normalize(mean, std)."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    x = x[:, :, 2:226, 2:226]  # CenterCrop(224) of 227: top = left = round(3 / 2) = 2
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    return (x - mean) / std


def test_teacher_on_uint8_frames_gives_torchvision_logits(tmp_path):
    """End to end from stored frames: the Teacher crops and normalizes raw uint8 as torchvision does."""
    path = str(tmp_path / "alexnet.pth")
    model = _saved_alexnet(path, seed=2, **SMALL)
    images = np.random.default_rng(7).integers(0, 256, (2, 227, 227, 3), dtype=np.uint8)
    with torch.no_grad():
        expected = model(_torchvision_eval_transform(images)).numpy()

    params = teacher_import.convert_alexnet(teacher_import.load_state_dict(path))
    module = create_teacher(_teacher_config(224, normalization="imagenet", **SMALL))
    logits = module.apply({"params": params}, images)
    scale = np.abs(expected).max()
    np.testing.assert_allclose(np.asarray(logits), expected, rtol=1e-4, atol=1e-4 * scale)


def test_a_torchvision_import_needs_imagenet_normalization():
    config = _teacher_config(224, source="torchvision")  # the tiny config's teacher: symmetric
    with pytest.raises(ValueError, match="--config.teacher.normalization=imagenet"):
        teacher.check_normalization(config)
    config.normalization = "imagenet"
    teacher.check_normalization(config)


def test_train_teacher_imports_a_torchvision_file(tiny_world, tmp_path):
    """The command on the tiny config with a torchvision-layout teacher of the tiny shapes."""
    data_dir, _ = tiny_world
    shapes = dict(channels=(8,) * 5, kernels=(3,) * 5, strides=(2, 1, 1, 1, 1), hidden=(32, 32),
                  num_classes=48)  # fmt: skip
    path = str(tmp_path / "tiny_alexnet.pth")
    _saved_alexnet(path, seed=1, **shapes)
    workdir = str(tmp_path / "work")
    result = helpers.run_module(
        "experiments.train_teacher",
        f"--config={helpers.TINY}",
        f"--config.data.data_dir={data_dir}",
        "--config.teacher.source=torchvision",
        "--config.teacher.normalization=imagenet",
        f"--config.teacher.path={path}",
        "--config.teacher.pool=flatten",
        f"--workdir={workdir}",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-4000:]

    config = helpers.tiny_config(data_dir, "", **{"teacher.pool": "flatten"})
    directory = restore.teacher_dir(config, workdir)
    _, params = restore.restore_teacher(config, directory, parallel.make_mesh())
    expected = teacher_import.convert_alexnet(teacher_import.load_state_dict(path))
    helpers.assert_trees_equal(params, expected)
    assert jax.tree.structure(params) == jax.tree.structure(expected)


class _WritesMarker:
    """Unpickling this runs code: it writes the marker file."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('ran')",)


@pytest.mark.parametrize("writer", ["torch.save", "pickle.dump"])
def test_a_pickled_object_is_refused_and_never_runs(tmp_path, writer):
    marker = tmp_path / "marker"
    path = str(tmp_path / "evil.pth")
    payload = {"features.0.weight": _WritesMarker(str(marker))}
    if writer == "torch.save":
        torch.save(payload, path)
    else:
        with open(path, "wb") as f:
            pickle.dump(payload, f)
    with pytest.raises(ValueError, match="not a plain state_dict"):
        teacher_import.load_state_dict(path)
    assert not marker.exists()


def test_files_without_a_state_dict_are_refused(tmp_path):
    tensor = str(tmp_path / "tensor.pth")
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(ValueError, match="holds a Tensor, not a state_dict"):
        teacher_import.load_state_dict(tensor)
    numbers = str(tmp_path / "numbers.pth")
    torch.save({"features.0.weight": 3}, numbers)
    with pytest.raises(ValueError, match="features.0.weight"):
        teacher_import.load_state_dict(numbers)
    partial = {"features.0.weight": np.zeros((8, 3, 11, 11), np.float32)}
    with pytest.raises(ValueError, match="missing"):
        teacher_import.convert_alexnet(partial)
