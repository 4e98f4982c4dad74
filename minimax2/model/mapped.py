"""Safetensors files as memory maps: every tensor a view of the file's pages, nothing read up front.

Used where the on-disk form is the serving form (zero-copy starts): the weights stay page cache, not
anonymous memory, so a start reads nothing until a kernel touches it, the kernel reads exactly the
on-disk layout, and two processes serving one checkpoint share its pages. The mapping is private
(copy-on-write): the model never writes its weights, and if anything did, the file would not change.

Format (safetensors): an 8-byte little-endian header length, a JSON header mapping each name to its
dtype, shape and [begin, end) byte offsets in the data that follows.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import torch

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2, "I8": torch.int8, "U8": torch.uint8,
          "I16": torch.int16, "I32": torch.int32, "I64": torch.int64, "BOOL": torch.bool}


class MappedFile:
    """One safetensors file mapped once; `tensor(name)` is a view of its pages (no copy)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        with open(self.path, "rb") as f:
            try:  # a truncated or corrupt file is a clear error, not a crash or a huge read
                size = self.path.stat().st_size
                (n,) = struct.unpack("<Q", f.read(8))
                if n > min(size - 8, 100 * 2**20):
                    raise ValueError(f"header length {n} does not fit the file")
                self.header = json.loads(f.read(n))
                self.header.pop("__metadata__", None)
                ends = [8 + n + meta["data_offsets"][1] for meta in self.header.values()]
                if ends and max(ends) > size:
                    raise ValueError("tensor data runs past the end of the file")
            except (struct.error, ValueError, KeyError, TypeError, IndexError, OSError) as e:
                raise ValueError(f"{self.path}: cannot read safetensors file, it is truncated or corrupt ({e})") from e
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
        self.data_start = 8 + n
        self.bytes = torch.frombuffer(self.map, dtype=torch.uint8) if len(self.map) else torch.empty(0, dtype=torch.uint8)

    def keys(self):
        return self.header.keys()

    def tensor(self, name: str, align: int = 1) -> torch.Tensor:
        """A view of the tensor's pages; copied instead where its data is not `align`-byte aligned (or
        not aligned to its own element size, from a writer that did not align)."""
        meta = self.header[name]
        dtype = DTYPES.get(meta["dtype"])
        if dtype is None:
            raise ValueError(f"{self.path}: tensor {name} has dtype {meta['dtype']}, which this loader cannot map")
        begin, end = (self.data_start + o for o in meta["data_offsets"])
        raw = self.bytes[begin:end]
        size = torch.empty((), dtype=dtype).element_size()
        if begin % max(size, align):
            raw = raw.clone()  # torch allocates 64-byte aligned
        return raw.view(dtype).view(meta["shape"])


def rss_anon() -> int:
    """This process's anonymous resident memory in bytes (what zero-copy keeps small), 0 where unknown."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


PAD_PREFIX = "__pad"  # filler tensors that align the next tensor's data; loaders skip them
CODES = {v: k for k, v in DTYPES.items()}


def save_aligned(tensors: dict[str, torch.Tensor], path: str | Path, align: int = 64) -> None:
    """A safetensors file whose every tensor starts `align`-aligned in memory once the file is mapped
    (torch's packed int8/int4 CPU ops read their weights with aligned vector loads). The format allows no
    holes in the data, so the gaps are filled by small uint8 tensors named `__pad<n>`."""
    entries = [(n, t.contiguous()) for n, t in tensors.items()]
    reserve = 512 + sum(len(n) + 40 + 12 * (t.dim() + 4) for n, t in entries) * 2  # header bytes, generous
    data_start = -(-(8 + reserve) // align) * align  # the header is padded with spaces up to here
    header, plan, offset = {}, [], 0
    for k, (name, t) in enumerate(entries):
        gap = -(data_start + offset) % align
        if gap:
            header[f"{PAD_PREFIX}{k}"] = {"dtype": "U8", "shape": [gap], "data_offsets": [offset, offset + gap]}
            plan.append(bytes(gap))
            offset += gap
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        plan.append(t)
        offset += nbytes
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode()
    if 8 + len(text) > data_start:
        raise RuntimeError("safetensors header larger than reserved")  # the reserve is generous: a bug if hit
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", data_start - 8))
        f.write(text + b" " * (data_start - 8 - len(text)))
        for item in plan:
            f.write(item if isinstance(item, bytes) else item.reshape(-1).view(torch.uint8).numpy().data)
