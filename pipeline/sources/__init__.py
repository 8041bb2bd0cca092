"""Where each source's inputs are found and how they are read; ``pipeline.inputs`` names the sources.

``files`` (globs of csv / parquet files), ``simulated`` (the exposure simulator's tables, survey files),
``ratings`` (triplet and matrix files, the ratings simulator's triplets), ``unobserved`` (the generated
unobserved ratings pairs), ``aliccp`` (the raw Ali-CCP release, joined in Beam).
"""
