"""PostgreSQL ``numeric`` values of an Arrow decimal column, computed in bulk with numpy.

A binary ``numeric`` is int16 ndigits, int16 weight, int16 sign (0x0000 positive, 0x4000
negative), int16 dscale (the display scale), then ``ndigits`` int16 base-10000 digits, most
significant first, without leading or trailing zero digits; ``weight`` is the base-10000
exponent of the first digit. Zero has no digit and weight 0 (PostgreSQL's numeric.c).

No Python object is created per value. The unscaled integer of every value is read from the
Arrow buffer as 64-bit two's complement words (decimal32 is sign-extended to one); the high
words that merely extend the sign in every value are dropped, and the rest made non-negative.
The magnitudes are then divided in place with uint64 numpy arithmetic (as one 64-bit word
while they fit, else 32-bit limb by limb), first by ``10 ** (scale % 4)``, so that the digits
line up with the decimal point, then by 10**8 until no value has a digit left: each division
by 10**8 yields two base-10000 digits of every value. Limbs that are zero in every value are
dropped as they appear, so small values cost few divisions.
"""

from __future__ import annotations

import sys
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pyarrow as pa

__all__ = ["Numeric", "numeric_digits"]

_Array = npt.NDArray[Any]
_LIMB_MASK = np.uint64(0xFFFF_FFFF)


class Numeric(NamedTuple):
    """The binary ``numeric`` of every row; a null row is zero here."""

    ndigits: _Array  # int16, per row
    weight: _Array  # int16, per row
    sign: _Array  # int16, per row: 0 or 0x4000
    dscale: int  # the same for every row
    digits: list[_Array]  # int16 base-10000 digits of every row, most significant first
    present: list[_Array]  # bool, for each digit: the rows whose ndigits digits include it


def _words(column: pa.Array) -> _Array:
    """The unscaled integer of every row as uint64 words (rows, words), least significant word
    first, two's complement; null rows are zero."""
    width = column.type.byte_width
    buffer, n = column.buffers()[1], len(column)
    if width == 4:  # decimal32: sign-extend to one 64-bit word
        small = np.frombuffer(buffer, dtype=np.int32, count=n, offset=column.offset * 4)
        words = small.astype(np.int64).view(np.uint64).reshape(n, 1)
    else:
        count = width // 8
        flat = np.frombuffer(buffer, dtype=np.uint64, count=n * count, offset=column.offset * width)
        words = flat.reshape(n, count)
        if sys.byteorder == "big":  # Arrow stores the whole integer in native byte order
            words = words[:, ::-1]
    if column.null_count:
        words = np.where(column.is_valid().to_numpy(zero_copy_only=False)[:, None], words, 0)
    return words


def _magnitude(column: pa.Array) -> tuple[list[_Array], _Array]:
    """|unscaled value| of every row as limbs (see ``_trim``), and whether it is negative."""
    words = _words(column)
    ones = (words[:, -1].view(np.int64) >> np.int64(63)).view(np.uint64)  # all ones where < 0
    count = words.shape[1]
    while count > 1 and (words[:, count - 1] == ones).all():  # mere sign extension
        count -= 1
    carry = ones & np.uint64(1)
    magnitude: list[_Array] = []
    for i in range(count):  # two's complement: |x| = ~x + 1 where x < 0
        word = (words[:, i] ^ ones) + carry
        carry &= word == 0
        magnitude.append(word)
    if carry.any():  # -2**(64 * count) needs one more word
        magnitude.append(carry)
    if len(magnitude) == 1:
        return magnitude, ones != 0
    limbs = [part for word in magnitude for part in (word & _LIMB_MASK, word >> np.uint64(32))]
    _trim(limbs)
    return limbs, ones != 0


def _trim(limbs: list[_Array]) -> bool:
    """Drop the most significant limbs that are zero in every row; whether any is left.

    ``limbs`` holds uint64 arrays, least significant first: 32-bit limbs, or when the numbers
    fit in 64 bits, one 64-bit word (so that a division is one numpy operation)."""
    while limbs and not limbs[-1].any():
        limbs.pop()
    if len(limbs) == 2:
        limbs[:] = [limbs[0] | (limbs[1] << np.uint64(32))]
    return bool(limbs)


def _divide(limbs: list[_Array], divisor: int) -> _Array:
    """Divide the numbers held in ``limbs`` by ``divisor`` (at most 10**8) in place; return the
    remainders."""
    d = np.uint64(divisor)
    if len(limbs) == 1:
        quotient: _Array = limbs[0] // d
        remainder: _Array = limbs[0] - quotient * d
        limbs[0] = quotient
        return remainder
    remainder = np.zeros_like(limbs[0])
    for i in reversed(range(len(limbs))):  # remainder * 2**32 + limb < 10**8 * 2**32 < 2**64
        current = np.left_shift(remainder, np.uint64(32)) | limbs[i]
        limbs[i] = current // d
        remainder = current - limbs[i] * d
    return remainder


def _base10000(limbs: list[_Array], scale: int, n: int) -> list[_Array]:
    """Base-10000 digits of every row, least significant first: digit j of value
    ``unscaled * 10**-scale`` weighs ``10000 ** (j - ceil(scale / 4))``."""
    digits: list[_Array] = []
    if scale % 4:
        low: _Array = _divide(limbs, 10 ** (scale % 4)) if _trim(limbs) else np.zeros(n, np.uint64)
        digits.append(low * np.uint64(10 ** (4 - scale % 4)))
    while _trim(limbs):
        rest = _divide(limbs, 10**8)
        high = rest // np.uint64(10_000)
        digits += [rest - high * np.uint64(10_000), high]
    return digits


def numeric_digits(column: pa.Array) -> Numeric:
    """The binary ``numeric`` of every value of a decimal column (any width, any scale)."""
    scale: int = column.type.scale
    limbs, negative = _magnitude(column)
    digits = [d.astype(np.int16) for d in _base10000(limbs, scale, len(column))]
    # Column by column (a reduction along a short axis of a 2-D array is much slower).
    last = np.full(len(column), -1, dtype=np.int16)  # index of the most significant nonzero
    first = np.full(len(column), len(digits), dtype=np.int16)  # of the least significant one
    for j, digit in enumerate(digits):
        nonzero = (digit != 0).view(np.int8).astype(np.int16)
        np.maximum(last, nonzero * np.int16(j + 1) - 1, out=last)
        np.minimum(first, len(digits) - nonzero * np.int16(len(digits) - j), out=first)
    some = last >= 0
    present = [(first <= j) & (last >= j) for j in range(len(digits))]
    return Numeric(
        ndigits=np.where(some, last - first + 1, 0).astype(np.int16),
        weight=np.where(some, last + (-scale) // 4, 0).astype(np.int16),
        sign=np.where(negative, 0x4000, 0).astype(np.int16),
        dscale=max(scale, 0),
        digits=digits[::-1],
        present=present[::-1],
    )
