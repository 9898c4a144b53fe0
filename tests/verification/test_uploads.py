"""Hostile input to the capture steps (SPEC 2.2 steps 2-3, 3.1): every refusal is a clear 4xx page with a human
sentence, never a 500, and nothing is kept. What is kept is ciphertext of a re-encoded, metadata-free JPEG."""

import functools
import io
import struct
import zlib
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.files.uploadhandler import FileUploadHandler
from PIL import Image

from audit.services import audit_verify
from tests import images, journey
from tests.verification.support import evidence_files
from verification import services
from verification.models import Evidence

pytestmark = pytest.mark.django_db

UNREADABLE = "This file could not be read as a photo. It may be damaged or not an image."
NOT_A_PHOTO = "Please choose a photo (JPEG, PNG or WebP)."
TOO_MANY_PIXELS = "This image is too large to process."
TOO_SMALL = "This photo is too small. Please use a sharper, larger photo."


@pytest.fixture
def trip(acme, signing_key):
    """A browser that opened its link and consented: it is on the document step."""
    started = journey.start(acme, ["age_over_18"])
    journey.open_and_consent(started)
    return started


def _png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))


@functools.cache
def bomb_png(width: int = 20_000, height: int = 20_000) -> bytes:
    """A 1-bit, single-colour PNG: 400 megapixels in about 50 kB. Built by hand, since Pillow would have to hold
    the pixels to write it."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encoded(img: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    img.save(out, format=fmt)
    return out.getvalue()


def _refused(response, status: int, sentence: str) -> str:
    """A capture page (not a bare error) that says what went wrong in words, with the given status."""
    text = response.content.decode()
    assert response.status_code == status, (response.status_code, text[:500])
    assert response["Content-Type"].startswith("text/html")
    assert 'role="alert"' in text and sentence in text
    assert "Traceback" not in text
    return text


def _page(response, status: int, sentence: str) -> str:
    """A human page (the capture page or the general error page) with the given status and sentence."""
    text = response.content.decode()
    assert response.status_code == status, (response.status_code, text[:500])
    assert response["Content-Type"].startswith("text/html")
    assert sentence in text and "Traceback" not in text
    return text


def _journey_goes_on(trip) -> None:
    """Nothing of the session was lost: the same browser is still at the document step and a proper photo works."""
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/document"
    response = journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    assert response.status_code == 302 and response["Location"] == "/verify/selfie"
    assert Evidence.objects.count() == 1


class SpoolWitness(FileUploadHandler):
    """Placed right after the broker's own upload handler: records every file part (name, bytes) that goes on to
    the memory and temporary-file handlers, i.e. everything that could be spooled."""

    seen: list = []

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        SpoolWitness.seen.append([field_name, 0])

    def receive_data_chunk(self, raw_data, start):
        SpoolWitness.seen[-1][1] += len(raw_data)
        return raw_data

    def file_complete(self, file_size):
        return None


@pytest.fixture
def witness(settings):
    handlers = list(settings.FILE_UPLOAD_HANDLERS)
    settings.FILE_UPLOAD_HANDLERS = [handlers[0], f"{__name__}.SpoolWitness", *handlers[1:]]
    SpoolWitness.seen = []
    return SpoolWitness.seen


def _nothing_stored(settings) -> None:
    assert Evidence.objects.count() == 0
    assert evidence_files() == []
    assert list(Path(settings.FILE_UPLOAD_TEMP_DIR).iterdir()) == []  # no plaintext spool left behind


def _only_evidence() -> Evidence:
    (evidence,) = Evidence.objects.all()
    return evidence


# --- Refusals ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("step", ["document", "selfie"])
def test_a_text_file_claiming_to_be_a_png_is_refused(trip, settings, step):
    response = journey.upload(trip, step, b"name,birthdate\nErika,1990-04-12\n" * 50, "id.png", "image/png")
    _refused(response, 400, UNREADABLE)
    _nothing_stored(settings)


@pytest.mark.parametrize("keep", [0.2, 0.6, 0.97])
@pytest.mark.parametrize(("fmt", "make"), [("png", images.document_png), ("jpeg", images.selfie_jpeg)])
def test_a_truncated_image_is_refused(trip, settings, fmt, make, keep):
    whole = make()
    response = journey.upload(trip, "document", whole[: int(len(whole) * keep)], f"id.{fmt}", f"image/{fmt}")
    _refused(response, 400, UNREADABLE)
    _nothing_stored(settings)


def test_a_decompression_bomb_is_refused_by_the_pixel_limit(trip, settings):
    bomb = bomb_png()
    assert len(bomb) < 100_000 and settings.IDBROKER_MAX_IMAGE_PIXELS < 20_000 * 20_000
    response = journey.upload(trip, "document", bomb, "id.png", "image/png")
    _refused(response, 400, TOO_MANY_PIXELS)
    _nothing_stored(settings)


@pytest.mark.parametrize("over", [1.5, 3])  # Pillow warns between 1x and 2x its limit and raises above: both refuse
def test_the_pixel_limit_is_the_configured_one(trip, settings, over):
    document = images.document_png()  # 900 x 570 pixels
    settings.IDBROKER_MAX_IMAGE_PIXELS = int(900 * 570 / over)
    _refused(journey.upload(trip, "document", document, "id.png", "image/png"), 400, TOO_MANY_PIXELS)
    _nothing_stored(settings)
    settings.IDBROKER_MAX_IMAGE_PIXELS = 900 * 570
    assert journey.upload(trip, "document", document, "id.png", "image/png").status_code == 302
    assert Evidence.objects.count() == 1


def test_a_50_mb_upload_gets_413_and_nothing_is_stored(trip, settings, witness):
    huge = images.document_png() + b"\x00" * (50 * 1024 * 1024)
    response = journey.upload(trip, "document", huge, "id.png", "image/png")
    _page(response, 413, "This file is larger than 10 MB. Please choose a smaller photo.")
    assert witness == []  # refused on its declared length: not one byte was parsed
    _nothing_stored(settings)
    _journey_goes_on(trip)


def test_the_size_cap_is_counted_in_bytes_as_the_file_streams_in(trip, settings):
    document = images.document_png()
    settings.IDBROKER_MAX_UPLOAD_BYTES = len(document) - 1
    _refused(journey.upload(trip, "document", document, "id.png", "image/png"), 413, "Please choose a smaller photo.")
    _nothing_stored(settings)
    settings.IDBROKER_MAX_UPLOAD_BYTES = len(document)
    assert journey.upload(trip, "document", document, "id.png", "image/png").status_code == 302


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\n%%EOF\n", "application/pdf"),
        (images.document_png(), "application/pdf"),  # a real photo, declared as something else
        (images.document_png(), "text/html"),
    ],
)
def test_a_file_declared_as_a_non_image_type_is_refused_as_unsupported(trip, settings, data, content_type):
    _refused(journey.upload(trip, "document", data, "id.pdf", content_type), 415, NOT_A_PHOTO)
    _nothing_stored(settings)


@pytest.mark.parametrize(("fmt", "content_type"), [("GIF", "image/gif"), ("BMP", "image/bmp"), ("TIFF", "image/tiff")])
def test_image_formats_other_than_jpeg_png_and_webp_are_refused(trip, settings, fmt, content_type):
    data = _encoded(images.face(), fmt)
    _refused(journey.upload(trip, "document", data, f"id.{fmt.lower()}", content_type), 415, NOT_A_PHOTO)
    _nothing_stored(settings)


def test_a_gif_disguised_as_a_png_is_still_refused(trip, settings):
    data = _encoded(images.face(), "GIF")
    _refused(journey.upload(trip, "document", data, "id.png", "image/png"), 415, NOT_A_PHOTO)
    _nothing_stored(settings)


@pytest.mark.parametrize("size", [(199, 600), (600, 199), (32, 32)])
def test_a_too_small_image_is_refused(trip, settings, size):
    data = _encoded(images.face(size), "PNG")
    _refused(journey.upload(trip, "document", data, "id.png", "image/png"), 400, TOO_SMALL)
    _nothing_stored(settings)


def test_a_post_without_a_file_asks_for_a_photo(trip, settings):
    _refused(trip.browser.post("/verify/document", {}), 400, "Please take a photo or choose a file.")
    _nothing_stored(settings)


def test_a_refused_upload_leaves_the_user_on_the_same_step(trip):
    journey.upload(trip, "document", b"not an image", "id.png", "image/png")
    assert trip.browser.get(trip.link_path)["Location"] == "/verify/document"


# --- Amplification: one expected file, a capped body, a capped number of parts (issue 10, item 9) ----------------

EXTRA_PART = b"\x00" * (400 * 1024)  # 20 of these make 8 MB: under the body cap, over the in-memory limit


def _extra_parts(count: int) -> dict:
    return {f"extra{i}": SimpleUploadedFile(f"x{i}.bin", EXTRA_PART, "image/png") for i in range(count)}


@pytest.mark.parametrize("photo_first", [True, False])
def test_extra_file_parts_are_refused_and_never_spooled(trip, settings, witness, photo_first):
    """The review's attack: a capture POST with the photo and many more file parts. Before the fix each part went to
    a temporary file (about 1 GB a request); now at most the one photo reaches the spooling handlers."""
    photo = {"photo": SimpleUploadedFile("id.png", images.document_png(), "image/png")}
    parts = {**photo, **_extra_parts(20)} if photo_first else {**_extra_parts(20), **photo}
    response = trip.browser.post("/verify/document", parts)
    _page(response, 400, "Something was wrong with that upload")
    assert [name for name, _ in witness] in ([], ["photo"])
    assert sum(size for _, size in witness) <= settings.IDBROKER_MAX_UPLOAD_BYTES
    _nothing_stored(settings)
    _journey_goes_on(trip)


def test_a_lone_file_under_another_field_name_is_never_spooled(trip, settings, witness):
    response = trip.browser.post("/verify/document", {"evil": SimpleUploadedFile("x.png", EXTRA_PART * 12)})
    _refused(response, 400, "Please take a photo or choose a file.")
    assert witness == []
    _nothing_stored(settings)
    _journey_goes_on(trip)


@pytest.mark.parametrize("declared", [10 * 1024 * 1024 + 64 * 1024 + 1, 1024**3, 10**14])
def test_a_body_declared_larger_than_one_photo_and_its_form_is_refused_unread(trip, settings, witness, declared):
    """A 413 on the declared length alone: the test client sends a small body under a huge Content-Length, and the
    server answers without waiting for (or reading) the rest."""
    body = b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.png"\r\n\r\nxx\r\n--b--\r\n'
    response = trip.browser.generic(
        "POST", "/verify/document", body, "multipart/form-data; boundary=b", CONTENT_LENGTH=str(declared)
    )
    _page(response, 413, "This file is larger than 10 MB")
    assert witness == []
    _nothing_stored(settings)
    _journey_goes_on(trip)


def test_too_many_form_fields_are_a_400_not_a_parse_of_each(trip, settings):
    fields = {f"f{i}": "x" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1)}
    fields["photo"] = SimpleUploadedFile("id.png", images.document_png(), "image/png")
    _page(trip.browser.post("/verify/document", fields), 400, "Something was wrong with that upload")
    _nothing_stored(settings)
    _journey_goes_on(trip)


def test_the_body_cap_sits_just_above_the_photo_limit(settings):
    from broker.request_guard import max_request_bytes

    assert settings.IDBROKER_MAX_UPLOAD_BYTES < max_request_bytes() <= settings.IDBROKER_MAX_UPLOAD_BYTES + 128 * 1024
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == 1


# --- What is kept --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "content_type"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")]
)
def test_jpeg_png_and_webp_photos_are_accepted(trip, fmt, content_type):
    response = journey.upload(trip, "document", _encoded(images._card(), fmt), "id", content_type)
    assert response.status_code == 302 and response["Location"] == "/verify/selfie"
    assert _only_evidence().kind == "document_front"


@pytest.mark.parametrize(
    ("step", "make", "content_type"),
    [
        ("document", images.document_png, "image/png"),
        ("selfie", images.selfie_jpeg, "image/jpeg"),
    ],
)
def test_stored_evidence_is_ciphertext(trip, step, make, content_type):
    raw = make()
    assert images.CANARY.encode() in raw
    assert journey.upload(trip, step, raw, "photo", content_type).status_code == 302
    evidence = _only_evidence()
    (path,) = evidence_files()
    assert path == services.evidence_path(evidence)
    blob = path.read_bytes()
    assert images.CANARY.encode() not in blob
    assert raw[:64] not in blob and raw[-64:] not in blob
    assert not blob.startswith((b"\x89PNG", b"\xff\xd8"))
    plain = services.evidence_read(evidence)
    assert plain not in blob and plain[:64] not in blob


@pytest.mark.parametrize(
    ("step", "make", "content_type"),
    [
        ("document", images.document_png, "image/png"),
        ("selfie", images.selfie_jpeg, "image/jpeg"),
    ],
)
def test_decrypted_evidence_is_a_jpeg_with_every_metadata_byte_stripped(trip, step, make, content_type):
    raw = make()
    assert journey.upload(trip, step, raw, "photo", content_type).status_code == 302
    evidence = _only_evidence()
    plain = services.evidence_read(evidence)
    assert plain.startswith(b"\xff\xd8") and evidence.mime == "image/jpeg" and evidence.size == len(plain)
    assert images.CANARY.encode() not in plain
    with Image.open(io.BytesIO(plain)) as stored, Image.open(io.BytesIO(raw)) as original:
        assert stored.format == "JPEG" and stored.size == original.size
        assert not stored.getexif()
        assert not {"exif", "comment", "Comment", "icc_profile", "xmp"} & set(stored.info)


def test_bytes_smuggled_after_the_image_data_are_not_kept(trip):
    polyglot = images.selfie_jpeg() + b"PK\x03\x04" + images.CANARY.encode() * 10
    assert journey.upload(trip, "document", polyglot, "id.jpg", "image/jpeg").status_code == 302
    assert images.CANARY.encode() not in services.evidence_read(_only_evidence())


def test_the_uploaded_file_name_has_no_say_in_where_evidence_is_stored(trip, settings):
    response = journey.upload(trip, "document", images.document_png(), "../../../../tmp/evil.png", "image/png")
    assert response.status_code == 302
    (path,) = evidence_files()
    assert path.parent.parent == Path(settings.IDBROKER_EVIDENCE_DIR)
    assert path.name == f"{_only_evidence().id}.bin"


def test_a_retake_replaces_the_earlier_image(trip):
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    first = _only_evidence()
    first_path = services.evidence_path(first)
    assert first_path.is_file()
    retake = journey.upload(trip, "document", _encoded(images.face((700, 500)), "JPEG"), "id2.jpg", "image/jpeg")
    assert retake.status_code == 302
    second = _only_evidence()
    assert second.id != first.id and second.kind == "document_front"
    assert not first_path.exists()
    assert evidence_files() == [services.evidence_path(second)]
    with Image.open(io.BytesIO(services.evidence_read(second))) as stored:
        assert stored.size == (700, 500)
    assert audit_verify().ok


def test_a_retake_of_one_kind_leaves_the_other_kind_alone(trip):
    # The selfie first: with the document still missing, nothing is submitted, so both stay retakeable.
    journey.upload(trip, "selfie", images.selfie_jpeg(), "me.jpg", "image/jpeg")
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    selfie = Evidence.objects.get(kind="selfie")
    first_document = Evidence.objects.get(kind="document_front")
    journey.upload(trip, "document", images.document_png(), "id.png", "image/png")
    assert Evidence.objects.count() == 2
    assert Evidence.objects.get(kind="selfie").id == selfie.id
    assert Evidence.objects.get(kind="document_front").id != first_document.id
    assert len(evidence_files()) == 2
