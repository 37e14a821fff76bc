"""Debian word lists: balanced seeded samples, labels, encodings and clear errors."""

from __future__ import annotations

import pytest
import torch

from sparsetorch.data import FAMILIES, LANGUAGES, DataNotFoundError, encode_words, load_wordlists


@pytest.mark.data
def test_all_languages_balanced_and_labelled():
    lists = load_wordlists(words_per_language=2000)
    assert lists.languages == tuple(LANGUAGES) and len(LANGUAGES) == 14
    assert len(lists) == 14 * 2000 and lists.language.dtype == lists.family.dtype == torch.int64
    assert torch.equal(torch.bincount(lists.language), torch.full((14,), 2000))
    for index, code in enumerate(lists.languages):
        family = lists.family[lists.language == index]
        assert (family == FAMILIES.index(LANGUAGES[code].family)).all()
    assert torch.equal(torch.bincount(lists.family), torch.tensor([6, 5, 3]) * 2000)
    assert all(w and "\ufffd" not in w for w in lists.words)


@pytest.mark.data
def test_latin1_and_cyrillic_lists_decode():
    lists = load_wordlists(["sv", "nb", "uk"], words_per_language=3000)
    sv, nb, uk = (
        set(w for w, lang in zip(lists.words, lists.language.tolist(), strict=True) if lang == i)
        for i in range(3)
    )
    assert any("å" in w or "ä" in w or "ö" in w for w in sv) and not any("Ã" in w for w in sv | nb)
    assert any("ø" in w or "æ" in w for w in nb)
    assert sum(any("а" <= c <= "я" for c in w) for w in uk) > 2500


@pytest.mark.data
def test_seeded_and_independent_of_the_other_languages():
    a = load_wordlists(["en", "pl"], words_per_language=500, seed=1)
    assert a.words == load_wordlists(["en", "pl"], words_per_language=500, seed=1).words
    assert a.words != load_wordlists(["en", "pl"], words_per_language=500, seed=2).words
    alone = load_wordlists(["pl"], words_per_language=500, seed=1)
    assert alone.words == a.words[500:] and alone.family.tolist() == [2] * 500


def test_synthetic_lists_and_encodings(tmp_path):
    (tmp_path / "american-english").write_text("apple\n\nbanana\ncherry\n", encoding="utf-8")
    (tmp_path / "swedish").write_bytes("åsna\nälg\nöga".encode("iso-8859-1"))  # no final newline
    lists = load_wordlists(["en", "sv"], words_per_language=10, dict_dir=tmp_path)
    assert lists.words == ("apple", "banana", "cherry", "åsna", "älg", "öga")
    assert lists.language.tolist() == [0, 0, 0, 1, 1, 1] and lists.family.tolist() == [0] * 6
    two = load_wordlists(["en"], words_per_language=2, dict_dir=tmp_path, seed=5)
    assert len(set(two.words)) == 2 and set(two.words) <= {"apple", "banana", "cherry"}


def test_missing_list_names_the_package(tmp_path):
    with pytest.raises(DataNotFoundError, match="apt-get install -y wamerican wbulgarian"):
        load_wordlists(["en", "bg"], dict_dir=tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="languages"):
        load_wordlists(["xx"], dict_dir=tmp_path)
    with pytest.raises(ValueError, match="words_per_language"):
        load_wordlists(["en"], words_per_language=0, dict_dir=tmp_path)


def test_encode_words():
    codes = encode_words(["ab", "жа", ""], max_len=3)
    assert codes.dtype == torch.int64
    assert codes.tolist() == [[97, 98, 0], [208, 182, 208], [0, 0, 0]]
    assert encode_words([], max_len=4).shape == (0, 4)
