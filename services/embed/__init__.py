"""Embed: text vectors for captions (and transcripts) into pgvector."""
