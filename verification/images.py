"""Image validation: decode for real, refuse bombs and fakes, strip every byte of metadata.

An image is accepted only if Pillow decodes all of its pixels within the pixel budget. It is then re-encoded as a
fresh JPEG from the pixels alone, so EXIF (GPS, device serials, maker notes, thumbnails), XMP, IPTC, ICC profiles,
comments, PNG text chunks, WebP metadata chunks and anything appended after the image data are gone before
encryption. Two habits make that hold whatever Pillow's encoders pick up by themselves:

1. The pixels are copied into a new image, so no `info` (Pillow's bag of decoded metadata) travels with them:
   Pillow's JPEG encoder writes `im.info["comment"]` as a COM segment unasked, and a PNG tEXt chunk named
   `comment` lands there too.
2. Colour: an embedded ICC profile is applied (converted to sRGB with littleCMS) and then dropped, so a wide-gamut
   phone photo (Display P3) or a CMYK scan keeps its colours without carrying the profile, whose text tags can
   hold anything. A profile that does not parse, or an oversized one, is dropped unread and the pixels are taken as
   sRGB, the web's default.
"""

from __future__ import annotations

import io
import warnings

from django.conf import settings
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from broker.errors import BrokerError

# MPO is a JPEG with more pictures after the first (phones store portrait depth maps and HDR gain maps this way):
# the first picture is the photo, the others are never decoded, and Pillow names such a file "MPO".
ACCEPTED_FORMATS = {"JPEG": "image/jpeg", "MPO": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
MIN_SIDE = 200
# Real profiles are a few kB (sRGB, Display P3) to a few hundred kB (print CMYK); anything larger is not parsed.
MAX_ICC_BYTES = 1024 * 1024
SRGB = ImageCms.createProfile("sRGB")


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
                icc = img.info.get("icc_profile")
                upright = ImageOps.exif_transpose(img)
                pixels = _as_srgb(upright, icc)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageRejected("This image is too large to process.", code="image_too_large") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError):
        raise ImageRejected(
            "This file could not be read as a photo. It may be damaged or not an image.", code="unreadable_image"
        ) from None
    bare = Image.new("RGB", pixels.size)  # step 1: a new image has an empty `info`
    bare.paste(pixels)
    out = io.BytesIO()
    bare.save(out, format="JPEG", quality=90, optimize=True)  # no exif=, xmp=, icc_profile=, comment=
    return out.getvalue()


def _as_srgb(img: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB pixels in sRGB (step 2). The profile's own bytes never reach the output."""
    if icc and len(icc) <= MAX_ICC_BYTES:
        try:
            source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
            base = img if img.mode in ("RGB", "CMYK", "L") else img.convert("RGB")
            converted = ImageCms.profileToProfile(base, source, SRGB, outputMode="RGB")
            if converted is not None:
                return converted
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            pass  # unreadable, or a profile for another colour space than the pixels': drop it unread
    return img.convert("RGB")
