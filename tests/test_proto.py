"""The committed gRPC code matches proto/: regenerating it changes nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ("imgctl_pb2.py", "imgctl_pb2.pyi", "imgctl_pb2_grpc.py")


def test_generated_code_is_current(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'proto'}",
            f"--python_out={tmp_path}",
            f"--pyi_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(ROOT / "proto" / "imgctl" / "v1" / "imgctl.proto"),
        ],
        check=True,
        capture_output=True,
    )
    for name in GENERATED:
        fresh = (tmp_path / "imgctl" / "v1" / name).read_text()
        committed = (ROOT / "src" / "imgctl" / "v1" / name).read_text()
        assert committed == fresh, (
            f"src/imgctl/v1/{name} is stale: regenerate it (see src/imgctl/v1/__init__.py)"
        )
