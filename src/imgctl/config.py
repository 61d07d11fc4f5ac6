"""Settings: one precedence for all of them, flag > environment > config file > built-in.

:func:`setting` is that order, written once. Each variable has one owner that reads it from the
injected ``environ``: the server's flags and files are resolved by
``imgctl.server.app.ServerSettings.resolve``, the user config file's path by
``imgctl.remote.config.default_config_path``, the database URL by ``imgctl.store.database_url``;
each package reads its own variables (``OIDC_*`` in ``identity.verifier``,
``IMGCTL_REGISTRY_<NAME>`` in ``promotion.environments``...). The client's commands let Typer
read a flag or its variable, then fill what is still unset from the ``[client]`` table of the
user config file and the defaults baked in at build time (``imgctl.cli._settings``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeVar

from imgctl.errors import ConfigurationError, ImgctlError

__all__ = ["Problems", "setting"]

_T = TypeVar("_T")


def setting(
    flag: _T | None,
    variable: str | None,
    environ: Mapping[str, str],
    *,
    parse: Callable[[str], _T],
    file: _T | None = None,
    default: _T | None = None,
) -> _T | None:
    """The first that is set: ``flag``, ``variable`` (parsed), ``file``, ``default``.

    ``variable`` names an environment variable, ``file`` is the config file's value. A
    variable set to the empty string counts as unset, as Typer counts it for flags.
    """
    if flag is not None:
        return flag
    if variable is not None:
        raw = environ.get(variable)
        if raw:
            return parse(raw)
    if file is not None:
        return file
    return default


class Problems:
    """A configuration's problems, collected check after check and raised together.

    A daemon runs every check of its configuration through :meth:`check` before it opens a
    database or a socket: a user fixing a deployment sees every variable to fix in one run.
    """

    def __init__(self) -> None:
        self.found: list[ImgctlError] = []

    def check(self, step: Callable[[], _T]) -> _T | None:
        """``step()``, or None with its error recorded (every problem of a ConfigurationError)."""
        try:
            return step()
        except ImgctlError as error:
            self.add(error)
            return None

    def add(self, error: ImgctlError) -> None:
        """Record ``error`` (each problem of a ConfigurationError)."""
        if isinstance(error, ConfigurationError):
            self.found.extend(error.problems)
        else:
            self.found.append(error)

    def raise_any(self, *, see: str | None = None) -> None:
        """Raise what was found: the one error as it was, several as one ConfigurationError."""
        if len(self.found) == 1:
            raise self.found[0]
        if self.found:
            raise ConfigurationError(self.found, see=see)
