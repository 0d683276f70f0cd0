"""The training recipe's defaults (no torch here: the detector's options read them at plugin load).

Chosen by issue 18's ablation on the development protocol (docs/benchmarks.md,
"Issue 18: robust attribution on a lab-like case"): re-sharing augmentation
of 70 % of the training images, a cosine learning-rate schedule and flip
averaging, with the paper's dense head (the pooled head, ``--head pool``,
names content it never saw better on the development protocol but learned
zoo32 too slowly for the 15-minute budget). ``vestige train fingerprint
--augment 0 --schedule constant --tta none`` trains the paper's recipe.
"""

DEFAULT_AUGMENT = 0.7
DEFAULT_SCHEDULE = "cosine"
DEFAULT_HEAD = "dense"
DEFAULT_TTA = "flip"
