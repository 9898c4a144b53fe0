"""Image validation: decode for real, refuse bombs and fakes, strip every byte of metadata.

An image is accepted only if Pillow decodes all of its pixels within the pixel budget. It is then re-encoded as a
fresh JPEG from the pixels alone, so EXIF (GPS, device serials), XMP, ICC profiles, comments and anything appended
after the image data are gone before encryption.
"""

from __future__ import annotations

import io
import warnings

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from broker.errors import BrokerError

ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIN_SIDE = 200


class ImageRejected(BrokerError):
    code = "invalid_image"
    status = 400
    title = "This file is not a usable photo"


def sanitize_image(fileobj, *, declared_type: str = "") -> bytes:
    """Return JPEG bytes with pixels only, or raise ImageRejected with a human sentence."""
    if declared_type and not declared_type.startswith("image/"):
        raise ImageRejected("Please choose a photo (JPEG, PNG or WebP).", code="unsupported_type")
    Image.MAX_IMAGE_PIXELS = settings.IDBROKER_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # Pillow warns between 1x and 2x the pixel budget and raises above 2x; treat both as a bomb.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            fileobj.seek(0)
            with Image.open(fileobj) as probe:
                if probe.format not in ACCEPTED_FORMATS:
                    raise ImageRejected("Please choose a photo (JPEG, PNG or WebP).", code="unsupported_type")
                probe.verify()
            fileobj.seek(0)
            with Image.open(fileobj) as img:
                img.load()
                if min(img.size) < MIN_SIDE:
                    raise ImageRejected(
                        "This photo is too small. Please use a sharper, larger photo.", code="image_too_small"
                    )
                upright = ImageOps.exif_transpose(img)
                pixels = upright.convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("This image is too large to process.", code="image_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected(
            "This file could not be read as a photo. It may be damaged or not an image.", code="unreadable_image"
        ) from None
    out = io.BytesIO()
    pixels.save(out, format="JPEG", quality=90, optimize=True)  # no exif=, no icc_profile=: nothing but pixels
    return out.getvalue()
