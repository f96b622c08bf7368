# The bridge image: `docker build -t bridge .` from the repository root (docs/operations.md).
# Runs `bridge run -c /etc/bridge/bridge.yaml` as user 10001; any other subcommand works too:
#   docker run --rm -v "$PWD/bridge.yaml:/etc/bridge/bridge.yaml:ro" -p 9400:9400 bridge
#   docker run --rm -v "$PWD/replica.yaml:/etc/bridge/replica.yaml:ro" bridge replica -c /etc/bridge/replica.yaml

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

# --- builder: wheels for bridge and every dependency, installed into a virtualenv -------------
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
# Dependencies change less often than the code; hatchling reads the version from
# bridge/__init__.py and the long description from README.md, so those come along.
COPY pyproject.toml README.md ./
COPY bridge ./bridge

# confluent-kafka, uvloop and orjson ship manylinux wheels for amd64 and arm64, so the builder
# needs no compiler; a dependency without a wheel would fail the build here, not at run time.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip wheel --wheel-dir /wheels --only-binary=confluent-kafka,uvloop,orjson . \
    && /opt/venv/bin/pip install --no-index --find-links /wheels bridge-streams \
    && /opt/venv/bin/python -c "import bridge.cli, confluent_kafka, uvloop, orjson" \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# --- runtime: the virtualenv on a clean base; no compiler, no wheels, no sources --------------
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="bridge" \
      org.opencontainers.image.description="Read DynamoDB Streams with a cluster of workers and apply every change to Kafka, SQLite or your own processor." \
      org.opencontainers.image.source="https://github.com/bridge-streams/bridge" \
      org.opencontainers.image.licenses="Apache-2.0"

# The working directory is the writable data directory: relative paths in bridge.yaml (a SQLite
# file, a dead-letter file) land there, and the Helm chart mounts a volume on it because the
# root filesystem is read-only in the pod.
RUN groupadd --system --gid 10001 bridge \
    && useradd --system --uid 10001 --gid bridge --home-dir /var/lib/bridge --shell /usr/sbin/nologin bridge \
    && install --directory --owner bridge --group bridge --mode 0750 /var/lib/bridge /etc/bridge

COPY --from=builder /opt/venv /opt/venv

# Bytecode was compiled in the builder; a read-only root filesystem could not take new .pyc files.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

WORKDIR /var/lib/bridge
# Numeric, so Kubernetes can check runAsNonRoot without reading /etc/passwd.
USER 10001:10001

# metrics.port: /metrics, /healthz, /readyz.
EXPOSE 9400

# For plain Docker (Kubernetes ignores it and uses the chart's probes). Assumes the default
# metrics.port; a container running another subcommand (status, query) reports unhealthy.
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:9400/healthz', timeout=2).status != 200)"]

ENTRYPOINT ["bridge"]
CMD ["run", "-c", "/etc/bridge/bridge.yaml"]
