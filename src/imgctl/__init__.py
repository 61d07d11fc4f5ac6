"""imgctl: promote container images between environments with their digests unchanged.

The public API lives in the subpackages (``imgctl.oci``, ``imgctl.remote``); this module
stays tiny so that ``imgctl --help`` starts fast.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
