"""Fixtures shared by the verification tests: private folders per test."""

import pytest


@pytest.fixture(autouse=True)
def private_folders(settings, tmp_path):
    """Each test gets its own evidence, vendor and upload-spool folders, so "no file left" means this test's."""
    settings.IDBROKER_EVIDENCE_DIR = tmp_path / "evidence"
    settings.IDBROKER_DEV_VENDOR_DIR = tmp_path / "dev-vendor"
    spool = tmp_path / "upload-spool"
    spool.mkdir()
    settings.FILE_UPLOAD_TEMP_DIR = str(spool)
    return tmp_path
