"""A toy payload codec (``pgdurable ui --codec tests.support.rot13:Rot13``): rot13 behind a prefix,
so a payload it wrote is unreadable without it and a payload it did not write fails to decode."""

from __future__ import annotations

_PLAIN = "abcdefghijklmnopqrstuvwxyz"
_ROTATED = "nopqrstuvwxyzabcdefghijklm"


class Rot13:
    """``encode``/``decode`` as ``pgdurable.register_codec`` wants them."""

    def encode(self, text: str) -> str:
        return "r13:" + text.translate(str.maketrans(_PLAIN, _ROTATED))

    def decode(self, text: str) -> str:
        if not text.startswith("r13:"):
            raise ValueError("not a rot13 payload")
        return text[4:].translate(str.maketrans(_ROTATED, _PLAIN))
