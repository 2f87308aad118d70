"""A study's shared artifact store: a folder every machine reads, or S3 (and S3-compatible servers).

`--artifacts URL` names it: a folder path, or `s3://BUCKET/PREFIX` for AWS S3, MinIO, Ceph,
R2 and the like, through Optuna's artifact stores and boto3. Credentials and the endpoint come
only from boto3's standard environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
`AWS_ENDPOINT_URL`, the AWS config files): a URL here never holds a secret, so it is recorded
on the study and shown as it is. Optuna's `Boto3ArtifactStore` has no key prefix;
`PrefixedStore` adds one.
"""

from __future__ import annotations

import io
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from study.errors import StudyError

S3_SCHEME = "s3://"


class ArtifactStoreError(StudyError):
    """The artifact store cannot be read or written."""


class PrefixedStore:
    """An artifact store whose ids all live under `prefix` in `inner` (S3 keys `PREFIX/ID`)."""

    def __init__(self, inner, prefix: str):
        self.inner, self.prefix = inner, prefix.strip("/")

    def key(self, artifact_id: str) -> str:
        return f"{self.prefix}/{artifact_id}" if self.prefix else artifact_id

    def open_reader(self, artifact_id: str):
        return self.inner.open_reader(self.key(artifact_id))

    def write(self, artifact_id: str, content_body) -> None:
        self.inner.write(self.key(artifact_id), content_body)

    def remove(self, artifact_id: str) -> None:
        self.inner.remove(self.key(artifact_id))


class FirstThatHasIt:
    """Reads an artifact from whichever of several stores holds it (artifact ids are unique):
    the dashboard of a storage whose studies recorded different stores. Writes go to the first."""

    def __init__(self, stores: list):
        self.stores = stores

    def open_reader(self, artifact_id: str):
        from optuna.artifacts.exceptions import ArtifactNotFound

        for store in self.stores:
            try:
                return store.open_reader(artifact_id)
            except ArtifactNotFound:
                continue
        raise ArtifactNotFound(f"artifact {artifact_id} is in none of the study stores")

    def write(self, artifact_id: str, content_body) -> None:
        self.stores[0].write(artifact_id, content_body)

    def remove(self, artifact_id: str) -> None:
        from optuna.artifacts.exceptions import ArtifactNotFound

        for store in self.stores:
            try:
                store.remove(artifact_id)
            except ArtifactNotFound:
                continue


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://BUCKET/PREFIX` -> (bucket, prefix); a ArtifactStoreError for anything else."""
    parts = urlsplit(url)
    if parts.scheme != "s3" or not parts.netloc or parts.query or parts.fragment or "@" in parts.netloc:
        raise ArtifactStoreError(f"--artifacts {url!r}: expected a folder path or s3://BUCKET/PREFIX "
                                 "(credentials come from the AWS environment, never from the URL)")
    return parts.netloc, parts.path.strip("/")


def normalize_url(url: str) -> str:
    """The form recorded on a study: an absolute folder path, or `s3://BUCKET/PREFIX` without a trailing slash."""
    if url.startswith(S3_SCHEME):
        bucket, prefix = split_s3_url(url)
        return f"{S3_SCHEME}{bucket}/{prefix}" if prefix else f"{S3_SCHEME}{bucket}"
    if "://" in url:
        raise ArtifactStoreError(f"--artifacts {url!r}: expected a folder path or s3://BUCKET/PREFIX")
    return str(Path(url).expanduser().resolve())


def open_store(url: str):
    """The artifact store a normalised URL names (nothing is read or written yet)."""
    if url.startswith(S3_SCHEME):
        bucket, prefix = split_s3_url(url)
        try:
            import boto3
        except ImportError:
            raise ArtifactStoreError(f"--artifacts {url}: S3 needs boto3 (pip install -e '.[s3]')") from None
        from optuna.artifacts import Boto3ArtifactStore

        return PrefixedStore(Boto3ArtifactStore(bucket, client=boto3.client("s3")), prefix)
    from optuna.artifacts import FileSystemArtifactStore

    folder = Path(url)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ArtifactStoreError(f"--artifacts {url}: cannot create the folder ({error.strerror})") from None
    return FileSystemArtifactStore(str(folder))


def check_store(store, url: str) -> None:
    """Write, read back and remove a small probe object; an ArtifactStoreError naming `url` and
    the cause when any of it fails (no bucket, no credentials, no permission, no endpoint)."""
    probe = f"study-probe-{uuid.uuid4().hex}"
    payload = b"study artifact store probe"
    try:
        store.write(probe, io.BytesIO(payload))
        with store.open_reader(probe) as reader:
            if reader.read() != payload:
                raise ArtifactStoreError(f"--artifacts {url}: a probe object read back differs from what was written")
        store.remove(probe)
    except ArtifactStoreError:
        raise
    except Exception as error:  # boto3, botocore and the file system raise many kinds
        raise ArtifactStoreError(f"--artifacts {url}: cannot use the store ({store_error_reason(error)})") from None


def store_error_reason(error: BaseException) -> str:
    """A one-line cause of a store failure, without anything secret (boto3 messages name no key)."""
    name = type(error).__name__
    code = getattr(error, "response", {}).get("Error", {}).get("Code") if hasattr(error, "response") else None
    if name == "NoCredentialsError":
        return "no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the AWS config files"
    if name in ("EndpointConnectionError", "ConnectTimeoutError", "ConnectionClosedError"):
        return f"cannot reach the endpoint: {str(error).splitlines()[0]}"
    if code == "NoSuchBucket":
        return "no such bucket"
    if code in ("AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
        return f"access denied ({code}): check the credentials and the bucket's permissions"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error).splitlines()[0] if str(error) else name
    return f"{name}: {text}"[:300]
