"""The app's own state and policy, kept out of ``googlenet`` and ``training`` and free of Gradio:
where GPU work runs (``gpu``), the runs a visitor can see and use (``runs``), the one training slot and
its typed events (``slot``), and the limits that keep a public server healthy (``limits``)."""
