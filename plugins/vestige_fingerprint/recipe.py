"""The training recipe's defaults (no torch here: the detector's options read them at plugin load).

Chosen by issue 18's ablation on the development protocol (docs/benchmarks.md,
"Issue 18: the development protocol"): re-sharing augmentation of 70 % of the
training images, a cosine learning-rate schedule, the pooled head and flip
averaging. ``vestige train fingerprint --augment 0 --schedule constant --head
dense --tta none`` trains the paper's recipe.
"""

DEFAULT_AUGMENT = 0.7
DEFAULT_SCHEDULE = "cosine"
DEFAULT_HEAD = "pool"
DEFAULT_TTA = "flip"
