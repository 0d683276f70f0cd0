"""The SQLite writer gate: writers of one database file queue on it, across threads and processes."""

import multiprocessing
import time

from vestige.db.engine import make_engine, writer_gate


def _hold(url: str, seconds: float, ready) -> None:  # type: ignore[no-untyped-def]
    with writer_gate(make_engine(url)):
        ready.set()
        time.sleep(seconds)


def test_the_gate_makes_another_process_wait(tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    holder = context.Process(target=_hold, args=(url, 0.5, ready))
    holder.start()
    assert ready.wait(30)
    began = time.monotonic()
    with writer_gate(make_engine(url)):
        waited = time.monotonic() - began
    holder.join()
    assert waited > 0.3  # the other process held it for 0.5 s
    assert (tmp_path / "db.sqlite.writer-lock").exists()


def test_the_gate_makes_another_thread_wait(tmp_path):
    import threading

    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    order: list[str] = []
    inside = threading.Event()

    def holder() -> None:
        with writer_gate(engine):
            inside.set()
            time.sleep(0.3)
            order.append("holder done")

    thread = threading.Thread(target=holder)
    thread.start()
    inside.wait(10)
    with writer_gate(engine):
        order.append("second in")
    thread.join()
    assert order == ["holder done", "second in"]


def test_no_gate_for_memory_or_server_databases():
    from contextlib import nullcontext

    assert isinstance(writer_gate(make_engine("sqlite://")), nullcontext)
    assert isinstance(writer_gate(make_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test")), nullcontext)
