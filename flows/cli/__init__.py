"""The ``boucle`` command line: :mod:`.app` wires the commands, :mod:`.common` holds what they share."""
