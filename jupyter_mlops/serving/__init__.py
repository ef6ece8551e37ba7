"""The model server of jupyter-mlops deployments.

One process serves one MLflow pyfunc model over HTTP with MLflow's scoring protocol
(``/invocations``, ``/ping``, ``/health``, ``/version``) plus ``/metrics`` in Prometheus format.
Concurrent requests are gathered into micro-batches so the model runs once per batch.

Run as ``python -m jupyter_mlops.serving --model-uri URI --port PORT``. The platform runs it
with ``--socket-fd N`` instead: a unix socket it bound in a directory only it may enter, so
the server has no TCP port and answers only the control plane.
"""
