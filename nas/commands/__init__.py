"""Sub-commands of the ``nas`` CLI (see ``nas.cli``)."""
