# streamtune anonymizer: redacts PII from events.valid into events.clean and writes dataset shards (HTTP port 8082).
# The build context is the repository root:
#   docker build -f deploy/docker/anonymizer.Dockerfile -t streamtune/anonymizer:dev .
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: a virtual environment with torch (the PII model), the shared package and this service only.
FROM ${PYTHON_IMAGE} AS build
# TORCH_VERSION must satisfy the torch pin in services/anonymizer/pyproject.toml.
ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
# torch first and from its own index, so that the service's pin finds it installed (CPU wheels).
RUN python -m venv /opt/venv \
 && pip install "torch==${TORCH_VERSION}" --index-url "${TORCH_INDEX_URL}"
COPY shared /src/shared
COPY services/anonymizer /src/services/anonymizer
RUN pip install /src/shared /src/services/anonymizer

# Runtime stage: the virtual environment, no sources, no build tools, a non-root user.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMTUNE_LOG_FORMAT=json \
    ANONYMIZER_HTTP_PORT=8082
RUN groupadd --system --gid 10001 streamtune \
 && useradd --system --uid 10001 --gid streamtune --create-home --home-dir /home/streamtune \
      --shell /usr/sbin/nologin streamtune
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /home/streamtune
EXPOSE 8082
# Slim images have no curl; urlopen raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('ANONYMIZER_HTTP_PORT', '8082'), timeout=3)"]
# Exec form, no shell in between: SIGTERM reaches python, which drains in-flight batches before it exits.
CMD ["python", "-m", "streamtune_anonymizer"]
