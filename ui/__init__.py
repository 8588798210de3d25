"""The page, one module per tab: each builds its components and wires their events to the services in ``explorer``;
nothing else (the logic lives in ``explorer/``, tested without a server)."""
