"""Where a report was made: the runtime facts a reproducibility block needs."""

from __future__ import annotations

import platform
from importlib import metadata
from typing import Any


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def runtime_environment() -> dict[str, Any]:
    """Python, operating system, torch, CUDA and GPU of this process."""
    facts: dict[str, Any] = {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "numpy": _version("numpy"),
        "torch": _version("torch"),
        "cuda": None,
        "cudnn": None,
        "gpus": [],
    }
    if facts["torch"] is None:
        return facts
    try:
        import torch
    except Exception:  # a broken torch must not stop a report; the version above says what was installed
        return facts
    facts["cuda"] = torch.version.cuda
    if torch.cuda.is_available():
        facts["cudnn"] = torch.backends.cudnn.version()
        facts["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return facts
