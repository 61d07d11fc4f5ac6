"""imgctl: promote container images between environments with their digests unchanged.

The public API lives in the subpackages (``imgctl.oci``, ``imgctl.remote``); this module
stays tiny so that ``imgctl --help`` starts fast.
"""

# imgctl/_version.py is written by setuptools-scm when imgctl is built or installed (also
# editable) from the git tag: three constants, so reading it costs nothing, unlike
# importlib.metadata or setuptools_scm at start-up. A source tree that was never built or
# installed has none (docs/release.md).
try:
    from imgctl._version import __build_date__, __commit__, __version__
except ImportError:
    __version__ = "0.0.0+unknown"
    __commit__ = None
    __build_date__ = None

__all__ = ["__build_date__", "__commit__", "__version__"]
