# syntax=docker/dockerfile:1
# The hub image of hub_config/z2jh-values.yaml (hub.image): Zero-to-JupyterHub's own hub image
# plus the project's wheel, which brings the spawner (jupyter_mlops_spawner), the control plane,
# the MLflow gateway and MLflow (all run in the hub pod), and Postgres' driver.
# Build it from the repository root after building the wheel into dist/ (docs/kubernetes.md,
# "Images"): docker buildx bake -f hub_config/images/docker-bake.json hub
# No image is built in this repository or its CI.
ARG BASE_IMAGE=quay.io/jupyterhub/k8s-hub:4.2.0
FROM ${BASE_IMAGE}

USER root
COPY dist/jupyter_mlops-*-py3-none-any.whl /tmp/wheels/
RUN python -m pip install --no-cache-dir /tmp/wheels/jupyter_mlops-*-py3-none-any.whl \
        "psycopg2-binary>=2.9" \
    && rm -rf /tmp/wheels

# What the values run in the hub pod fails the build if it is missing: the spawner class and
# hub.extraConfig's configure_kubernetes, the services' commands (python -m
# jupyter_mlops.service, python -m jupyter_mlops.service.mlflow_gateway, mlflow server) and the
# chart's idle culler.
RUN python -c "import psycopg2, jupyter_mlops_spawner, jupyter_mlops.hub.kube" \
    && python -m jupyter_mlops.service --help > /dev/null \
    && python -m jupyter_mlops.service.mlflow_gateway --help > /dev/null \
    && command -v jupyterhub \
    && "$(dirname "$(command -v python)")/mlflow" server --help > /dev/null \
    && python -m jupyterhub_idle_culler --help > /dev/null

# The chart runs the hub as uid 1000 (hub.containerSecurityContext), as the base image does.
USER 1000
