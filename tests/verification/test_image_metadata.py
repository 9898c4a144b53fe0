"""Image cleaning keeps pixels only (SPEC 3.2): a marker placed in every metadata container that Pillow reads or
writes for the accepted formats (JPEG, PNG, WebP) never reaches the stored evidence. Each photo goes through the
real capture page; the stored evidence is decrypted with the broker's own reading path and searched byte by byte."""

import io
import struct
import zlib

import pytest
from PIL import Image, ImageCms, PngImagePlugin

from tests import images, journey
from tests.verification.support import evidence_files
from verification import services
from verification.models import Evidence

pytestmark = pytest.mark.django_db

MARKER = "MARKER-META-5e1d0c"
# What Pillow reports for the JFIF header libjpeg writes by itself: all the re-encoder needs, nothing of the input.
JFIF_KEYS = {"jfif", "jfif_version", "jfif_unit", "jfif_density"}
# Segments a plain baseline JPEG is made of: SOI, APP0 (JFIF), DQT, SOF0-2, DHT, SOS, EOI. No APP1-15, no COM.
PIXEL_SEGMENTS = {0xD8, 0xE0, 0xDB, 0xC0, 0xC1, 0xC2, 0xC4, 0xDA, 0xD9, 0xDD}


@pytest.fixture
def trip(acme, signing_key):
    started = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(started)
    return started


# --- Building hostile photos ----------------------------------------------------------------------------------------


def _save(img: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt, **params)
    return out.getvalue()


def _exif() -> Image.Exif:
    """The places phones and editors write text: IFD0, the Exif IFD (UserComment, MakerNote, serial) and GPS."""
    exif = Image.Exif()
    exif[0x010E] = MARKER  # ImageDescription
    exif[0x013B] = MARKER  # Artist
    exif[0x8298] = MARKER  # Copyright
    exif[0x0131] = MARKER  # Software
    sub = exif.get_ifd(0x8769)
    sub[0x9286] = b"ASCII\x00\x00\x00" + MARKER.encode()  # UserComment
    sub[0x927C] = MARKER.encode() * 4  # MakerNote
    sub[0xA431] = MARKER  # BodySerialNumber
    gps = exif.get_ifd(0x8825)
    gps[0x0001] = "N"
    gps[0x0002] = (52.0, 31.0, 12.0)
    gps[0x001B] = b"ASCII\x00\x00\x00" + MARKER.encode()  # GPSProcessingMethod
    return exif


def _xmp() -> bytes:
    return (
        b'<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/">'
        b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description '
        b'xmlns:dc="http://purl.org/dc/elements/1.1/" dc:description="' + MARKER.encode() + b'"/>'
        b'</rdf:RDF></x:xmpmeta><?xpacket end="w"?>'
    )


def _icc_with_marker() -> bytes:
    """A genuine sRGB profile that parses, with the marker appended inside its declared size."""
    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes() + MARKER.encode() * 8
    return struct.pack(">I", len(profile)) + profile[4:]


def _icc_garbage() -> bytes:
    return b"\x00\x00\x02\x00" + MARKER.encode() * 20  # not a profile at all: must be dropped, not trusted


def _segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def _after_soi(jpeg: bytes, *segments: bytes) -> bytes:
    assert jpeg[:2] == b"\xff\xd8"
    return jpeg[:2] + b"".join(segments) + jpeg[2:]


def _iptc() -> bytes:
    """APP13 'Photoshop 3.0' with an 8BIM IPTC-NAA resource (0x0404) holding a caption (dataset 2:120)."""
    dataset = b"\x1c\x02\x78" + struct.pack(">H", len(MARKER)) + MARKER.encode()
    resource = b"8BIM" + struct.pack(">H", 0x0404) + b"\x00\x00" + struct.pack(">I", len(dataset)) + dataset
    return _segment(0xED, b"Photoshop 3.0\x00" + resource)


def _jfif_thumbnail() -> bytes:
    """APP0 JFXX extension (code 0x10): a JPEG thumbnail that carries its own comment."""
    thumb = _save(images.face((64, 48)), "JPEG", comment=MARKER.encode())
    return _segment(0xE0, b"JFXX\x00\x10" + thumb)


