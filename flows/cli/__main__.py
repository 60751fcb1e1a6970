"""``python -m boucle.flows.cli`` runs the ``boucle`` command."""

from boucle.flows.cli.app import app

app()
