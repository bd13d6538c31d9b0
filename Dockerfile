# syntax=docker/dockerfile:1
#
# One image for both front ends (the command picks which), plus a `load` target with Locust.
#
#   docker build -t smslinks .                        # default target `app`
#   docker build --target load -t smslinks-load .     # `app` plus the `load` extra (locust)
#   docker run -e REDIS_URL=redis://host:6379/0 smslinks                         # redirector
#   docker run -e REDIS_URL=... -e ADMIN_API_KEYS=... smslinks smslinks-admin    # admin API
#
# Nothing secret is baked in: ADMIN_API_KEYS and REDIS_URL come from the environment at run time.
# No HEALTHCHECK here on purpose: docker-compose.yml owns the health checks, and GET /healthz is
# there for any other orchestrator.

# Every stage starts from the same image: the venv built in `builder` runs on that Python.
ARG PYTHON_IMAGE=python:3.11-slim

# ---- builder: a self-contained virtualenv at the same path the runtime uses ----------------
FROM ${PYTHON_IMAGE} AS builder

# pip compiles the installed modules to .pyc here, so the read-only runtime never needs to.
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The venv is copied whole into the runtime stages, so it must live at the same path there:
# its scripts' shebangs point at /opt/venv/bin/python.
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src
# Only what the wheel needs (.dockerignore keeps everything else out of the context).
COPY pyproject.toml README.md ./
COPY redirector ./redirector
COPY admin ./admin
# The smslinks command (an API client) comes along: `docker run ... smslinks smslinks --help`.
COPY smslinks_cli ./smslinks_cli
# A regular (not editable) install: pip builds the wheel and installs it with its deps, so the
# runtime needs neither the source tree nor the build backend.
RUN pip install .

# ---- builder-load: the same venv plus the `load` extra -------------------------------------
FROM builder AS builder-load
RUN pip install ".[load]"

# ---- runtime base: slim Python, an unprivileged user, nothing else -------------------------
FROM ${PYTHON_IMAGE} AS runtime

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PATH=/opt/venv/bin:$PATH

# A fixed uid/gid so volume permissions and `user:` overrides are predictable.
RUN groupadd --system --gid 10001 smslinks \
    && useradd --system --uid 10001 --gid smslinks --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin smslinks

WORKDIR /app

# ---- load: Locust next to the app, for the load-test services in docker-compose.yml --------
# loadtests/ is not baked in: compose mounts ./loadtests read-only, with the codes file in it.
FROM runtime AS load

COPY --from=builder-load /opt/venv /opt/venv
# `from loadtests import ...` in the locustfile resolves against the mounted /app/loadtests.
ENV PYTHONPATH=/app
USER smslinks
# 8089 web UI, 5557 master <-> worker.
EXPOSE 8089 5557
CMD ["locust", "-f", "loadtests/locustfile.py"]

# ---- app (default target, so it stays last): the redirector and the admin API -------------
FROM runtime AS app

COPY --from=builder /opt/venv /opt/venv
# In a container the servers must listen on every interface; the port is published by the
# runtime (compose binds it to 127.0.0.1 on the host).
ENV REDIRECTOR_HOST=0.0.0.0 \
    ADMIN_HOST=0.0.0.0
USER smslinks
# 8080 redirector, 8081 admin API.
EXPOSE 8080 8081
CMD ["smslinks-redirector"]
