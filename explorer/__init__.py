"""The app's own state and policy, kept out of ``googlenet`` and ``training`` and free of Gradio: the server
profile (``profile``), the process and what each endpoint computes (``server``), where GPU work runs (``gpu``),
the runs a visitor can see and use (``runs``), the one training slot and its typed events (``slot``), and the
text and updates the page shows (``render``, ``stream``, ``views``, ``batching``)."""
