"""``python -m wicbox_bridge``: the same as the ``wicbox`` command."""

from wicbox_bridge.cli import main

main()
