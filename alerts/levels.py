"""Warning levels (四级预警) and the size bands of collective incidents."""
from __future__ import annotations

LEVEL_RANK = {"blue": 1, "yellow": 2, "orange": 3, "red": 4}

# Contract size bands for collective incidents (emergency plans scale with the number of workers).
SIZE_BANDS: tuple[tuple[int, int, str], ...] = (
    (30, 50, "30-50"),
    (51, 200, "51-200"),
    (201, 500, "201-500"),
    (501, 1000, "501-1000"),
)


def size_band(workers: int) -> str | None:
    """The contract band for ``workers``; None below 30, where the contract names no band."""
    for low, high, band in SIZE_BANDS:
        if low <= workers <= high:
            return band
    return "1000+" if workers > 1000 else None


_BAND_ORDER = [band for _, _, band in SIZE_BANDS] + ["1000+"]


def band_rank(band: str | None) -> int:
    """Order of size bands, for "the incident grew"; -1 for no band."""
    return -1 if band is None else _BAND_ORDER.index(band)
