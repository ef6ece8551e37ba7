# syntax=docker/dockerfile:1
# The model-server image of hub_config/z2jh-values.yaml (KubeDeployBackend.image): Python, the
# project's wheel (python -m jupyter_mlops.serving, MLflow) and the libraries of the models it
# serves (MODEL_PACKAGES, e.g. "torch==2.13.0 scikit-learn" for the cell detector; a CUDA
# BASE_IMAGE for GPU servers). The Deployment runs it as uid 1000 with a read-only root
# filesystem and /tmp as its one writable volume.
# Build it from the repository root after building the wheel into dist/ (docs/kubernetes.md,
# "Images"): docker buildx bake -f hub_config/images/docker-bake.json model-server
# No image is built in this repository or its CI.
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}
ARG MODEL_PACKAGES=""

COPY dist/jupyter_mlops-*-py3-none-any.whl /tmp/wheels/
RUN python -m pip install --no-cache-dir /tmp/wheels/jupyter_mlops-*-py3-none-any.whl \
        ${MODEL_PACKAGES} \
    && rm -rf /tmp/wheels \
    && useradd --uid 1000 --no-create-home --home-dir /tmp --shell /usr/sbin/nologin model

# The Deployment's command fails the build if it is missing.
RUN python -m jupyter_mlops.serving --help > /dev/null

ENV HOME=/tmp MLFLOW_DISABLE_TELEMETRY=true PYTHONUNBUFFERED=1
USER 1000
EXPOSE 8080
CMD ["python", "-m", "jupyter_mlops.serving", "--host=0.0.0.0", "--port=8080"]
