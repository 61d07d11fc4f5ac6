"""The ``imgctl`` command tree: the root app, and every command group it loads when asked.

Each group lives in its own module with its Typer definitions (``_registry``: copy, digest,
manifest, ls; ``_append``; ``_identity``: token, auth, idp; ``_promote``: promote, auth-check;
``_sign``: sign, verify; ``_server``; ``_cip``; ``demo``; ``_completion``; ``_catalog``;
``_scan``; ``_registry_serve``). The root imports none of them: ``COMMANDS`` names each command, the
module that defines it and its one-line help (``imgctl --help`` needs only those), and a
command's module is imported when that command runs, completes or shows its help. A group
module imports only the CLI's own light modules; what a command needs (httpx, the registry
client, grpc, FastAPI, SQLAlchemy...) is imported when it runs, so ``--help`` is fast
(docs/performance.md "Start-up"). tests/unit/test_cli_help.py checks ``COMMANDS`` against
the modules. The order of ``COMMANDS`` is the order of ``imgctl --help``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Annotated, Any, Final, NamedTuple

import typer
from typer import _click
from typer.main import Typer, get_group_from_info
from typer.models import TyperInfo

from imgctl import __version__
from imgctl.cli._help import PanelGroup, format_commands, use_plain_help

if TYPE_CHECKING:
    from typer._click.shell_completion import CompletionItem

__all__ = ["COMMANDS", "Entry", "app", "load"]


class Entry(NamedTuple):
    """A command of the root: its name, the module and Typer app defining it, its summary."""

    name: str
    module: str  # under imgctl.cli
    attribute: str  # the typer.Typer in that module
    summary: str  # the first paragraph of its help: what imgctl --help shows


# Commands first, then the groups with subcommands (as --help lists them).
COMMANDS: Final = (
    Entry(
        "copy",
        "_registry",
        "app",
        "Copy images between registries, digests unchanged (all platforms of an index).",
    ),
    Entry("digest", "_registry", "app", "Print the digest of an image's manifest or index."),
    Entry("manifest", "_registry", "app", "Print a manifest exactly as the registry stores it."),
    Entry(
        "ls",
        "_registry",
        "app",
        "List the tags of a repository, or the repositories of a registry.",
    ),
    Entry(
        "append",
        "_append",
        "app",
        "Append tarball layers to a base image (or to nothing) and push it; print its digest.",
    ),
    Entry(
        "token",
        "_identity",
        "app",
        "Print only an OIDC token for the caller (for scripts), from the cache or the issuer.",
    ),
    Entry(
        "promote",
        "_promote",
        "app",
        "Promote an image (or SPA bundle) from one environment to another, through the server.",
    ),
    Entry(
        "auth-check",
        "_promote",
        "app",
        "Check your login with the server: who you are, your groups, where you may promote.",
    ),
    Entry(
        "sign",
        "_sign",
        "app",
        "Sign an image's digest, cosign-compatibly: a layer appended to its sha256-HEX.sig tag.",
    ),
    Entry(
        "verify",
        "_sign",
        "app",
        "Check every signature of an image's digest; say which verified and why others did not.",
    ),
    Entry(
        "attestations",
        "_attest",
        "app",
        "List an image's attestations by predicate type: verified or not, and why.",
    ),
    Entry(
        "attest",
        "_attest",
        "app",
        "Attest an image's digest: an in-toto statement in a DSSE envelope, appended to .att.",
    ),
    Entry(
        "generate-key-pair",
        "_keys",
        "app",
        "Generate a cosign key pair: an encrypted ECDSA P-256 private key and its public key.",
    ),
    Entry(
        "server",
        "_server",
        "app",
        "Run the promotion server (configured by OIDC_* and IMGCTL_* environment variables).",
    ),
    Entry(
        "cip",
        "_cip",
        "app",
        "Promote what kpromo manifests list (dry run unless --confirm), or write snapshots.",
    ),
    Entry(
        "demo",
        "demo",
        "app",
        "Run the whole product on loopback ports: registries, issuer, server, a promotion.",
    ),
    Entry(
        "completion",
        "_completion",
        "app",
        "Print a shell completion script: source <(imgctl completion bash).",
    ),
    Entry(
        "version",
        "_version",
        "app",
        "Print imgctl's version, git commit and build date, Python and platform; and the server's.",
    ),
    Entry(
        "auth",
        "_identity",
        "auth_app",
        "Who you are: registry credentials (explain) and your OIDC login.",
    ),
    Entry(
        "idp",
        "_identity",
        "idp_app",
        "The built-in OIDC issuer (Dex's SSH connector and token exchange).",
    ),
    Entry(
        "catalog",
        "_catalog",
        "app",
        "The catalog: which images were promoted where (imagelist-compatible API).",
    ),
    Entry(
        "audit",
        "_audit",
        "app",
        "The audit trail: every request the promotion server answered.",
    ),
    Entry(
        "scan",
        "_scan",
        "app",
        "Scan repositories for tags and apply tag policies (Flux semantics).",
    ),
    Entry(
        "registry",
        "_registry_login",  # login, logout; it imports _registry_serve's group (serve)
        "app",
        "Registry logins (docker's config.json), and an embedded OCI registry for tests.",
    ),
)


def load(entry: Entry) -> _click.Command:
    """Import the module of ``entry`` and build its command as the root would have (add_typer)."""
    module = importlib.import_module(f"imgctl.cli.{entry.module}")
    sub_app = getattr(module, entry.attribute)
    if not isinstance(sub_app, Typer):
        raise TypeError(f"imgctl.cli.{entry.module}.{entry.attribute} is not a typer.Typer")
    # What add_typer(sub_app) did: the root's settings; a named app is a group of the root, an
    # unnamed one lends its commands to the root.
    group = get_group_from_info(
        TyperInfo(use_plain_help(sub_app)),
        pretty_exceptions_short=app.pretty_exceptions_short,
        rich_markup_mode=app.rich_markup_mode,
        suggest_commands=app.suggest_commands,
    )
    if group.name:
        command: _click.Command | None = group if group.name == entry.name else None
    else:
        command = group.commands.get(entry.name)
    if command is None:
        raise LookupError(
            f"imgctl.cli.{entry.module}.{entry.attribute} has no command {entry.name}"
        )
    return command


class _Commands(MutableMapping[str, _click.Command]):
    """The root's commands: names from ``COMMANDS``, each built from its module when looked up."""

    def __init__(self) -> None:
        self._entries = {entry.name: entry for entry in COMMANDS}
        self._built: dict[str, _click.Command] = {}

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._built:
            self._built[name] = load(self._entries[name])  # KeyError: no such command
        return self._built[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._built[name] = command
        self._entries.setdefault(name, Entry(name, "", "", ""))

    def __delitem__(self, name: str) -> None:
        del self._entries[name]
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def summary(self, name: str) -> _click.Command | str:
        """The command if built, else its summary (all the root's help needs of it)."""
        if name in self._built or not self._entries[name].module:
            return self[name]
        return self._entries[name].summary


class Root(PanelGroup):
    """``imgctl``: a group whose commands are imported when one is used (see ``COMMANDS``)."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        lazy = _Commands()
        # Commands registered on the root app itself (typer built them) come after the table's.
        for name, command in self.commands.items():
            lazy[name] = command
        self.commands = lazy

    def format_commands(self, ctx: _click.Context, formatter: _click.HelpFormatter) -> None:
        """The commands of ``COMMANDS``, their summaries without importing their modules."""
        commands = self.commands
        assert isinstance(commands, _Commands)
        format_commands([(name, commands.summary(name)) for name in commands], formatter)

    def shell_complete(self, ctx: _click.Context, incomplete: str) -> list[CompletionItem]:
        """The commands starting with ``incomplete`` (and the root's options), none imported.

        click's own answer builds every matching command to read its short help: ``imgctl
        <TAB>`` imported every command module (0.3 s); the table's summaries say the same.
        """
        from typer._click.shell_completion import CompletionItem
        from typer._click.utils import make_default_short_help

        commands = self.commands
        assert isinstance(commands, _Commands)
        results = []
        for name in commands:
            if not name.startswith(incomplete):
                continue
            found = commands.summary(name)
            if isinstance(found, _click.Command):
                if found.hidden:
                    continue
                text = found.get_short_help_str()
            else:
                text = make_default_short_help(found)
            results.append(CompletionItem(name, help=text))
        results.extend(_click.Command.shell_complete(self, ctx, incomplete))
        return results

    def invoke(self, ctx: _click.Context) -> Any:
        """Run the command; a Ctrl-C it does not handle itself exits 130 with one line.

        click would print "Aborted!" and exit 1 (README "Exit codes": 130, as shells report).
        """
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            from imgctl.cli._exit import interrupted

            interrupted()


app = typer.Typer(
    name="imgctl",
    cls=Root,
    help="Promote container images between environments with their digests unchanged.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"imgctl {__version__}")
        raise typer.Exit()


def _verbose(value: bool) -> None:
    if value:
        from imgctl.cli._flags import show_http_trace

        show_http_trace()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Print the version (imgctl version: commit, build, server too).",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            "-v",
            callback=_verbose,
            help="Trace every registry request and answer on stderr (method, URL, status, "
            "time, headers; credentials and tokens redacted), for bug reports.",
        ),
    ] = False,
) -> None:
    """Promote container images between environments with their digests unchanged."""
