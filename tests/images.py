"""Test images made on the fly: an ID-card-like picture and a face, with canary bytes in their metadata."""

import io

from PIL import Image, ImageDraw, PngImagePlugin

CANARY = "CANARY-EVIDENCE-7f3a9c"


def _card(size=(900, 570)) -> Image.Image:
    img = Image.new("RGB", size, (232, 236, 241))
    draw = ImageDraw.Draw(img)
    draw.rectangle([30, 30, 260, 320], fill=(180, 150, 130))
    draw.ellipse([90, 70, 200, 190], fill=(230, 200, 170))
    for row in range(6):
        draw.rectangle([300, 60 + row * 45, 820 - row * 40, 80 + row * 45], fill=(60, 60, 80))
    draw.text((40, 480), "P<DEUMUSTERMANN<<ERIKA<<<<<<<<<<<<<<<<<<<<<<<", fill=(0, 0, 0))
    return img


def face(size=(640, 480)) -> Image.Image:
    img = Image.new("RGB", size, (70, 90, 110))
    draw = ImageDraw.Draw(img)
    cx, cy = size[0] // 2, size[1] // 2
    draw.ellipse([cx - 110, cy - 150, cx + 110, cy + 150], fill=(225, 190, 160))
    draw.ellipse([cx - 60, cy - 50, cx - 25, cy - 25], fill=(40, 40, 40))
    draw.ellipse([cx + 25, cy - 50, cx + 60, cy - 25], fill=(40, 40, 40))
    draw.arc([cx - 50, cy + 30, cx + 50, cy + 90], 20, 160, fill=(120, 40, 40), width=6)
    return img


def document_png(canary: str = CANARY) -> bytes:
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", canary)
    out = io.BytesIO()
    _card().save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def selfie_jpeg(canary: str = CANARY) -> bytes:
    img = face()
    exif = Image.Exif()
    exif[0x010E] = canary  # ImageDescription
    exif[0x9286] = canary  # UserComment (where phones leave things)
    out = io.BytesIO()
    img.save(out, format="JPEG", quality=90, exif=exif.tobytes())
    return out.getvalue()
