# The pipeline image: `ksef-pipeline worker`, `topics`, `emulator` or any other command
# (docker-compose.yml runs it). Every Python package comes from requirements-runtime.lock,
# its sha256 checked (--require-hashes), as a prebuilt wheel (--only-binary): no compiler
# ever runs, and the final stage holds only the virtualenv, no pip cache, lock tooling or
# build backend. See docs/security.md, "Supply chain".
#
# Base image pinned by digest: python:3.11-slim (the multi-arch index of Python 3.11.16 on
# Debian trixie, pushed 2026-08-16). To move to a newer one:
#   docker buildx imagetools inspect python:3.11-slim      # "Digest:" line
#   (or: docker pull python:3.11-slim && docker inspect --format '{{index .RepoDigests 0}}' python:3.11-slim)
# write the new digest below, rebuild, and run the tests in the image before committing.
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
RUN python -m venv /opt/venv
# The pinned pip first (version and hashes from ops/lock-tools.lock), then the lock.
COPY ops/lib/pip-requirement ops/lib/pip-requirement
COPY ops/lock-tools.lock ops/lock-tools.lock
RUN sh ops/lib/pip-requirement > /tmp/pip-requirement.txt \
 && /opt/venv/bin/python -m pip install --require-hashes --no-deps --only-binary=:all: \
      -r /tmp/pip-requirement.txt
COPY requirements-runtime.lock ./
RUN /opt/venv/bin/python -m pip install --require-hashes --no-deps --only-binary=:all: \
      -r requirements-runtime.lock
# The project last (its code changes most often), built by the locked setuptools without
# an index; the build backend is then removed: nothing at run time needs it.
COPY pyproject.toml README.md ./
COPY pipeline pipeline
COPY topics topics
RUN /opt/venv/bin/python -m pip install --no-deps --no-build-isolation --no-index . \
 && /opt/venv/bin/python -m pip uninstall -y setuptools wheel \
 && /opt/venv/bin/python -m pip check

FROM ${PYTHON_IMAGE}
# A fixed, unprivileged uid/gid; /data is where the worker and the emulator keep state
# (a named volume mounted there starts out owned by this user).
RUN groupadd --system --gid 10001 ksef \
 && useradd --system --uid 10001 --gid ksef --home-dir /home/ksef --create-home \
      --shell /usr/sbin/nologin ksef \
 && install -d -o ksef -g ksef -m 0750 /data
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
USER 10001:10001
WORKDIR /home/ksef
ENTRYPOINT ["ksef-pipeline"]
CMD ["--help"]
