"""Training the captioner's decoder on image-caption pairs (``glimpse captioner train``).

    features = visual_vectors(backbone, images)        # one backbone pass per image
    trained = train(features, captions, TrainingSettings(seed=0), on_epoch=print)

The backbone is frozen: each image's visual vector is computed once, and only the
decoder learns, so an epoch over a few thousand pairs takes seconds on a CPU. Images,
not pairs, are split into training and validation (an image's other captions in the
training set would flatter the validation BLEU). Each epoch ends with the validation
loss and the BLEU-4 of greedy captions against all of each image's captions; training
stops once BLEU has not improved for ``patience`` epochs, and the best epoch's weights
are kept. Everything random (split, initialisation, order, dropout) follows ``seed``.
"""

from __future__ import annotations

import copy
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from PIL import Image
from torch.nn.functional import cross_entropy

from glimpse.models.caption_decoder import CaptionDecoder, DecoderConfig
from glimpse.models.caption_scores import bleu4
from glimpse.models.caption_vocab import PAD_ID, Vocabulary
from glimpse.models.captioning import Captioner

Vector = npt.NDArray[np.float32]


class TrainingError(ValueError):
    """The pairs cannot train a captioner (too few images, no words); says why."""


@dataclass(frozen=True, slots=True)
class TrainingSettings:
    seed: int = 0
    epochs: int = 40
    patience: int = 5  # epochs without a better validation BLEU before stopping
    validation_fraction: float = 0.2
    batch_size: int = 32
    learning_rate: float = 3e-3
    min_count: int = 1  # rarer words read as <unk>
    embed_dim: int = 128
    hidden_dim: int = 256
    dropout: float = 0.3
    max_words: int = 24


@dataclass(frozen=True, slots=True)
class Epoch:
    number: int  # 1-based
    train_loss: float
    validation_loss: float
    validation_bleu: float
    seconds: float


@dataclass
class Trained:
    decoder: CaptionDecoder  # the best epoch's weights, in eval mode
    vocab: Vocabulary
    history: list[Epoch]
    best_epoch: int
    train_images: list[str]
    validation_images: list[str]
    # BLEU-4 of always answering the training set's most frequent caption
    constant_bleu: float
    constant_caption: str
    samples: list[tuple[str, str]] = field(default_factory=list)  # (image, caption said)

    @property
    def best(self) -> Epoch:
        return self.history[self.best_epoch - 1]

    def metrics(self, settings: TrainingSettings, seconds: float) -> dict[str, Any]:
        """What the artifact's metrics.json records."""
        return {
            "settings": asdict(settings),
            "epochs": [asdict(epoch) for epoch in self.history],
            "best_epoch": self.best_epoch,
            "validation_bleu": self.best.validation_bleu,
            "constant_caption_bleu": self.constant_bleu,
            "constant_caption": self.constant_caption,
            "train_images": len(self.train_images),
            "validation_images": len(self.validation_images),
            "vocabulary": len(self.vocab),
            "training_seconds": seconds,
            "samples": [{"image": image, "caption": caption} for image, caption in self.samples],
        }


def visual_vectors(backbone: Captioner, images: Mapping[str, Image.Image]) -> dict[str, Vector]:
    """Each image's visual vector, by the (loaded) backbone the decoder will read."""
    keys = list(images)
    found = backbone.predict([images[key] for key in keys])
    vectors = {}
    for key, analysis in zip(keys, found, strict=True):
        if analysis.visual is None:
            raise TrainingError(f"{backbone.model_id} makes no visual vector to train on")
        vectors[key] = analysis.visual
    return vectors


def split(images: Sequence[str], fraction: float, seed: int) -> tuple[list[str], list[str]]:
    """(training, validation) images: a seeded shuffle, at least one image in each."""
    if len(images) < 2:
        raise TrainingError(f"{len(images)} image(s): training needs at least 2 distinct images")
    order = sorted(images)
    random.Random(seed).shuffle(order)
    held = min(len(order) - 1, max(1, round(len(order) * fraction)))
    return sorted(order[held:]), sorted(order[:held])


