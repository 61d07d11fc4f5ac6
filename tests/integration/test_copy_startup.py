"""What an ``imgctl copy`` process imports: the copy path only (issue 21 target 2, the no-op).

A no-op copy of 20 images costs imgctl about as much CPU in starting up as in copying, so its
start-up is part of the yardstick bench/copy.py measures against skopeo. The process runs
the console script's entry point against real registries and reports ``sys.modules``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

from ..conftest import PushedImage
from ..support.registry import Registry

# The console script's entry point, as installed; prints what it imported on stderr last.
_PROBE = """
import json, sys
from imgctl.cli import main
sys.argv[0] = "imgctl"
try:
    main()
except SystemExit as exit:
    code = exit.code
sys.stdout.flush()
print(json.dumps({"code": code, "modules": sorted(sys.modules)}), file=sys.stderr)
"""

# Never needed to copy between registries that ask for no cloud credentials: httpx's own
# command line (click, pygments, rich) and PyYAML (read only for an Azure config file).
DENIED = ("click", "pygments", "rich", "yaml")


def _copy(*args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, "copy", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    report = json.loads(result.stderr.splitlines()[-1])
    assert report["code"] in (0, None), result.stderr
    return result, set(report["modules"])


def test_copy_and_its_no_op_import_no_cli_of_httpx_and_no_yaml(
    registry: Registry,
    registry2: Registry,
    push_image: Callable[..., PushedImage],
    repo: Callable[[str], str],
) -> None:
    image = push_image(registry, layers=1, layer_size=1000)
    destination = f"{registry2.host}/{repo('dst')}:v1"
    for status in ("copied", "unchanged"):
        result, modules = _copy(image.ref, destination)
        assert result.stdout.split()[0] == status
        # The copy path really ran in this process.
        assert {"httpx", "imgctl.remote._copy", "imgctl.authn"} <= modules
        assert sorted(m for m in modules if m.split(".")[0] in DENIED) == []
