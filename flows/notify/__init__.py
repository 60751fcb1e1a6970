"""``boucle notify``: the process that takes alerts from the alert topic to people.

:mod:`~boucle.flows.notify.routing` decides who gets an alert and when (routes of the config,
recipients from the registry, quiet hours, digests); the :mod:`~boucle.flows.notify.ledger`
remembers every delivery on disk (what waits, what was delivered, what was dead-lettered);
:mod:`~boucle.flows.notify.render` writes the messages (Jinja2, the site's language);
:mod:`~boucle.flows.notify.notifier` sends what is due through the channels of
:mod:`boucle.sinks.notify`, with retries; :mod:`~boucle.flows.notify.consume` reads the topic.
"""
