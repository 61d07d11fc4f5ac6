"""AWS sessions built from an injected environment, for every package that calls AWS (ECR, S3).

botocore reads ``os.environ`` itself; these helpers make a session see the mapping it was built
with instead, so a keychain or a sync built for an environment uses that environment. boto3 and
botocore are optional and slow to import: nothing here imports them before it is called.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from typing import Any

from imgctl.errors import CredentialError

__all__ = [
    "aws_endpoint",
    "aws_keys",
    "boto_error_text",
    "botocore_session",
    "quiet_botocore_wire_logs",
]


def aws_keys(environ: Mapping[str, str], *, hint: str = "set both or neither") -> dict[str, str]:
    """Static keys from the environment as boto3 Session arguments (empty when none are set).

    A key id without a secret (or the reverse) is a CredentialError carrying ``hint``.
    """
    key_id = environ.get("AWS_ACCESS_KEY_ID")
    secret = environ.get("AWS_SECRET_ACCESS_KEY")
    if not key_id and not secret:
        return {}
    if not key_id or not secret:
        missing = "AWS_SECRET_ACCESS_KEY" if key_id else "AWS_ACCESS_KEY_ID"
        present = "AWS_ACCESS_KEY_ID" if key_id else "AWS_SECRET_ACCESS_KEY"
        raise CredentialError(f"{present} is set but {missing} is not", hint=hint)
    keys = {"aws_access_key_id": key_id, "aws_secret_access_key": secret}
    token = environ.get("AWS_SESSION_TOKEN") or environ.get("AWS_SECURITY_TOKEN")
    if token:
        keys["aws_session_token"] = token
    return keys


def aws_endpoint(environ: Mapping[str, str], service: str) -> str | None:
    """The endpoint override botocore would take from the environment, read from ``environ``."""
    ignore = environ.get("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "")
    if ignore.strip().lower() == "true":
        return None
    specific = "AWS_ENDPOINT_URL_" + service.upper().replace("-", "_")
    return environ.get(specific) or environ.get("AWS_ENDPOINT_URL") or None


def botocore_session(environ: Mapping[str, str]) -> Any:
    """A botocore session whose environment-backed settings come from ``environ``.

    botocore reads ``os.environ`` itself; setting each session variable it knows (profile,
    config and credentials files, retries, FIPS, CA bundle...) from ``environ`` makes a keychain
    built for an environment see that environment. The rest of the chain (web identity,
    container and instance roles, SSO) is botocore's own and reads the process environment.
    """
    core: Any = importlib.import_module("botocore.session").Session()
    for logical_name, spec in core.session_var_map.items():
        env_names = spec[1]
        if isinstance(env_names, str):
            env_names = [env_names]
        for env_name in env_names or ():
            if env_name in environ:
                core.set_config_variable(logical_name, environ[env_name])
                break
    return core


def boto_error_text(exc: BaseException) -> str:
    """What a botocore error says; ClientError by its AWS error code and message."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error") or {}
        code = error.get("Code") or "error"
        message = str(error.get("Message") or "")[:300]
        return f"{code}: {message}" if message else str(code)
    return f"{type(exc).__name__}: {str(exc)[:300]}"


# botocore's wire-level DEBUG records carry secrets: response bodies (the ECR token) and signed
# request headers (the session token). Dropped at the source, so an application that turns on
# DEBUG for everything still never logs them.
_BOTOCORE_WIRE_LOGGERS = ("botocore.parsers", "botocore.endpoint", "botocore.auth")


def _drop_debug(record: logging.LogRecord) -> bool:
    return record.levelno > logging.DEBUG


def quiet_botocore_wire_logs() -> None:
    """Drop DEBUG records of botocore's wire loggers, which would show tokens and signatures."""
    for name in _BOTOCORE_WIRE_LOGGERS:
        logger = logging.getLogger(name)
        if _drop_debug not in logger.filters:
            logger.addFilter(_drop_debug)
