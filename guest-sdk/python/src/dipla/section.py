"""A custom section appended to a WebAssembly binary: the same encoding at the top level
of a component as in a core module (id 0, its size, its name, its bytes), and a binary's
sections run to its end, so appending one keeps the binary valid."""

from __future__ import annotations


def leb128(n: int) -> bytes:
    """`n` as an unsigned LEB128."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def custom_section(name: str, data: bytes) -> bytes:
    """The custom section `name` holding `data`."""
    encoded = name.encode()
    body = leb128(len(encoded)) + encoded + data
    return b"\x00" + leb128(len(body)) + body
