"""Extract the real kubernetes/k8s.io promoter trees the tests load, from a git copy of k8s.io.

    python tests/data/k8s_io_trees.py --git-dir /path/to/k8s.io/.git     # writes tests/data/k8s.io
    python tests/data/k8s_io_trees.py --git-dir ... --out DIR             # anywhere else

Any clone or mirror of https://github.com/kubernetes/k8s.io (or a fork) that holds the commits in
TREES works; git itself checks every file against the commit, so the result is byte for byte
what kpromo reads at that commit. Only the files kpromo reads are written:
``images/<x>/images.yaml`` and ``manifests/<x>/promoter-manifest.yaml`` (OWNERS, READMEs, scripts
and the Go test beside them are left out). See tests/data/README.md.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

# (commit, folder): kpromo's own test of real data (promo-tools promoter/image/schema/
# manifest_test.go, TestParseThinManifestsFromDirPostsubmit) reads k8s.gcr.io at 86b8f390; the
# registry.k8s.io tree of 576d58a4 (2024-06-06) is the one the outside run measured.
TREES = (
    ("86b8f390aac2e6c244868143ea03c8326c9064a0", "k8s.gcr.io"),
    ("576d58a4e8553ac4ae81f3dcde680ed5ff4ebc3b", "registry.k8s.io"),
)

_READ_BY_KPROMO = re.compile(r"(images/[^/]+/images\.yaml|manifests/[^/]+/promoter-manifest\.yaml)")


def _git(git_dir: Path, *args: str) -> bytes:
    return subprocess.run(
        ["git", f"--git-dir={git_dir}", *args], check=True, capture_output=True
    ).stdout


def extract(git_dir: Path, out: Path) -> int:
    """Write every tree of TREES under ``out/<commit>/<folder>``; return the number of files."""
    written = 0
    for commit, folder in TREES:
        listing = _git(git_dir, "ls-tree", "-r", "-z", commit, "--", f"{folder}/").split(b"\0")
        for row in filter(None, listing):
            meta, _, name = row.decode().partition("\t")
            _mode, kind, blob = meta.split()
            inside = name.removeprefix(f"{folder}/")
            if kind != "blob" or not _READ_BY_KPROMO.fullmatch(inside):
                continue
            target = out / commit / folder / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_git(git_dir, "cat-file", "blob", blob))
            written += 1
    return written


def main(argv: list[str] | None = None) -> int:
    """Extract the trees; exit 1 when the git directory lacks a commit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--git-dir", type=Path, required=True, help="a git copy of k8s.io")
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "k8s.io", help="where to write"
    )
    args = parser.parse_args(argv)
    for commit, _ in TREES:
        try:
            _git(args.git_dir, "cat-file", "-e", f"{commit}^{{commit}}")
        except subprocess.CalledProcessError:
            print(f"k8s_io_trees: {args.git_dir} has no commit {commit}", file=sys.stderr)
            return 1
    count = extract(args.git_dir, args.out)
    print(f"wrote {count} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
