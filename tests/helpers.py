"""Helpers the tests share."""

import secrets
from pathlib import Path

from pydantic import SecretStr

from spectare.core.config import Settings, load_settings
from spectare.local.servers import NatsServer, SeaweedS3


def settings_for(nats: NatsServer, s3: SeaweedS3, state_dir: Path, **overrides) -> Settings:
    """Settings pointing at the test servers, with a fresh prefix so tests never share streams."""
    return load_settings(
        prefix=overrides.pop("prefix", "t" + secrets.token_hex(4)),
        state_dir=state_dir,
        nats={"url": nats.url},
        s3={"endpoint": s3.endpoint, "access_key": s3.credentials.access_key,
            "secret_key": SecretStr(s3.credentials.secret_key), "bucket": "b" + secrets.token_hex(6)},
        **overrides,
    )


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment that points a `spectare` subprocess at the same servers as `settings`."""
    return {
        "SPECTARE_PREFIX": settings.prefix,
        "SPECTARE_STATE_DIR": str(settings.state_dir),
        "SPECTARE_NATS__URL": settings.nats.url,
        "SPECTARE_S3__ENDPOINT": settings.s3.endpoint,
        "SPECTARE_S3__ACCESS_KEY": settings.s3.access_key,
        "SPECTARE_S3__SECRET_KEY": settings.s3.secret_key.get_secret_value(),
        "SPECTARE_S3__BUCKET": settings.s3.bucket,
    }
