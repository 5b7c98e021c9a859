"""Reading image files as RGB uint8 pixels, whatever their mode, bit depth or EXIF orientation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from detcore.errors import BadImageError, DataError

# Pillow modes holding one channel of 16/32-bit integers (e.g. 16-bit PNG).
_WIDE_GRAY_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    """HWC uint8 RGB array; 16-bit grey is scaled to 8 bits, alpha is dropped."""
    if image.mode in _WIDE_GRAY_MODES:
        wide = np.asarray(image, dtype=np.float64)
        gray = np.clip(np.round(wide / 257.0), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode == "F":
        gray = np.clip(np.asarray(image, dtype=np.float64), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def read_image(path: str | Path) -> np.ndarray:
    """Load ``path`` as an (H, W, 3) uint8 RGB array, applying its EXIF orientation.

    Grayscale, palette, RGBA (alpha dropped), CMYK and 16-bit grey images all become RGB.
    Raises ``BadImageError`` (a ``DataError``) naming the file when it is missing or cannot be decoded.
    """
    path = Path(path)
    if not path.is_file():
        raise BadImageError(f"image file {path} does not exist; check the dataset's data_root / img_prefix")
    try:
        with Image.open(path) as image:
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb_array(image)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadImageError(f"image file {path} is corrupt or not an image ({exc}); replace or remove it") from exc


def read_image_size(path: str | Path) -> tuple[int, int]:
    """(width, height) of an image file as displayed (after EXIF rotation), reading only its header."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except (FileNotFoundError, UnidentifiedImageError, OSError) as exc:
        raise DataError(f"cannot read the size of image {path} ({exc})") from exc
    if orientation in (5, 6, 7, 8):  # rotated by 90 or 270 degrees
        width, height = height, width
    return width, height
