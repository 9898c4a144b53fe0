"""Upload handling: only the one expected photo is received, and never more than the limit, before anything is kept.

Django's multipart parser hands every file part of a POST to the upload handlers, and the later handlers spool each
one to memory or a temporary file. This handler runs first and decides what may reach them:

1. The whole body: one photo at the limit plus its form (`broker.request_guard.max_request_bytes`). The middleware
   refuses a larger declared body with a 413 before anything reads it; this is the same rule where the body is
   parsed, should the middleware ever not run first: nothing is read at all.
2. Only a file part named `photo`, and only the first: any other file part is skipped before a temporary file is
   opened, its bytes read from the socket and dropped. (DATA_UPLOAD_MAX_NUMBER_FILES caps how many are even parsed.)
3. The photo itself: counted as it streams in and skipped past IDBROKER_MAX_UPLOAD_BYTES. Skipping (rather than
   resetting the connection) lets the view answer with a clear 413 page; the rest of the file is read and thrown
   away, never buffered.
"""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile
from django.http import QueryDict
from django.utils.datastructures import MultiValueDict

from broker.request_guard import max_request_bytes

PHOTO_FIELD = "photo"


class SizeCappedUploadHandler(FileUploadHandler):
    """First in the handler chain (FILE_UPLOAD_HANDLERS)."""

    def __init__(self, request=None):
        super().__init__(request)
        self.photos = 0
        self.received = 0

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        if content_length > max_request_bytes():  # step 1: parse nothing, spool nothing
            self.request.upload_too_large = True
            return QueryDict(encoding=encoding), MultiValueDict()
        return None

    def new_file(self, field_name, *args, **kwargs):
        super().new_file(field_name, *args, **kwargs)
        self.received = 0
        if field_name != PHOTO_FIELD or self.photos:  # step 2: before any later handler opens a file
            raise SkipFile()
        self.photos += 1

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.IDBROKER_MAX_UPLOAD_BYTES:  # step 3
            self.request.upload_too_large = True
            raise SkipFile()
        return raw_data  # pass the chunk on to the next handler (memory or temporary file)

    def file_complete(self, file_size):
        return None
