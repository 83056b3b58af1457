"""The S3 object store (any S3: SeaweedFS, MinIO, AWS) through the minio SDK."""

import contextlib
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

from spectare.core.config import S3Settings
from spectare.core.errors import ConfigError, NotFoundError, UnreachableError

log = logging.getLogger(__name__)


def s3_client(settings: S3Settings, timeout_s: float = 10.0, retries: int = 1) -> Minio:
    """A minio client with bounded timeouts: an S3 outage fails a call, it never hangs a service."""
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=min(timeout_s, 3.0), read=timeout_s),
        maxsize=16,
        retries=urllib3.Retry(total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        settings.endpoint,
        access_key=settings.access_key or None,
        secret_key=settings.secret_key.get_secret_value() or None,
        secure=settings.secure,
        region=settings.region,
        http_client=http,
    )


def endpoint_url(settings: S3Settings) -> str:
    return f"{'https' if settings.secure else 'http'}://{settings.endpoint}"


@contextlib.contextmanager
def s3_errors(settings: S3Settings, doing: str) -> Iterator[None]:
    """Turn S3 failures into one clear SpectareError naming the endpoint."""
    where = f"S3 at {endpoint_url(settings)}"
    try:
        yield
    except S3Error as exc:
        if exc.code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied"):
            raise ConfigError(f"{where} refused the credentials ({exc.code}); check s3.access_key/secret_key") from None
        if exc.code in ("NoSuchKey", "NoSuchBucket"):
            raise NotFoundError(f"{doing}: {exc.code} in bucket {settings.bucket}") from None
        raise UnreachableError(f"{where}: {doing}: {exc.code}: {exc.message}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        host = urlsplit(endpoint_url(settings)).netloc
        raise UnreachableError(f"{where} is unreachable ({host}): {reason}") from None


def ensure_bucket(settings: S3Settings, client: Minio | None = None) -> None:
    """Create the footage bucket if missing; raise UnreachableError / ConfigError with one clear line."""
    client = client or s3_client(settings, timeout_s=5.0, retries=0)
    with s3_errors(settings, f"preparing bucket {settings.bucket}"):
        if not client.bucket_exists(settings.bucket):
            client.make_bucket(settings.bucket)
            log.info("created bucket %s on S3 at %s", settings.bucket, endpoint_url(settings))