def train(
    features: Mapping[str, Vector],
    captions: Mapping[str, Sequence[str]],
    settings: TrainingSettings,
    on_epoch: Callable[[Epoch], None] = lambda _: None,
) -> Trained:
    """Train a decoder on ``captions`` (by image) of images with ``features``."""
    torch.manual_seed(settings.seed)
    train_keys, val_keys = split(list(captions), settings.validation_fraction, settings.seed)
    vocab = Vocabulary.build(
        (c for key in train_keys for c in captions[key]), min_count=settings.min_count
    )
    if len(vocab) <= 4:
        raise TrainingError("the training captions have no words")
    decoder = CaptionDecoder(
        DecoderConfig(
            vocab_size=len(vocab),
            feature_dim=len(next(iter(features.values()))),
            embed_dim=settings.embed_dim,
            hidden_dim=settings.hidden_dim,
            dropout=settings.dropout,
            max_words=settings.max_words,
        )
    )
    pairs = [(key, caption) for key in train_keys for caption in captions[key]]
    val_pairs = [(key, caption) for key in val_keys for caption in captions[key]]
    optimiser = torch.optim.Adam(decoder.parameters(), lr=settings.learning_rate)
    generator = torch.Generator().manual_seed(settings.seed)
    references = [list(captions[key]) for key in val_keys]
    val_features = _stack(features, val_keys)

    history: list[Epoch] = []
    best: tuple[float, float] | None = None  # (bleu, -loss): higher is better
    best_state: dict[str, torch.Tensor] = {}
    for number in range(1, settings.epochs + 1):
        started = time.perf_counter()
        decoder.train()
        order = torch.randperm(len(pairs), generator=generator).tolist()
        losses = []
        for start in range(0, len(order), settings.batch_size):
            chunk = [pairs[i] for i in order[start : start + settings.batch_size]]
            loss = _loss(decoder, vocab, features, chunk)
            optimiser.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(decoder.parameters(), 5.0)
            optimiser.step()
            losses.append(loss.item())
        decoder.eval()
        with torch.no_grad():
            val_loss = float(_loss(decoder, vocab, features, val_pairs))
        said = [vocab.decode(ids) for ids in decoder.greedy(val_features)]
        epoch = Epoch(number, float(np.mean(losses)), val_loss, bleu4(said, references),
                      time.perf_counter() - started)  # fmt: skip
        history.append(epoch)
        on_epoch(epoch)
        score = (epoch.validation_bleu, -epoch.validation_loss)
        if best is None or score > best:
            best, best_state = score, copy.deepcopy(decoder.state_dict())
        elif number - _best_epoch(history) >= settings.patience:
            break
    decoder.load_state_dict(best_state)
    decoder.eval()
    said = [vocab.decode(ids) for ids in decoder.greedy(val_features)]
    constant = Counter(c for key in train_keys for c in captions[key]).most_common(1)[0][0]
    return Trained(
        decoder=decoder,
        vocab=vocab,
        history=history,
        best_epoch=_best_epoch(history),
        train_images=train_keys,
        validation_images=val_keys,
        constant_bleu=bleu4([constant] * len(val_keys), references),
        constant_caption=constant,
        samples=list(zip(val_keys, said, strict=True))[:10],
    )


def _best_epoch(history: Sequence[Epoch]) -> int:
    return max(history, key=lambda e: (e.validation_bleu, -e.validation_loss)).number


def _stack(features: Mapping[str, Vector], keys: Sequence[str]) -> torch.Tensor:
    return torch.from_numpy(np.stack([features[key] for key in keys]))


def _loss(
    decoder: CaptionDecoder,
    vocab: Vocabulary,
    features: Mapping[str, Vector],
    pairs: Sequence[tuple[str, str]],
) -> torch.Tensor:
    """Mean cross-entropy of each next word of the captions (padding not counted)."""
    encoded = [torch.tensor(vocab.encode(caption)[: decoder.config.max_words + 2])
               for _, caption in pairs]  # fmt: skip
    padded = torch.nn.utils.rnn.pad_sequence(encoded, batch_first=True, padding_value=PAD_ID)
    logits = decoder(_stack(features, [key for key, _ in pairs]), padded[:, :-1])
    return cross_entropy(logits.reshape(-1, logits.shape[-1]), padded[:, 1:].reshape(-1),
                         ignore_index=PAD_ID)  # fmt: skip
