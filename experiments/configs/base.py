"""Defaults shared by every experiment config; each config file changes what differs and locks it."""

import os

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    """Returns the unlocked default config; the fields document every knob of a run."""
    c = ml_collections.ConfigDict()
    c.seed = 0
    # Shapes the data set stores and the model takes are stated once: the model's fields are references to
    # the data's, so an override of either moves both (--config.data.image_size=64 resizes the tower too).
    image_size = ml_collections.FieldReference(40)
    n_fft = ml_collections.FieldReference(128)
    max_words = ml_collections.FieldReference(16)
    word_dim = ml_collections.FieldReference(32)
    image_shift = ml_collections.FieldReference(0)

    c.data = ml_collections.ConfigDict()
    c.data.builder = "world"  # world | manifest | video_folder | coco
    c.data.builder_config = "default"  # world: small | default | full
    c.data.data_dir = "data/tfds"  # where TFDS builds and reads the data set
    c.data.source = ""  # manifest folder, video folder or COCO folder (not used by the world)
    c.data.image_size = image_size
    c.data.audio = ml_collections.ConfigDict(
        dict(sample_rate=8000, n_fft=n_fft, hop_length=125, clip_seconds=1.0, time_steps=64)
    )
    c.data.text = ml_collections.ConfigDict(
        dict(max_words=max_words, word_dim=word_dim, word2vec_path="", background_sentences=20000)
    )
    # Stored dtype of spectrograms and word vectors: "float16" halves their bytes (read back as float32,
    # rounded to float16's 11 significant bits); the paper config uses it.
    c.data.float_storage = "float32"
    # Manifest folders without validation.jsonl: this fraction of the train rows (chosen by a hash of
    # each row's id, so the same rows whatever the order) is held out as the validation split.
    c.data.validation_fraction = 0.1
    # Processes that read and decode training batches ahead of the step (data_pipelines/batch_workers.py):
    # half the host's cores, the other half left to the step's host side; 0 reads in the training
    # process. The batches are the same whatever the count.
    c.data.input_workers = max(1, (os.cpu_count() or 2) // 2)
    c.data.strict = False  # True: stop at the first bad input row instead of skipping it
    # True: build_data encodes the rows of a manifest, video or COCO folder as an Apache Beam pipeline
    # (DirectRunner unless build_data's --beam_pipeline_options names another); the same data set.
    c.data.beam = False

    c.model = ml_collections.ConfigDict()
    c.model.dtype = "float32"
    c.model.tower_dim = 256
    c.model.fc_dims = (256, 256)
    # True: a linear "words" output from fc7 to the word-vector space (for loss.words_weight).
    c.model.word_head = False
    c.model.num_classes = 48  # 0: the data set's class count (label_names.json)
    # Rematerialization of the towers (alignment/models/network.py REMAT_POLICIES): "none" keeps every
    # activation for the backward pass; "full" keeps each tower's input and runs its forward pass again;
    # "dots" keeps the Dense layers' outputs and recomputes the convolutions. Same loss and gradients.
    c.model.remat = "none"
    c.model.vision = ml_collections.ConfigDict(
        dict(
            image_size=image_size,
            channels=(32, 64, 96, 96, 64),
            kernels=(5, 3, 3, 3, 3),
            strides=(2, 1, 1, 1, 1),
            pool="maxmean",
            # How uint8 pixels become floats: "symmetric" ([-1, 1]) or "imagenet" (torchvision's
            # mean and std on [0, 1] pixels, which an imported AlexNet's weights expect).
            normalization="symmetric",
            # "group": GroupNorm after each conv, for a tower trained from scratch (the teacher's convs
            # have none, so it needs init_vision_from_teacher=False).
            conv_norm="none",
            # A second conv stack of these channels beside the first, always trained from scratch
            # (GroupNorm), for what a teacher's features leave out; features_scale: the first stack's
            # initial weight against it (alignment/models/vision.py, VisionTower).
            fresh_channels=(),
            features_scale=1.0,
        )
    )
    c.model.sound = ml_collections.ConfigDict(
        dict(
            # The window the tower reads: at most data.audio.time_steps (training crops a random window
            # of a longer stored clip; evaluation reads the whole clip).
            time_steps=64,
            freq_bins=n_fft // 2 + 1,
            channels=(64, 128, 128, 256),
            kernels=(5, 5, 3, 3),
            strides=(2, 2, 1, 1),
        )
    )
    c.model.text = ml_collections.ConfigDict(
        dict(
            max_words=max_words,
            word_dim=word_dim,
            channels=(64, 128, 128, 256),
            kernels=(3, 3, 3, 3),
            bag=False,
        )
    )

    c.teacher = ml_collections.ConfigDict(
        dict(
            image_size=40,
            channels=(32, 64, 96, 96, 64),
            kernels=(5, 3, 3, 3, 3),
            strides=(2, 1, 1, 1, 1),
            pool="maxmean",
            normalization="symmetric",  # see model.vision.normalization
            hidden=(256, 256),
            num_classes=48,  # 0: the data set's fine classes, else its classes (label_names.json)
            # "train": fit on the data set's fine labels; "torchvision": convert a state_dict file;
            # "checkpoint": restore a teacher checkpoint directory.
            source="train",
            path="",
            total_steps=2500,
            num_epochs=0,  # > 0: total_steps = num_epochs passes over the teacher's train images
            batch_size=128,
            # Top-1 on the validation split every this many steps; <workdir>/teacher_training/best
            # keeps the best state, which becomes the teacher. 0 disables.
            eval_every=500,
            precompute=False,  # write teacher_probs beside the data set after train/import
        )
    )
    # The same optimizer as the students' (runtime/optimizer.py), with the teacher's own settings. No
    # gradient clipping (an infinite norm): on the world, clipping at 5 (gradient norms reach 6-7 in
    # mid-training) left the teacher's test top-1 at 68.9% against 70.1% and the Both student's
    # image<->text median rank at 10.2 against 8.0 (one run each, 2026-12-07).
    c.teacher.optimizer = ml_collections.ConfigDict(
        dict(
            learning_rate=3e-3,
            warmup_steps=100,
            warmup_epochs=0,
            weight_decay=1e-4,
            grad_clip=float("inf"),
        )
    )
    # The teacher's image augmentation (data_pipelines/augment.py); its shifts follow the students'
    # (config.augment.image_shift); flips always, as mirror images keep their class.
    c.teacher.augment = ml_collections.ConfigDict(dict(image_shift=image_shift, image_flip=True))

    # The loss is a weighted sum of the terms of alignment.losses.TERMS, each weighted by <term>_weight:
    # the objective turns on the KL terms (transfer), the ranking terms (ranking) or both; any other
    # term is on when its weight is above 0. Combinations that cannot work are refused when the config
    # is resolved (losses.check_config).
    c.loss = ml_collections.ConfigDict(
        dict(
            objective="both",  # transfer | ranking | both
            kl_weight=1.0,
            ranking_weight=1.0,
            margin=0.2,
            layers=("fc7",),
            # hinge (the paper) | infonce (at temperature) | infonce_learned (CLIP's learned
            # temperature) | sigmoid (SigLIP's learned temperature and bias); docs/objectives.md.
            ranking_kind="hinge",
            temperature=0.1,
            # True: the ranking's negatives come around the mesh one device's chunk at a time
            # (lax.ppermute) instead of all-gathered: the same loss and gradients in less memory.
            chunked=False,
            # > 0: spreads each modality's items at loss.layers (losses.uniformity), so that items of
            # one class do not collapse onto one point and detail beyond the class can align.
            uniformity_weight=0.0,
            # > 0 (with model.word_head): the image and the caption each predict the caption's mean
            # word vector from fc7, ranked against the batch's captions (losses.words_ranking).
            words_weight=0.0,
            # The hinge's weight of a negative of the anchor's own class (the teacher's argmax of each
            # image; objective "both"): above 1, pairs must differ from their class's other items.
            same_class_weight=1.0,
            same_class_streams=("image_sound", "image_text"),
            skip_nonfinite=False,
        )
    )

    c.optimizer = ml_collections.ConfigDict(
        # warmup_epochs > 0 (with num_epochs): warmup_steps = that many epochs.
        dict(
            learning_rate=2e-3, warmup_steps=100, warmup_epochs=0, weight_decay=1e-4, grad_clip=5.0
        )
    )
    c.batch_size = 64  # global, per pair type: each step sees this many image+sound and image+text
    # Devices per 'fsdp' group (alignment/parallel.py): 1 replicates the parameters and optimizer state
    # on every device; n > 1 (a divisor of the device count) stores each array split n ways along its
    # largest dimension that n divides, gathered for the step. The batch is split over all devices.
    c.mesh = ml_collections.ConfigDict(dict(fsdp=1))
    # accumulate > 1: each step runs batch_size / accumulate rows at a time and applies the mean of their
    # gradients once (a device's rows must divide by it); ranking negatives are then the micro-batch's.
    c.train = ml_collections.ConfigDict(dict(accumulate=1))
    c.total_steps = 1600
    # > 0: total_steps = num_epochs passes over the larger pair stream, so training scales with the data.
    c.num_epochs = 0
    # Training-stream augmentation, each draw a function of (seed, step, row position): exact resume holds.
    c.augment = ml_collections.ConfigDict(
        dict(
            image_shift=image_shift,  # pad by up to this many pixels (edge values) and crop back
            image_flip=False,  # random horizontal flips
            # With data.audio.time_steps > model.sound.time_steps, training reads a random window of the
            # stored clip (evaluation reads it whole: the sound tower pools over time).
            time_masks=0,  # spectrogram time masks per clip (SpecAugment), each up to time_mask_width
            time_mask_width=8,
            freq_masks=0,  # frequency masks per clip, each up to freq_mask_width bins
            freq_mask_width=8,
            word_dropout=0.0,  # probability of dropping each caption word (one word always stays)
        )
    )
    # Start the vision tower's conv layers from the teacher's (needs the same channels and kernels).
    c.init_vision_from_teacher = True
    c.halt_at_step = (
        0  # stop here with a checkpoint, as a preemption would (resume by rerunning); 0 = never
    )
    c.log_every = 50
    # Checkpoints also come unasked: SIGTERM (a TPU VM's or a cloud GPU's preemption notice; on a
    # multi-host job, JAX's preemption notice, which every process agrees on a step for) saves at the
    # next step boundary and exits 0; rerunning the same command resumes there, exactly.
    c.checkpoint_every = 500
    c.keep_checkpoints = 3
    c.eval_every = 1000  # validation median rank; 0 disables
    c.eval_every_epochs = 0  # > 0: eval_every = this many epochs (with num_epochs)
    c.eval_items = 1000
    c.eval_chunk = 1000
    c.eval_layers = ("fc7",)
    # Validation (eval_every > 0) keeps the checkpoint with the lowest mean validation median rank in
    # <workdir>/best; evaluate reads "best" when it exists, else the latest ("latest": always the latest).
    c.eval_checkpoint = "best"
    # > 0: "best" is the latest checkpoint whose score is within this fraction of the lowest so far,
    # so a flat stretch of validation keeps the longer-trained state (see own_data.py).
    c.best_tolerance = 0.0
    # JAX's persistent compilation cache, so a rerun, a resumed run and every evaluation after the first
    # load their compiled steps instead of compiling them again: "" = a per-user folder
    # ($XDG_CACHE_HOME/see-hear-read/jax, else ~/.cache/see-hear-read/jax), "none" = off, else a folder
    # (local or gs://; on several hosts, a shared one: only process 0 writes). JAX_COMPILATION_CACHE_DIR,
    # when set, wins.
    c.compilation_cache_dir = ""
    # Evaluators (experiments/evaluation/suite.py REGISTRY), run in this order: `test` by evaluate and
    # the demo (results.json, tables.md; "versus" compares the rows before it, so it comes after the
    # baselines and retrieval), `validation` by training every eval_every steps (its
    # val/mean_median_rank picks the best checkpoint). An unknown name is refused before anything runs.
    c.evals = ml_collections.ConfigDict(
        dict(
            test=("baselines", "retrieval", "transfer", "units", "raw_probes", "versus"),
            validation=("validation",),
        )
    )
    return c
