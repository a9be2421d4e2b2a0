# One image running the main job (dashboard on 8501 + REST API on 8000 in one process).
# Its steps are the same make targets a developer runs, so `make setup` / `make run` exercise them.
FROM python:3.11-slim-bookworm

# PTSIM_HOST=0.0.0.0: the servers serve beyond the container, so start-up refuses without an admin
# token. Pass it at run time (docker run -e PTSIM_ADMIN_TOKEN=...); never bake one in here.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    PTSIM_HOST=0.0.0.0 \
    PTSIM_DB=/data/ptsim.duckdb

RUN apt-get update \
    && apt-get install -y --no-install-recommends make=4.3-4.1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 ptsim \
    && mkdir -p /app /data \
    && chown ptsim:ptsim /app /data

WORKDIR /app
USER 10001:10001

# Dependencies first (cached while only the code changes), runtime extras only.
COPY --chown=10001:10001 pyproject.toml uv.lock Makefile README.md ./
COPY --chown=10001:10001 engine ./engine
COPY --chown=10001:10001 api ./api
COPY --chown=10001:10001 workbench ./workbench
COPY --chown=10001:10001 streamlit_app.py ./
RUN make setup EXTRAS=

VOLUME ["/data"]
EXPOSE 8000 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD [".venv/bin/python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["make", "run"]
