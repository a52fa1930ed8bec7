# streamtune ingestion: validates and cleans events.raw into events.valid, HTTP POST /events (HTTP port 8081).
# The build context is the repository root:
#   docker build -f deploy/docker/ingestion.Dockerfile -t streamtune/ingestion:dev .
ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: a virtual environment with the shared package and this service only.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv
COPY shared /src/shared
COPY services/ingestion /src/services/ingestion
RUN pip install /src/shared /src/services/ingestion

# Runtime stage: the virtual environment, no sources, no build tools, a non-root user.
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    STREAMTUNE_LOG_FORMAT=json \
    INGESTION_HTTP_PORT=8081
RUN groupadd --system --gid 10001 streamtune \
 && useradd --system --uid 10001 --gid streamtune --create-home --home-dir /home/streamtune \
      --shell /usr/sbin/nologin streamtune
COPY --from=build /opt/venv /opt/venv
# Numeric, so that Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
WORKDIR /home/streamtune
EXPOSE 8081
# Slim images have no curl; urlopen raises (exit 1) on a refused connection or a non-2xx answer.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INGESTION_HTTP_PORT', '8081'), timeout=3)"]
# Exec form, no shell in between: SIGTERM reaches python, which drains in-flight batches before it exits.
CMD ["python", "-m", "streamtune_ingestion"]
