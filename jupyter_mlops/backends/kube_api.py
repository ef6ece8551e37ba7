"""The one way the control plane's Kubernetes backends (jobs, model servers) reach the API."""
from __future__ import annotations


async def api_client(kubeconfig: str = ""):
    """A ``kubernetes_asyncio`` ApiClient (the caller closes it).

    From ``kubeconfig`` when given; else the in-cluster ServiceAccount (the control plane's pod);
    else the default kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``), as on a workstation
    or in the tests against ``tests/kube_fake.py``.
    """
    # Imported on first use: processes with local backends never load the Kubernetes client.
    from kubernetes_asyncio import client, config

    if kubeconfig:
        await config.load_kube_config(config_file=kubeconfig)
    else:
        try:
            config.load_incluster_config()
        except config.ConfigException:
            await config.load_kube_config()
    return client.ApiClient()
