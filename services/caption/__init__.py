"""Caption: image captions and visual vectors from one forward pass, micro-batched."""
