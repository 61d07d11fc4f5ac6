"""Build hook: bake IMGCTL_BUILD_DEFAULT_* into the wheel (everything else is in pyproject.toml)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

KEYS = (
    "server",
    "source",
    "destination",
    "dex_url",
    "client_id",
    "client_secret",
    "audience",
    "tls",
)


class BuildWithDefaults(build_py):
    """build_py that writes imgctl/_build_defaults.json when IMGCTL_BUILD_DEFAULT_* are set."""

    def run(self) -> None:
        super().run()
        values = {
            key: os.environ[f"IMGCTL_BUILD_DEFAULT_{key.upper()}"]
            for key in KEYS
            if os.environ.get(f"IMGCTL_BUILD_DEFAULT_{key.upper()}")
        }
        target = Path(self.build_lib) / "imgctl" / "_build_defaults.json"
        if values:
            target.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")
        else:
            # build/ outlives a build: a wheel built without defaults must not inherit old ones.
            target.unlink(missing_ok=True)


setup(cmdclass={"build_py": BuildWithDefaults})
