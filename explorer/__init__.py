"""The app's own state and policy, free of Gradio (``ui/`` wires it to the pages), one room per idea:

* the process: ``profile`` (the server profile: every setting, and the limits on a run), ``state`` (the
  process-wide objects, made once), ``gpu`` (where GPU work runs: ZeroGPU's workers or here) and ``durations``
  (what each GPU call declares to ZeroGPU);
* policy: ``admission`` (who a visitor is, and the fair-use admission of expensive jobs), ``errors`` (the app's
  errors and what a visitor is told), ``params`` (endpoint arguments checked), ``concurrency`` (background
  threads, streamed progress, one computation per key), ``caches`` (answers and fingerprints in memory);
* runs: ``runs`` (run folders, the model catalogue, retention, zips) and ``slot`` (the one training slot);
* services, one per page: ``classify``, ``explain`` (the "Why?" page), ``inside`` (feature maps), ``atlas`` (the
  channel atlas: a package), ``finetune`` (starting and watching a run), ``results`` (a finished run's report,
  drift, comparison and zip), ``hub`` (pushing a run) and ``architecture`` (Table 1);
* ``links``: the pages' deep links; ``render``: the text the pages show.
"""
