"""File I/O shared by the loaders: atomic writes, and safetensors headers read safely.

`atomic_path`: write to a temporary file beside the target, then rename over it, so an interrupted
write (a crash, `kill -9`) never leaves a half-written checkpoint, cache entry or JSON file under
the real name.

`read_safetensors_header`: a safetensors header parsed and checked against the file's own byte
count before any tensor is read (see the loader principle in `sparsetorch._checks`);
`tensor_digest`: the checksum a checkpoint stores over its tensors.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary path to write; on success it is fsynced and renamed to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; the result is an ordinary readable file
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


# --- reading safetensors files safely -----------------------------------------------------------

# The safetensors dtypes torch reads (as safetensors 0.8 names them); save and load accept exactly
# these, any other dtype is refused. The float8 kinds only where this torch has them.
SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    name: dtype
    for name, dtype in {
        "BOOL": torch.bool, "U8": torch.uint8, "I8": torch.int8, "I16": torch.int16,
        "U16": getattr(torch, "uint16", None), "F16": torch.float16, "BF16": torch.bfloat16,
        "I32": torch.int32, "U32": getattr(torch, "uint32", None), "F32": torch.float32,
        "I64": torch.int64, "U64": getattr(torch, "uint64", None), "F64": torch.float64,
        "C64": torch.complex64,
        "F8_E4M3": getattr(torch, "float8_e4m3fn", None), "F8_E5M2": getattr(torch, "float8_e5m2", None),
        "F8_E4M3FNUZ": getattr(torch, "float8_e4m3fnuz", None),
        "F8_E5M2FNUZ": getattr(torch, "float8_e5m2fnuz", None),
    }.items()
    if dtype is not None
}  # fmt: skip
DTYPE_BYTES = {name: dtype.itemsize for name, dtype in SAFETENSORS_DTYPES.items()}
# Header keys a checkpoint writes itself; user metadata may not overwrite them.
RESERVED_KEYS = ("format", "version", "patterns", "model", "model_config", "sparsetorch_compiled", "sha256")
MAX_HEADER_BYTES = 100 * 2**20  # the limit safetensors itself applies
# The header of a sparsetorch checkpoint (`sparsetorch.masks.save`).
FORMAT = "sparsetorch"
FORMAT_VERSION = "1"
DIGEST_KEY = "sha256"  # over the tensors' names, dtypes, shapes and bytes (`tensor_digest`)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor as the header declares it: dtype, shape and byte range in the data section."""

    dtype: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class SafetensorsHeader:
    """The parsed, validated header of a safetensors file (no tensor data is read)."""

    tensors: dict[str, TensorEntry]
    metadata: dict[str, str]
    file_size: int


