import collections
import os
import pickle

import numpy as np
import pytest

from conftest import DATA, GOLDEN_VOC
from lib.dataset.tags import TagsError, UnsafePickleError, load_tags, save_tags


def test_published_tags_file_loads_under_numpy2():
    tags = load_tags(os.path.join(DATA, "published_im_tags.pkl"))
    assert len(tags) == 10582
    assert tags["2007_000032"].tolist() == [1, 15]
    assert tags["2007_000039"].tolist() == [20]
    assert tags["2007_000063"].tolist() == [9, 12]
    counts = collections.Counter(len(v) for v in tags.values())
    assert counts == {1: 6804, 2: 2857, 3: 758, 4: 136, 5: 27}
    assert all(v.dtype == np.int64 for v in tags.values())


def test_golden_protocol2_file_loads():
    tags = load_tags(os.path.join(GOLDEN_VOC, "im_tags.pkl"))
    assert tags["2099_000001"].tolist() == [9, 12, 18]


@pytest.mark.parametrize("suffix", [".pkl", ".json", ".txt"])
def test_round_trip(tmp_path, suffix):
    tags = {"b": np.array([3, 20]), "a": [1]}
    path = str(tmp_path / ("t" + suffix))
    save_tags(tags, path)
    back = load_tags(path)
    assert list(back) == ["a", "b"] and back["b"].tolist() == [3, 20]


def test_written_pickle_names_numpy_core_like_the_published_file(tmp_path):
    path = tmp_path / "t.pkl"
    save_tags({"x": [5]}, str(path))
    raw = path.read_bytes()
    assert b"numpy.core.multiarray" in raw and b"numpy._core" not in raw


def test_pickle_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"x": Evil()}, protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing"):
        load_tags(str(path))


def test_tags_outside_1_to_20_are_rejected(tmp_path):
    path = tmp_path / "t.json"
    path.write_text('{"x": [0, 3]}')
    with pytest.raises(TagsError, match="'x'"):
        load_tags(str(path))
