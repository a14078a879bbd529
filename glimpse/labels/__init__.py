"""Custom label sets (issue 12): a small head trained on glimpse's visual vectors.

- ``head``: the head as arrays and ``predict(head, vectors)`` (no scikit-learn needed)
- ``training``: examples in, a head and its held-out metrics out (scikit-learn)
- ``artifact``: a version as an ``.npz`` in the bucket, reloaded bit-identical
- ``examples``: vectors from label folders (the pipeline's way) or stored ones
- ``tagging``: the active sets' heads (``ActiveHeads``) and the tags they give
- ``retag``: the ``labels`` backfill stage, tagging stored items from stored vectors
"""
