"""The page, one module per tab: each builds its components and wires their events to ``explorer.server``;
nothing else (the logic lives in ``explorer/``, tested without a server)."""
