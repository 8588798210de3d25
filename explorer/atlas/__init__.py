"""The channel atlas: what each channel of each branch has learned (the method itself is
``googlenet.featurevis``).

* ``store``: a precomputed atlas folder (its layout, reading it from a folder or the Hub, publishing it);
* ``build``: ``python -m explorer.atlas build``, which renders and indexes one;
* ``reference``: the reference pictures a channel's dataset examples come from, and their index;
* ``view``: one channel's view, from a precomputed atlas or rendered on demand and cached;
* ``grid``: every channel of a branch at a glance;
* ``service``: what the app's atlas endpoints compute.
"""
