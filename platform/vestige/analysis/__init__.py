"""Analysis: the plan of an analysis, running detectors on images (whole or tile by tile), stored findings
and verdicts, the merged verdict, robustness probes, the pictures findings carry, and the serialisers the
JSON API, ``--json`` output and the OpenAPI document share. Queued execution lives in :mod:`vestige.jobs`."""
