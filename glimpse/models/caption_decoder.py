"""The trained captioner's decoder: an image vector in, a caption's word ids out.

"Show and tell" in small: the image's visual vector (the backbone's L2-normalised
1280-d pooled features, what the labels captioner stores) sets the GRU's first hidden
state, and is fed again beside every word, so the image is not forgotten after a few
words. A GRU rather than a transformer decoder: captions are short, the training sets
small (a shop's alt texts), and on a CPU one GRU step per word is cheap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from glimpse.models.caption_vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID


@dataclass(frozen=True, slots=True)
class DecoderConfig:
    vocab_size: int
    feature_dim: int = 1280
    embed_dim: int = 128
    hidden_dim: int = 256
    dropout: float = 0.3
    max_words: int = 24  # a caption is cut here when no <eos> came

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DecoderConfig:
        return cls(**data)


class CaptionDecoder(nn.Module):
    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        # The visual vector has tiny components (unit length over 1280 dims): normalise
        # its scale before it meets weights initialised for unit-variance inputs.
        self.image = nn.Sequential(
            nn.LayerNorm(config.feature_dim),
            nn.Dropout(config.dropout),
            nn.Linear(config.feature_dim, config.hidden_dim),
            nn.Tanh(),
        )
        self.embed = nn.Embedding(config.vocab_size, config.embed_dim, padding_idx=PAD_ID)
        self.gru = nn.GRU(config.embed_dim + config.hidden_dim, config.hidden_dim, batch_first=True)
        self.drop = nn.Dropout(config.dropout)
        self.out = nn.Linear(config.hidden_dim, config.vocab_size)

    def forward(self, features: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Logits (batch, steps, vocab) of each next word, given the words so far
        (teacher forcing: ``inputs`` is the caption from ``<bos>``, without its last id)."""
        image = self.image(features)
        steps = inputs.shape[1]
        words = self.embed(inputs)
        joined = torch.cat([words, image.unsqueeze(1).expand(-1, steps, -1)], dim=2)
        hidden, _ = self.gru(joined, image.unsqueeze(0).contiguous())
        logits: torch.Tensor = self.out(self.drop(hidden))
        return logits

    @torch.no_grad()
    def greedy(self, features: torch.Tensor) -> list[list[int]]:
        """The most likely word at each step, until ``<eos>`` or ``max_words``: the same
        image always gets the same caption, so a redelivered message stores the same.
        Call in eval mode. ``<unk>`` and ``<pad>`` are never said, nor a word twice in
        a row."""
        image = self.image(features)
        state = image.unsqueeze(0).contiguous()
        batch = features.shape[0]
        word = torch.full((batch, 1), BOS_ID, dtype=torch.long, device=features.device)
        said: list[list[int]] = [[] for _ in range(batch)]
        finished = torch.zeros(batch, dtype=torch.bool, device=features.device)
        for _ in range(self.config.max_words):
            joined = torch.cat([self.embed(word), image.unsqueeze(1)], dim=2)
            hidden, state = self.gru(joined, state)
            logits = self.out(hidden[:, -1])
            logits[:, [PAD_ID, BOS_ID, UNK_ID]] = float("-inf")
            # nor the word just said: "a a" or "cat cat" is never right, and a decoder
            # trained on little data otherwise falls into such loops on unfamiliar images
            logits.scatter_(1, word, float("-inf"))
            word = logits.argmax(dim=1, keepdim=True)
            finished |= word.squeeze(1) == EOS_ID
            for row, token in enumerate(word.squeeze(1).tolist()):
                if not finished[row]:
                    said[row].append(token)
            if bool(finished.all()):
                break
        return said
