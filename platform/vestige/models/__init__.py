"""Models: the registry of trained model artifacts, the datasets they are trained and calibrated on, the
domain-of-competence refits, tile calibration, attribution metrics and the reference photographs.
The training API plugins implement is public, in :mod:`vestige.plugin.training`."""
