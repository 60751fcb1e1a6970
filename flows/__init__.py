"""The dataflows, typed settings and the ``boucle`` CLI."""