def _exif_with_thumbnail() -> bytes:
    """APP1 Exif whose IFD1 holds a JPEG thumbnail (the preview phones keep even after a crop)."""
    thumb = _save(images.face((64, 48)), "JPEG", comment=MARKER.encode())
    header = b"MM\x00\x2a\x00\x00\x00\x08"
    ifd0 = struct.pack(">H", 0) + struct.pack(">I", 14)  # no entries; IFD1 at offset 14
    ifd1_entries = [
        struct.pack(">HHII", 0x0201, 4, 1, 14 + 2 + 2 * 12 + 4),  # JPEGInterchangeFormat
        struct.pack(">HHII", 0x0202, 4, 1, len(thumb)),  # JPEGInterchangeFormatLength
    ]
    ifd1 = struct.pack(">H", 2) + b"".join(ifd1_entries) + struct.pack(">I", 0)
    return _segment(0xE1, b"Exif\x00\x00" + header + ifd0 + ifd1 + thumb)


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


def _png_before_iend(png: bytes, *chunks: bytes) -> bytes:
    assert png.endswith(_png_chunk(b"IEND", b""))
    return png[:-12] + b"".join(chunks) + png[-12:]


def jpeg_cases() -> dict[str, bytes]:
    card = images._card()
    plain = _save(card, "JPEG", quality=90)
    return {
        "COM": _save(card, "JPEG", comment=MARKER.encode()),
        "EXIF (IFD0, UserComment, MakerNote, serial, GPS)": _save(card, "JPEG", exif=_exif()),
        "EXIF thumbnail (IFD1)": _after_soi(plain, _exif_with_thumbnail()),
        "XMP (APP1)": _save(card, "JPEG", xmp=_xmp()),
        "ICC profile that parses (APP2)": _save(card, "JPEG", icc_profile=_icc_with_marker()),
        "ICC profile that does not parse (APP2)": _save(card, "JPEG", icc_profile=_icc_garbage()),
        "IPTC (APP13)": _after_soi(plain, _iptc()),
        "JFIF thumbnail (APP0 JFXX)": _after_soi(plain, _jfif_thumbnail()),
        "other APPn (APP3, APP11 JUMBF, APP15)": _after_soi(
            plain, *(_segment(m, b"JP\x00" + MARKER.encode()) for m in (0xE3, 0xEB, 0xEF))
        ),
        "bytes after EOI": plain + MARKER.encode() * 4,
        # A phone's multi-picture JPEG: a second picture (a depth or gain map) that carries its own comment.
        "MPO second picture": _save(
            card, "MPO", save_all=True, append_images=[images.face()], comment=MARKER.encode(), exif=_exif()
        ),
        "everything at once": _after_soi(
            _save(card, "JPEG", comment=MARKER.encode(), exif=_exif(), xmp=_xmp(), icc_profile=_icc_with_marker()),
            _iptc(),
            _jfif_thumbnail(),
        ),
    }


def png_cases() -> dict[str, bytes]:
    card = images._card()

    def with_info(*adders) -> bytes:
        info = PngImagePlugin.PngInfo()
        for add in adders:
            add(info)
        return _save(card, "PNG", pnginfo=info)

    plain = _save(card, "PNG")
    return {
        # Pillow files a tEXt chunk named `comment` where its JPEG encoder looks for a COM segment.
        "tEXt comment": with_info(lambda i: i.add_text("comment", MARKER)),
        "tEXt Description": with_info(lambda i: i.add_text("Description", MARKER)),
        "zTXt": with_info(lambda i: i.add_text("Comment", MARKER, zip=True)),
        "iTXt": with_info(lambda i: i.add_itxt("Title", MARKER, lang="en", tkey=MARKER)),
        "iTXt XMP": with_info(lambda i: i.add_itxt("XML:com.adobe.xmp", _xmp().decode())),
        "eXIf": _save(card, "PNG", exif=_exif()),
        "iCCP that parses": _save(card, "PNG", icc_profile=_icc_with_marker()),
        "iCCP that does not parse": _save(card, "PNG", icc_profile=_icc_garbage()),
        "private chunk": _png_before_iend(plain, _png_chunk(b"prVt", MARKER.encode())),
        "bytes after IEND": plain + MARKER.encode() * 4,
    }


def webp_cases() -> dict[str, bytes]:
    card = images._card()
    return {
        "EXIF chunk": _save(card, "WEBP", exif=_exif()),
        "XMP chunk": _save(card, "WEBP", xmp=_xmp()),
        "ICCP chunk": _save(card, "WEBP", icc_profile=_icc_with_marker()),
        "all three, lossless": _save(
            card, "WEBP", lossless=True, exif=_exif(), xmp=_xmp(), icc_profile=_icc_with_marker()
        ),
    }


