"""Celery configuration from [jobs]: queues, routing by device, the embedded broker, Redis options."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vestige.core.config import load_config
from vestige.core.errors import ConfigError
from vestige.jobs.celery_app import create_celery_app
from vestige.jobs.settings import TASK_BY_DEVICE, celery_settings, queue_for_device

ROOT = Path(__file__).resolve().parents[1]


def config_for(tmp_path: Path, **jobs: str):
    env = {"VESTIGE_DATA_DIR": str(tmp_path / "data")}
    env.update({f"VESTIGE_JOBS__{k.upper()}": v for k, v in jobs.items()})
    return load_config(ROOT / "config.toml", environ=env)


@pytest.mark.parametrize("device, queue", [("gpu", "gpu"), ("cpu", "cpu"), ("tpu", "cpu")])
def test_detectors_are_routed_by_device_through_task_names(tmp_path, device, queue):
    app = create_celery_app(config_for(tmp_path))
    task_name = TASK_BY_DEVICE[queue_for_device(device)]
    assert task_name in app.tasks
    assert app.amqp.router.route({}, task_name)["queue"].name == queue


@pytest.mark.parametrize("device, served, queue", [
    ("gpu", set(), "gpu"),             # no live worker known: the preferred queue (a default worker serves both)
    ("gpu", {"gpu", "cpu"}, "gpu"),
    ("gpu", {"gpu"}, "gpu"),
    ("gpu", {"cpu"}, "cpu"),           # workers are running, none on the gpu queue: run on the CPU, don't wait
    ("cpu", {"gpu", "cpu"}, "cpu"),
    ("cpu", {"gpu"}, "cpu"),
])
def test_a_detector_that_prefers_a_gpu_goes_to_a_gpu_worker_only_when_one_is_live(device, served, queue):
    assert queue_for_device(device, served) == queue


@pytest.mark.parametrize("declared, cuda, loaded_on", [("gpu", True, "cuda"), ("gpu", False, "cpu"),
                                                       ("cpu", True, "cpu"), ("cpu", False, "cpu")])
def test_a_process_loads_a_gpu_detector_on_cuda_only_when_torch_sees_a_gpu(monkeypatch, declared, cuda, loaded_on):
    torch = pytest.importorskip("torch")
    from vestige.analysis.detect import device_for
    from vestige_inversion.detector import InversionDetector

    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    detector = InversionDetector()
    monkeypatch.setattr(detector, "device", declared)
    assert device_for(detector) == loaded_on


def test_the_inversion_verifier_declares_that_it_prefers_a_gpu():
    from vestige_inversion.detector import InversionDetector

    assert InversionDetector.device == "gpu"


def test_embedded_default_needs_no_server_and_keeps_its_own_wal_file(tmp_path):
    settings = celery_settings(config_for(tmp_path))
    assert settings["broker_url"] == f"sqlite:///{tmp_path / 'data' / 'broker.db'}"
    assert settings["broker_transport"].endswith(":EmbeddedTransport")
    assert settings["task_acks_late"] and settings["task_reject_on_worker_lost"]
    with sqlite3.connect(tmp_path / "data" / "broker.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert {q.name for q in settings["task_queues"]} == {"gpu", "cpu"}


def test_redis_gets_the_visibility_timeout_and_key_prefix_from_configuration(tmp_path):
    settings = celery_settings(config_for(tmp_path, broker_url="redis://127.0.0.1:6379/3", key_prefix="lab1:",
                                          visibility_timeout="30", max_retries="5"))
    assert settings["broker_url"] == "redis://127.0.0.1:6379/3"
    assert settings["broker_transport_options"]["visibility_timeout"] == 30
    assert settings["broker_transport_options"]["global_keyprefix"] == "lab1:"
    # A worker killed while sweeping for lost tasks must not block the sweep for long.
    assert settings["broker_transport_options"]["unacked_mutex_expire"] == 30
    assert all(a["max_retries"] == 5 for a in settings["task_annotations"].values())


def test_queues_must_include_gpu_and_cpu(tmp_path):
    with pytest.raises(ConfigError, match="jobs.queues must include gpu"):
        celery_settings(config_for(tmp_path, queues="cpu,io"))
