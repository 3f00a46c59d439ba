"""Local paths and ``s3://`` URLs behind one small abstraction (fsspec).

S3 settings come from the standard AWS environment (``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``, and
``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` for S3-compatible stores such as
MinIO). Credentials are never logged or put in error messages.

What is a URL and what a local path (``file://`` is local) is decided in
:mod:`galclust.paths`; :func:`is_url` and :func:`join` are re-exported here.
"""

from __future__ import annotations

import os
from typing import Any

import fsspec

from galclust.errors import MissingInputError, StoreError
from galclust.paths import is_url, join  # the one definition; re-exported for store/

__all__ = [
    "check_writable",
    "exists",
    "get_fs",
    "is_url",
    "join",
    "read_bytes",
    "storage_options",
    "write_bytes",
]


def storage_options(url: str) -> dict[str, Any]:
    """fsspec options for ``url`` from the standard AWS environment.

    Parameters
    ----------
    url : str
        A local path or URL.

    Returns
    -------
    dict
        For ``s3://`` URLs, ``{"client_kwargs": {"endpoint_url": ...}}`` when an
        endpoint is configured; otherwise empty (botocore reads credentials).
    """
    if not str(url).startswith(("s3://", "s3a://")):
        return {}
    opts: dict[str, Any] = {}
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        opts["client_kwargs"] = {"endpoint_url": endpoint}
    region = os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
    if region:
        opts.setdefault("client_kwargs", {})["region_name"] = region
    return opts


def get_fs(url: str) -> tuple[fsspec.AbstractFileSystem, str]:
    """Return the filesystem and the path within it for ``url``."""
    fs, path = fsspec.core.url_to_fs(str(url), **storage_options(str(url)))
    return fs, path


def _bucket(url: str) -> str:
    return str(url).split("://", 1)[1].split("/", 1)[0]


def _explain_s3(url: str, exc: BaseException) -> StoreError:
    text = f"{type(exc).__name__}: {exc}"
    bucket = _bucket(url)
    if isinstance(exc, PermissionError) or any(
        s in text for s in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                            "Forbidden", "403")
    ):
        return StoreError(
            f"{url}: access to bucket {bucket!r} was refused. Check the credentials in the "
            "AWS environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE) and "
            "that they may read and write this bucket."
        )
    if "NoCredentials" in text or "Unable to locate credentials" in text:
        return StoreError(
            f"{url}: no AWS credentials were found for bucket {bucket!r}. Set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE) in the environment."
        )
    if isinstance(exc, FileNotFoundError) or "NoSuchBucket" in text:
        return StoreError(
            f"{url}: bucket {bucket!r} does not exist. Create it first "
            f"(e.g. `aws s3 mb s3://{bucket}`) or correct the URL."
        )
    return StoreError(f"{url}: the object store could not be reached ({type(exc).__name__}). "
                      "Check AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL and the network.")


def check_writable(url: str) -> None:
    """Fail fast, before any compute, if ``url`` cannot be written.

    For ``s3://`` URLs the bucket must exist and the credentials must be
    accepted; local parents are created.

    Raises
    ------
    StoreError
        Naming the URL, the bucket and what would fix it.
    """
    if str(url).startswith(("s3://", "s3a://")):
        fs, _ = get_fs(url)
        bucket = _bucket(url)
        try:
            fs.ls(bucket, refresh=True)
        except Exception as exc:  # botocore/aiohttp errors vary; classify them
            raise _explain_s3(url, exc) from None
        return
    if not is_url(url):
        parent = os.path.dirname(os.path.abspath(url)) or "."
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{url}: cannot create folder {parent!r} ({exc.strerror}).") from None
        if not os.access(parent, os.W_OK):
            raise StoreError(f"{url}: folder {parent!r} is not writable.")


def exists(url: str) -> bool:
    """Whether a file or prefix exists at ``url``."""
    fs, path = get_fs(url)
    try:
        return bool(fs.exists(path))
    except Exception as exc:
        if str(url).startswith("s3://"):
            raise _explain_s3(url, exc) from None
        raise


def read_bytes(url: str, *, what: str = "file") -> bytes:
    """Read a whole (small) file, local or remote.

    Parameters
    ----------
    url : str
        Path or URL.
    what : str
        What the file is, for the error message (e.g. ``"survey manifest"``).

    Raises
    ------
    MissingInputError
        If it does not exist.
    """
    fs, path = get_fs(url)
    try:
        with fs.open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise MissingInputError(f"{what} not found: {url}") from None
    except IsADirectoryError:
        raise MissingInputError(f"{what} {url} is a folder, not a file.") from None
    except Exception as exc:
        if str(url).startswith("s3://"):
            raise _explain_s3(url, exc) from None
        raise


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` to ``url`` in one put (atomic on object stores)."""
    fs, path = get_fs(url)
    if not is_url(url):
        os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}"
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)  # atomic on POSIX
        return
    with fs.open(path, "wb") as fh:
        fh.write(data)