CASES = [
    pytest.param(data, content_type, id=f"{fmt}: {name}")
    for fmt, content_type, cases in (
        ("JPEG", "image/jpeg", jpeg_cases()),
        ("PNG", "image/png", png_cases()),
        ("WebP", "image/webp", webp_cases()),
    )
    for name, data in cases.items()
]


# --- Reading what was stored ----------------------------------------------------------------------------------------


def _segments(jpeg: bytes) -> list[int]:
    """The marker codes of a JPEG's segments, walking their lengths up to the scan."""
    assert jpeg[:2] == b"\xff\xd8"
    found, at = [0xD8], 2
    while at < len(jpeg):
        assert jpeg[at] == 0xFF, at
        code = jpeg[at + 1]
        found.append(code)
        if code == 0xDA:  # start of scan: entropy-coded data follows until EOI
            assert jpeg.endswith(b"\xff\xd9")
            return [*found, 0xD9]
        (length,) = struct.unpack(">H", jpeg[at + 2 : at + 4])
        at += 2 + length
    raise AssertionError("no scan")


def _stored_after(trip, data: bytes, content_type: str) -> bytes:
    response = journey.upload(trip, "document", data, "photo", content_type)
    assert response.status_code == 302, response.content.decode()[:500]
    (evidence,) = Evidence.objects.all()
    (path,) = evidence_files()
    assert MARKER.encode() not in path.read_bytes()
    return services.evidence_read(evidence)  # the broker's own decryption path (verification.crypto)


# --- The tests ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data", "content_type"), CASES)
def test_a_marker_in_any_metadata_container_never_reaches_the_stored_evidence(trip, data, content_type):
    assert MARKER.encode() in data or content_type == "image/png"  # zTXt compresses it; the others carry it verbatim
    stored = _stored_after(trip, data, content_type)
    for encoding in ("ascii", "utf-16-be", "utf-16-le"):
        assert MARKER.encode(encoding) not in stored, encoding
    with Image.open(io.BytesIO(stored)) as img:
        assert img.format == "JPEG" and img.size == (900, 570)
        assert set(img.info) <= JFIF_KEYS, set(img.info) - JFIF_KEYS
        assert not img.getexif()
    assert set(_segments(stored)) <= PIXEL_SEGMENTS, [hex(c) for c in set(_segments(stored)) - PIXEL_SEGMENTS]


def test_the_pixels_survive_the_cleaning(trip):
    """An sRGB profile applied to sRGB pixels changes nothing visible: cleaning is not a colour filter."""
    card = images._card()
    stored = _stored_after(trip, _save(card, "PNG", icc_profile=_icc_with_marker()), "image/png")
    with Image.open(io.BytesIO(stored)) as img:
        for xy in ((100, 100), (145, 130), (400, 70), (880, 550)):
            got, want = img.getpixel(xy), card.getpixel(xy)
            assert max(abs(a - b) for a, b in zip(got, want, strict=True)) <= 8, (xy, got, want)


def _swapped_primaries_profile() -> bytes:
    """sRGB with its red and blue primaries exchanged (the rXYZ and bXYZ tag entries swapped): a profile whose
    pixels mean something else than the same numbers in sRGB, like a Display P3 photo's do, only more visibly."""
    profile = bytearray(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    (count,) = struct.unpack(">I", profile[128:132])
    entries = {bytes(profile[132 + 12 * i : 136 + 12 * i]): 132 + 12 * i for i in range(count)}
    red, blue = entries[b"rXYZ"], entries[b"bXYZ"]
    profile[red + 4 : red + 12], profile[blue + 4 : blue + 12] = (
        profile[blue + 4 : blue + 12],
        profile[red + 4 : red + 12],
    )
    return bytes(profile)


def test_an_embedded_colour_profile_is_applied_before_it_is_dropped(trip):
    """Dropping a profile without applying it would reinterpret the pixels (a P3 photo would come out dull, a
    CMYK scan off): the colours are converted to sRGB first."""
    red = Image.new("RGB", (400, 300), (255, 0, 0))
    stored = _stored_after(trip, _save(red, "PNG", icc_profile=_swapped_primaries_profile()), "image/png")
    with Image.open(io.BytesIO(stored)) as img:
        r, g, b = img.getpixel((200, 150))
    assert b > 200 and r < 60, (r, g, b)  # the profile says these numbers are sRGB's blue


def test_a_gif_with_a_comment_is_refused_and_nothing_is_kept(trip):
    gif = _save(images.face(), "GIF", comment=MARKER.encode())
    response = journey.upload(trip, "document", gif, "id.gif", "image/gif")
    assert response.status_code == 415
    assert Evidence.objects.count() == 0 and evidence_files() == []
