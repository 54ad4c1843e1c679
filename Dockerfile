# Slim production image: `tars serve` as a non-root user, from pinned, hash-checked dependencies.
# The base is pinned to a patch release; bump it (and `make lock`) deliberately.
FROM python:3.11.11-slim-bookworm AS build
WORKDIR /src
COPY requirements.lock ./
# Every dependency exactly as locked, each file checked against its hash.
RUN pip wheel --no-cache-dir --require-hashes --wheel-dir /wheels -r requirements.lock
COPY pyproject.toml README.md ./
COPY bot ./bot
COPY handlers ./handlers
COPY integrations ./integrations
COPY migrations ./migrations
COPY alembic.ini ./
# TARS itself, without resolving anything again.
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11.11-slim-bookworm
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PORT=3000
RUN useradd --create-home --uid 10001 tars
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels tars && rm -rf /wheels
USER tars
WORKDIR /home/tars
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s \
    CMD python -c "import os,urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"PORT\",\"3000\")}/readyz', timeout=4)"
# SIGTERM (docker stop, Kubernetes) drains in-flight posts within 10 s; docker stop's default 10 s wait is too
# short for a slow Slack answer, so run it with --stop-timeout 30 (the Kubernetes manifests give 30 s).
STOPSIGNAL SIGTERM
CMD ["tars", "serve"]
