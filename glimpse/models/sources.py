"""Where a ``transformers`` model comes from: a local directory or a hub id.

A hub id is first brought into the cache as a snapshot directory, so every model is
then loaded from a local directory and its revision hashed from the very files loaded.
With ``HF_HUB_OFFLINE=1`` (read by huggingface_hub itself) a cached snapshot is used.
"""

from __future__ import annotations

from pathlib import Path

# Config, tokenizer and safetensors weights: not the .bin/.h5/.msgpack copies many
# repositories also carry (BLIP base would triple its download to ~3 GB).
_ALLOW_PATTERNS = ["*.json", "*.txt", "*.model", "*.safetensors"]


def is_local(source: str) -> bool:
    return Path(source).expanduser().is_dir()


def display_name(source: str) -> str:
    """The part of a model id that names the checkpoint: the hub id, or the directory name.

    A directory's location differs between hosts; its name is what stays the same.
    """
    if is_local(source):
        return Path(source).expanduser().resolve().name
    return source


def resolve_pretrained(source: str, cache_dir: Path | None) -> Path:
    """A directory holding the checkpoint's config, tokenizer and weights."""
    if is_local(source):
        return Path(source).expanduser()
    from huggingface_hub import snapshot_download

    snapshot = Path(
        snapshot_download(repo_id=source, cache_dir=cache_dir, allow_patterns=_ALLOW_PATTERNS)
    )
    if not any(snapshot.glob("*.safetensors")):
        raise FileNotFoundError(f"{source} has no safetensors weights")
    return snapshot
