# syntax=docker/dockerfile:1
# The single-user image of hub_config/z2jh-values.yaml, also the image of training Jobs: a
# Jupyter Docker Stacks image plus the project's wheel (the server extension, the lab extension's
# sidebar, the %mlops magics, the job wrapper). Two variants from this one file:
#   CPU   (singleuser.image, KubeJobBackend.image):      BASE_IMAGE=quay.io/jupyter/scipy-notebook
#   CUDA  (GPU profiles, KubeJobBackend.gpu_image):     BASE_IMAGE=quay.io/jupyter/pytorch-notebook:cuda12-*
# Build them from the repository root after building the wheel into dist/ (docs/kubernetes.md,
# "Images"): docker buildx bake -f hub_config/images/docker-bake.json singleuser singleuser-cuda
# No image is built in this repository or its CI.
ARG BASE_IMAGE=quay.io/jupyter/scipy-notebook:2025-01-06
FROM ${BASE_IMAGE}

USER root
COPY dist/jupyter_mlops-*-py3-none-any.whl /tmp/wheels/
# The wheel does not ask for torch: the CUDA variant keeps the base image's CUDA build.
RUN python -m pip install --no-cache-dir /tmp/wheels/jupyter_mlops-*-py3-none-any.whl \
    && rm -rf /tmp/wheels \
    && fix-permissions "${CONDA_DIR}" \
    && fix-permissions "/home/${NB_USER}"
USER ${NB_UID}

# What the values and the backends start in these pods fails the build if it is missing:
# jupyterhub-singleuser (KubeSpawner's command) with the server and lab extensions enabled, and
# the job wrapper training Jobs run (python -m jupyter_mlops.backends.job_wrapper).
RUN command -v jupyterhub-singleuser \
    && jupyter server extension list 2>&1 | grep -q "jupyter_mlops.*enabled" \
    && jupyter labextension list 2>&1 | grep -q "jupyter-mlops" \
    && python -c "import jupyter_mlops.backends.job_wrapper, jupyter_mlops.magics, papermill"
