"""What a model directory holds, by name: read by training, loading, warm start and export alike."""

WEIGHTS = "weights/final"  # the trained weights (a TF checkpoint prefix) under the model dir
