-- glimpse schema, step 14: vectors of a joint image-text model (CLIP, SigLIP).
--
-- Their kind is 'joint': image vectors written by the caption stage, compared at query
-- time with the query's text vector from the same model. A kind of their own keeps
-- them apart from the captioner's visual vectors (another space, another dimension)
-- and gives the role its own active model and partial HNSW index.
ALTER TABLE embeddings DROP CONSTRAINT embeddings_kind_check;
ALTER TABLE embeddings ADD CONSTRAINT embeddings_kind_check
    CHECK (kind IN ('text', 'visual', 'joint'));
ALTER TABLE vector_models DROP CONSTRAINT vector_models_kind_check;
ALTER TABLE vector_models ADD CONSTRAINT vector_models_kind_check
    CHECK (kind IN ('text', 'visual', 'joint'));
