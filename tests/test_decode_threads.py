"""Decoding a chunk's images on several threads (jobs.decode_threads, issue 23 part 2): the same inputs, in the
same order, as one thread, and an unreadable image gets its sentence without stopping the others."""

from __future__ import annotations

import numpy as np
from conftest import encode, photo

from vestige.analysis.detect import decode_in_threads, make_input


def _files() -> list[tuple[str, bytes]]:
    files = [(f"p{i}.jpg", encode(photo(i, size=48 + i), "JPEG", quality=80)) for i in range(12)]
    files[3] = ("broken.jpg", b"\xff\xd8\xff\xe0 not really a JPEG")
    files[7] = ("p7.png", encode(photo(7, size=40), "PNG"))
    return files


def test_threads_give_the_inputs_one_thread_gives_in_order():
    files = _files()

    def decode(item: tuple[str, bytes]):
        return make_input(item[1], name=item[0])

    one = decode_in_threads(decode, files, 1)
    many = decode_in_threads(decode, files, 4)
    assert [e is None for _, e in one] == [e is None for _, e in many] == [i != 3 for i in range(12)]
    assert one[3][1] == many[3][1] and "broken.jpg" in many[3][1]
    for (a, _), (b, _), (name, data) in zip(one, many, files):
        if a is None:
            continue
        assert a.name == b.name == name and a.sha256 == b.sha256 and a.format == b.format
        assert a.metadata == b.metadata and np.array_equal(np.asarray(a.image), np.asarray(b.image))


def test_small_images_decode_on_one_thread_larger_ones_on_the_configured_threads():
    from vestige.analysis.detect import decode_threads_for

    assert decode_threads_for(32 * 32, 4) == 1 and decode_threads_for(64 * 64, 8) == 1
    assert decode_threads_for(128 * 128, 4) == 4 and decode_threads_for(4000 * 3000, 8) == 8
    assert decode_threads_for(4000 * 3000, 0) == 1


def test_the_worker_setting_is_validated(tmp_path):
    import pytest

    from vestige.core.config import load_config
    from vestige.core.errors import ConfigError

    assert load_config(environ={"VESTIGE_DATA_DIR": str(tmp_path)}).jobs.decode_threads == 4
    assert load_config(environ={"VESTIGE_DATA_DIR": str(tmp_path), "VESTIGE_JOBS__DECODE_THREADS": "8"}).jobs.decode_threads == 8
    with pytest.raises(ConfigError, match="decode_threads"):
        load_config(environ={"VESTIGE_DATA_DIR": str(tmp_path), "VESTIGE_JOBS__DECODE_THREADS": "0"})
