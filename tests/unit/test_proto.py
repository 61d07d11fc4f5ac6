"""The committed gRPC code matches proto/: regenerating it changes nothing but version stamps."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ("imgctl_pb2.py", "imgctl_pb2.pyi", "imgctl_pb2_grpc.py")

# The generators write their own version into the code (grpcio-tools 1.85.4 stamps '1.85.4'
# where the committed code says '1.85.1'), so a fresh venv on a later day would see a
# difference that is not one. The stamps are the minimum runtime versions; pyproject.toml
# requires at least the committed ones.
_STAMPS = (
    re.compile(r"^(GRPC_GENERATED_VERSION = )'[^']*'$", re.MULTILINE),
    re.compile(r"^(# Protobuf Python Version: ).*$", re.MULTILINE),
    re.compile(
        r"(_runtime_version\.ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,)"
        r"\s*\d+,\s*\d+,\s*\d+,\s*'[^']*',"
    ),
)


def without_version_stamps(code: str) -> str:
    """The generated code with each generator's version stamp replaced by a placeholder."""
    for stamp in _STAMPS:
        code = stamp.sub(r"\1<version>", code)
    return code


def test_stamps_are_masked_and_nothing_else() -> None:
    grpc_code = "GRPC_GENERATED_VERSION = '1.85.4'\nGRPC_VERSION = grpc.__version__\n"
    pb2_code = (
        "# Protobuf Python Version: 7.35.1\n_runtime_version.ValidateProtobufRuntimeVersion(\n"
        "    _runtime_version.Domain.PUBLIC,\n    7,\n    35,\n    1,\n    '',\n    'x.proto'\n)\n"
    )
    assert without_version_stamps(grpc_code) == without_version_stamps(
        grpc_code.replace("1.85.4", "1.85.1")
    )
    assert without_version_stamps(pb2_code) == without_version_stamps(
        pb2_code.replace("7,\n    35,\n    1,", "8,\n    1,\n    0,").replace("7.35.1", "8.1.0")
    )
    # A change outside the stamps still shows.
    assert without_version_stamps(pb2_code) != without_version_stamps(
        pb2_code.replace("x.proto", "y.proto")
    )


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
        fresh = without_version_stamps((tmp_path / "imgctl" / "v1" / name).read_text())
        committed = without_version_stamps((ROOT / "src" / "imgctl" / "v1" / name).read_text())
        assert committed == fresh, (
            f"src/imgctl/v1/{name} is stale: regenerate it (see src/imgctl/v1/__init__.py)"
        )