def read_safetensors_header(path: str | os.PathLike) -> SafetensorsHeader:
    """Parse and validate a safetensors header against the file's own byte count.

    Checked before anything is allocated: the 8-byte header length fits the file (and 100 MiB), the
    header is a UTF-8 JSON object, every dtype is known, every shape is a list of non-negative
    ints, and the tensors' byte ranges have the size their shape and dtype imply and tile the data
    section exactly (no gap, no overlap, nothing past the end). So reading every tensor allocates at
    most the file's size.

    Raises:
        FileNotFoundError: no such file.
        ValueError: anything else, naming the file and the problem.
    """
    path = Path(path)
    where = f"checkpoint {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{where} does not exist")
    size = path.stat().st_size
    with open(path, "rb") as f:
        prefix = f.read(8)
        if len(prefix) < 8:
            raise ValueError(f"{where} is truncated or not a safetensors file ({size} bytes)")
        n = int.from_bytes(prefix, "little")
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise ValueError(f"{where} is truncated or not a safetensors file (header of {n} bytes)")
        raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{where} is corrupt or not a safetensors file (bad header: {err})") from err
    if not isinstance(header, dict):
        raise ValueError(f"{where} is corrupt: its header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise ValueError(f"{where} is corrupt: '__metadata__' must map strings to strings")
    tensors = {name: _entry(name, info, where) for name, info in header.items()}
    _check_tiling(tensors, size - 8 - n, where)
    return SafetensorsHeader(tensors, metadata, size)


def _entry(name: str, info: object, where: str) -> TensorEntry:
    """One header entry, checked: known dtype, non-negative int shape, a byte range of the right size."""
    bad = f"{where} is corrupt: tensor {name!r}"
    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise ValueError(f"{bad} needs exactly 'dtype', 'shape' and 'data_offsets'")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if dtype not in DTYPE_BYTES:
        raise ValueError(f"{bad} has unsupported dtype {dtype!r}")
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        raise ValueError(f"{bad} has shape {shape!r}, expected a list of non-negative integers")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
        raise ValueError(f"{bad} has data_offsets {offsets!r}, expected [begin, end]")
    entry = TensorEntry(dtype, tuple(shape), offsets[0], offsets[1])
    if entry.end - entry.start != entry.numel * DTYPE_BYTES[dtype]:
        raise ValueError(
            f"{bad}: shape {list(shape)} of {dtype} needs {entry.numel * DTYPE_BYTES[dtype]} bytes, "
            f"its data_offsets give {entry.end - entry.start}"
        )
    return entry


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _check_tiling(tensors: dict[str, TensorEntry], data_bytes: int, where: str) -> None:
    """The byte ranges cover the data section exactly, in order, without gaps or overlaps."""
    position = 0
    for name, entry in sorted(tensors.items(), key=lambda item: (item[1].start, item[1].end)):
        if entry.start != position:
            raise ValueError(
                f"{where} is corrupt: tensor {name!r} starts at byte {entry.start}, not {position}"
            )
        position = entry.end
    if position != data_bytes:
        raise ValueError(
            f"{where} is truncated or corrupt: its header declares {position} bytes of tensor data, "
            f"the file holds {data_bytes}"
        )


def tensor_digest(tensors: Mapping[str, torch.Tensor]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order (a checkpoint's checksum)."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}\0{tensor.dtype}\0{tuple(tensor.shape)}\0".encode())
        digest.update(memoryview(tensor.reshape(-1).view(torch.uint8).numpy()))  # no copy of the bytes
    return digest.hexdigest()


def checkpoint_header(
    tensors: Mapping[str, torch.Tensor], *, fields: dict[str, str], metadata: dict[str, str] | None
) -> dict[str, str]:
    """The header `save` and `save_compiled` write: format, version, their `fields`, the user's
    `metadata` and the checksum, once every tensor's dtype is one the loaders read.

    Raises:
        ValueError: a reserved key in `metadata`, or a tensor of a dtype safetensors cannot store.
    """
    clash = sorted(set(metadata or {}) & set(RESERVED_KEYS))
    if clash:
        raise ValueError(f"metadata may not set the reserved header key(s) {clash}")
    known = set(SAFETENSORS_DTYPES.values())
    for name in sorted(tensors):
        if tensors[name].dtype not in known:
            raise ValueError(
                f"cannot save {name!r}: dtype {tensors[name].dtype} is not one safetensors stores "
                f"({', '.join(SAFETENSORS_DTYPES)})"
            )
    header = {"format": FORMAT, "version": FORMAT_VERSION, **fields, **(metadata or {})}
    return {**header, DIGEST_KEY: tensor_digest(tensors)}


def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read a safetensors file into (tensors, metadata) with clear errors; never unpickles.

    The header is validated against the file's byte count before any tensor is read
    (`read_safetensors_header`), the checksum is verified when the file has one, and bool tensors
    must hold only the bytes 0 and 1.

    Raises:
        FileNotFoundError: no such file.
        ValueError: the file is truncated, corrupt, or not a sparsetorch checkpoint.
    """
    from safetensors import SafetensorError, safe_open  # imported on use: a heavy import

    where = f"checkpoint {str(path)!r}"
    metadata = read_safetensors_header(path).metadata
    if metadata.get("format") != FORMAT:
        raise ValueError(f"{where} is not a sparsetorch checkpoint (no 'format: {FORMAT}' header)")
    if metadata.get("version") != FORMAT_VERSION:
        raise ValueError(f"{where} has format version {metadata.get('version')!r}, expected 1")
    try:
        with safe_open(str(path), framework="pt") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open has no iterator)
    except (SafetensorError, OSError, RuntimeError, ValueError) as err:
        raise ValueError(f"{where} is corrupt, truncated or not a safetensors file: {err}") from err
    if DIGEST_KEY in metadata and tensor_digest(tensors) != metadata[DIGEST_KEY]:
        raise ValueError(f"{where} is corrupt: its tensors do not match its checksum ({DIGEST_KEY})")
    for key, value in tensors.items():
        if value.dtype == torch.bool and bool((value.reshape(-1).view(torch.uint8) > 1).any()):
            raise ValueError(f"{where} is corrupt: bool tensor {key!r} holds bytes other than 0 and 1")
    return tensors, metadata
