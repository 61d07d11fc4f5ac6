"""The ``Environment:`` section of a daemon's ``--help``: the variables it reads, required marked.

``imgctl server`` is configured mostly by environment variables (docs/server.md); its help page
lists them after the options, as kubectl, Dex and many daemons do. The table is plain data, the
class a :class:`~imgctl.cli._help.PanelCommand`: ``--help`` stays as fast as before.
"""

from __future__ import annotations

from typing import ClassVar, Final

from typer import _click

from imgctl.cli._help import PanelCommand

__all__ = ["SERVER_ENVIRONMENT", "ServerCommand"]

# (variable, what it is); "(required)" first where the server does not start without it.
SERVER_ENVIRONMENT: Final[tuple[tuple[str, str], ...]] = (
    ("OIDC_ISSUER_URL", "(required) The OIDC issuer: https://dex.example.com"),
    ("OIDC_AUDIENCE", "(required) The audience tokens must carry: this server's URL"),
    (
        "IMGCTL_REGISTRY_<NAME>",
        "(required, one or more) The registry of environment NAME: host[:port][/prefix]",
    ),
    ("IMGCTL_SPA_<NAME>", "The S3 bucket suffix of environment NAME (SPA promotions)"),
    ("OIDC_ALLOWED_GROUPS", "Groups allowed to promote, comma-separated ('*': any caller)"),
    ("OIDC_GROUPS_CLAIM", "The token claim holding the groups (default: groups)"),
    ("OIDC_LEEWAY", "Seconds of clock skew allowed on tokens (default: 30)"),
    ("IMGCTL_DEFAULT_SOURCE", "The source environment when a request names none"),
    ("IMGCTL_DATABASE_URL", "postgresql://... or sqlite:////path (default: SQLite file)"),
    ("IMGCTL_STATE_DIR", "Where the default SQLite file lives"),
    ("IMGCTL_PROMOTION_LEASE", "Seconds a replica holds a promotion (default: 60)"),
    ("IMGCTL_SLACK_WEBHOOK_URL", "Post each promotion to this Slack webhook"),
    ("IMGCTL_PIPELINE", "The environments' order on the web pages: dev,int,prod"),
    ("IMGCTL_LOG_LEVEL", "debug, info (default) or warning; debug shows migrations"),
)


class ServerCommand(PanelCommand):
    """``imgctl server``'s command: its help lists the environment after the options."""

    environment: ClassVar[tuple[tuple[str, str], ...]] = SERVER_ENVIRONMENT

    def format_epilog(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The ``Environment:`` section, then the epilog (if any)."""
        with formatter.section("Environment"):
            formatter.write_dl(list(self.environment))
        super().format_epilog(ctx, formatter)
