"""Words of 14 languages in 3 families from the Debian word lists in `/usr/share/dict`.

For character-level language identification and hierarchical routing (script -> family ->
language). The lists are word types (lemmas and inflections, no frequencies) of very unequal
size (16k to 4.3M), so each language is subsampled to `words_per_language` lines, drawn without
replacement by a numpy `Generator` seeded with `(seed, language index in LANGUAGES)`: a
language's sample does not depend on which other languages are asked for. Only the sampled
lines are decoded. Files are UTF-8 except `swedish` and `bokmaal` (ISO-8859-1); a file that is
not valid UTF-8 is read as ISO-8859-1. A word may occur in several languages' lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch

from ._paths import file_key, missing


class WordList(NamedTuple):
    """Where one language's words come from."""

    file: str
    package: str
    family: str


FAMILIES = ("germanic", "romance", "slavic")
LANGUAGES = MappingProxyType(
    {
        "en": WordList("american-english", "wamerican", "germanic"),
        "de": WordList("ngerman", "wngerman", "germanic"),
        "nl": WordList("dutch", "wdutch", "germanic"),
        "da": WordList("danish", "wdanish", "germanic"),
        "sv": WordList("swedish", "wswedish", "germanic"),
        "nb": WordList("bokmaal", "wnorwegian", "germanic"),
        "fr": WordList("french", "wfrench", "romance"),
        "es": WordList("spanish", "wspanish", "romance"),
        "it": WordList("italian", "witalian", "romance"),
        "pt": WordList("portuguese", "wportuguese", "romance"),
        "ca": WordList("catalan", "wcatalan", "romance"),
        "pl": WordList("polish", "wpolish", "slavic"),
        "uk": WordList("ukrainian", "wukrainian", "slavic"),
        "bg": WordList("bulgarian", "wbulgarian", "slavic"),
    }
)
_LATIN1 = frozenset({"swedish", "bokmaal"})
DICT_DIR = "/usr/share/dict"


@dataclass(frozen=True, eq=False)
class WordLists:
    """Sampled words with their labels.

    Attributes:
        words: the words, grouped by language in the order of `languages`.
        language: int64 (N,), index of each word's language in `languages`.
        family: int64 (N,), index of each word's family in `families`.
        languages: the language codes asked for (e.g. "en", "de").
        families: all family names, so family labels do not depend on the languages asked for.
    """

    words: tuple[str, ...]
    language: torch.Tensor
    family: torch.Tensor
    languages: tuple[str, ...]
    families: tuple[str, ...] = FAMILIES

    def __len__(self) -> int:
        return len(self.words)


@lru_cache(maxsize=32)
def _sample(path: str, mtime_ns: int, size: int, n: int, seed: int, stream: int) -> tuple[str, ...]:
    # mtime_ns and size only key the cache. Lines are located with numpy; only sampled ones decoded.
    raw = Path(path).read_bytes()
    buf = np.frombuffer(raw, np.uint8)
    ends = np.flatnonzero(buf == ord("\n"))
    if len(raw) and raw[-1:] != b"\n":
        ends = np.append(ends, len(raw))
    starts = np.concatenate(([0], ends[:-1] + 1))
    nonempty = np.flatnonzero(ends - starts > 0)
    rng = np.random.default_rng([seed, stream])
    k = min(n, len(nonempty))
    picked = np.sort(rng.choice(nonempty, size=k, replace=False))  # file order
    lines = [raw[s:e] for s, e in zip(starts[picked].tolist(), ends[picked].tolist(), strict=True)]
    encoding = "iso-8859-1" if Path(path).name in _LATIN1 else "utf-8"
    try:
        words = [line.decode(encoding).strip() for line in lines]
    except UnicodeDecodeError:
        words = [line.decode("iso-8859-1").strip() for line in lines]
    return tuple(words)


def load_wordlists(
    languages: Sequence[str] | None = None,
    *,
    words_per_language: int = 20000,
    seed: int = 0,
    dict_dir: str | Path = DICT_DIR,
) -> WordLists:
    """A balanced, seeded sample of words from each language's Debian word list.

    Args:
        languages: language codes from `LANGUAGES` (default: all 14, in that order).
        words_per_language: lines drawn per language (all of them if the list is shorter).
        seed: seed of the sampling; the same seed gives the same words.
        dict_dir: the folder holding the word-list files.

    Returns:
        The words with language and family labels.

    Raises:
        DataNotFoundError: a list file is missing; the message names the Debian package.
        ValueError: unknown language code or non-positive `words_per_language`.
    """
    codes = tuple(LANGUAGES) if languages is None else tuple(languages)
    unknown = [c for c in codes if c not in LANGUAGES]
    if unknown or not codes or len(set(codes)) != len(codes):
        raise ValueError(f"languages must be distinct codes from {', '.join(LANGUAGES)}; got {list(codes)}")
    if words_per_language < 1:
        raise ValueError(f"words_per_language must be positive; got {words_per_language}")
    folder = Path(dict_dir).expanduser()
    absent = [c for c in codes if not (folder / LANGUAGES[c].file).is_file()]
    if absent:
        files = ", ".join(LANGUAGES[c].file for c in absent)
        packages = " ".join(LANGUAGES[c].package for c in absent)
        raise missing(f"word lists {files}", how=f"`apt-get install -y {packages}`", tried=[folder])
    words: list[str] = []
    language: list[int] = []
    family: list[int] = []
    streams = list(LANGUAGES)
    for index, code in enumerate(codes):
        entry = LANGUAGES[code]
        sample = _sample(*file_key(folder / entry.file), words_per_language, seed, streams.index(code))
        words.extend(sample)
        language.extend([index] * len(sample))
        family.extend([FAMILIES.index(entry.family)] * len(sample))
    return WordLists(
        words=tuple(words),
        language=torch.tensor(language, dtype=torch.int64),
        family=torch.tensor(family, dtype=torch.int64),
        languages=codes,
    )


def encode_words(words: Sequence[str], *, max_len: int = 32) -> torch.Tensor:
    """UTF-8 byte codes of words, truncated to `max_len` bytes and right-padded with 0.

    Byte values are 1..255 for text (0 is never in a word), so an embedding of 256 rows covers
    every script; a Cyrillic letter takes two bytes.

    Args:
        words: the words.
        max_len: the number of columns.

    Returns:
        int64 (len(words), max_len).
    """
    if max_len < 1:
        raise ValueError(f"max_len must be positive; got {max_len}")
    codes = np.zeros((len(words), max_len), dtype=np.int64)
    for row, word in enumerate(words):
        encoded = np.frombuffer(word.encode("utf-8")[:max_len], np.uint8)
        codes[row, : len(encoded)] = encoded
    return torch.from_numpy(codes)
