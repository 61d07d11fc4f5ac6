"""Importing this before httpx keeps httpx's command-line client out of the process.

``import httpx`` imports ``httpx._main``, its command-line client, which imports click,
pygments and rich: about a sixth of the start-up of a registry command such as ``imgctl copy``
(measured by bench/copy.py's no-op). httpx handles that import failing by defining a stub
``main``; imgctl never runs httpx's command line, so the packages that use httpx
(``imgctl.authn``, ``imgctl.remote``) import this module first, which marks it missing.
Harmless once httpx is imported: the real module then stays.
"""

from __future__ import annotations

import sys

sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
