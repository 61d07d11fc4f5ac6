"""``python -m imgctl``: the same as the ``imgctl`` command."""

from imgctl.cli import main

main()
