"""The hub side of the platform: hub configuration (``config``: ``MlopsHub`` traits and
``configure_hub(c)``), its Kubernetes variant (``kube``), login and role groups (``sso``,
``members``), the hub's JSON error pages (``error_pages``), the internal listeners' ports
(``ports``), and the ``jupyter-mlops`` command (``cli``) with the process tree it supervises
(``process_tree``) and the upgrade step it runs at start (``upgrade``)."""
