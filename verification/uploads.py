"""Upload handling: refuse oversized images while they stream in, before anything is kept."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler, SkipFile


class SizeCappedUploadHandler(FileUploadHandler):
    """First in the handler chain: counts each file's bytes and skips a file past IDBROKER_MAX_UPLOAD_BYTES.

    Skipping (rather than resetting the connection) lets the view answer with a clear 413 page; the rest of the
    file is read from the socket and thrown away, never buffered.
    """

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > settings.IDBROKER_MAX_UPLOAD_BYTES:
            self.request.upload_too_large = True
            raise SkipFile()
        return raw_data  # pass the chunk on to the next handler (memory or temporary file)

    def file_complete(self, file_size):
        return None
