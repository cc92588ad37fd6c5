"""The paper's scale: AlexNet on 227x227 frames, 500x257 spectrograms (5 s, 512-point FFT, 10 ms hop at
22,050 Hz), 16 words of 300-d word2vec, a 4096-4096-1000 shared head, a 1000-class ImageNet teacher.

Data: a manifest folder (see README, "Using your own data") holding video frame+sound rows and COCO /
Visual Genome image+caption rows, GoogleNews word2vec vectors and a torchvision AlexNet teacher:

    python -m experiments.train --config=experiments/configs/paper.py --workdir=gs://bucket/paper \
        --config.data.source=/data/paper_manifest \
        --config.data.text.word2vec_path=/data/GoogleNews-vectors-negative300.bin \
        --config.teacher.path=/data/alexnet-owt-7be5be79.pth
"""

import ml_collections

from experiments.configs.base import base_config


def get_config() -> ml_collections.ConfigDict:
    c = base_config()
    c.data.builder = "manifest"
    c.data.builder_config = "paper"
    c.data.image_size = 227
    c.data.audio.update(
        sample_rate=22050, n_fft=512, hop_length=220, clip_seconds=5.0, time_steps=500
    )
    c.data.text.update(max_words=16, word_dim=300, background_sentences=0)
    c.data.float_storage = "float16"  # a 500x257 spectrogram: 514 kB as float32, 257 kB as float16
    c.model.dtype = "bfloat16"
    c.model.tower_dim = 4096
    c.model.fc_dims = (4096, 4096)
    c.model.num_classes = 1000
    alexnet = dict(
        channels=(96, 256, 384, 384, 256),
        kernels=(11, 5, 3, 3, 3),
        strides=(4, 1, 1, 1, 1),
        pool="flatten",
    )
    # The student keeps the symmetric [-1, 1] inputs: it is trained from scratch, not from ImageNet weights.
    c.model.vision.update(alexnet)
    # Sound: SoundNet-like widths; stride 2 in the first three layers takes 500 frames to 63.
    c.model.sound.update(
        time_steps=500,
        channels=(256, 512, 1024, 1024),
        kernels=(11, 5, 3, 3),
        strides=(2, 2, 2, 1),
    )
    c.model.text.update(channels=(512, 512, 1024, 1024))
    # torchvision's AlexNet: the ImageNet teacher, imported from its state_dict. It sees what its weights
    # were trained on: the central 224x224 of each 227x227 frame, with ImageNet's mean and std.
    c.teacher.update(
        image_size=224,
        normalization="imagenet",
        channels=(64, 192, 384, 256, 256),
        kernels=(11, 5, 3, 3, 3),
        strides=(4, 1, 1, 1, 1),
        pool="flatten",
        hidden=(4096, 4096),
        num_classes=1000,
        source="torchvision",
    )
    # The student AlexNet (96-256-384-384-256) and torchvision's (64-192-384-256-256) differ in width.
    c.init_vision_from_teacher = False
    c.optimizer.update(learning_rate=1e-4, warmup_steps=2000)
    c.batch_size = 256
    c.total_steps = 200_000
    c.log_every = 100
    c.checkpoint_every = 2000
    c.eval_every = 10_000
    c.eval_items = 5000
    c.lock()
    return c
