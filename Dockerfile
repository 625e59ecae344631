# One image per function, from one file: `docker build --target <function> .`
# Targets: each function's `target` in functions.yaml (gateway, orchestrator, calculator, search,
# data_processor, tavily, ...), interactive (the agentorch client), fakes (the `test` profile's
# fake Anthropic and Bedrock). The agents' stages and the core stage's list of requirements are
# written from functions.yaml by `make manifest`, between the marker lines.
#
# Layers, from the least to the most often changed, so a one-line change in a function rebuilds
# only its last layer: base -> the dependencies every function shares (one layer, shared by all
# images) -> the function's own dependencies -> shared/ -> the function.
# Versions come from the functions' generated requirements.txt files: exact pins of the whole
# closure, resolved from constraints.txt, so an image built next month holds the same versions.
#
# Each function's command is `python -m shared.serve` (shared/serve.py): functions-framework's
# server, without its Flask, as one process (WORKERS=1: Cloud Run, Knative and Lambda scale
# instances, and that is the fastest cold start); with WORKERS > 1 (Compose sets 2) it hands over
# to functions-framework's gunicorn and its workers.
#
# Where no registry is reachable: --build-arg BASE_IMAGE=$(docker/base-image.sh)
ARG BASE_IMAGE=python:3.11-slim
# The function the `lambda` stage (at the end) wraps: `--target lambda --build-arg FUNCTION=...`.
ARG FUNCTION=calculator

FROM ${BASE_IMAGE} AS base
# Every image built here carries it, old untagged builds too: `make docker-clean` finds them by it.
LABEL io.agentorch.project=agent-orchestrator
ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app
# A venv: the same layout on the official image and on a Debian-based stand-in; no pip inside
# (the base image's pip installs into it), so the images carry one copy of pip, not two.
RUN python -m venv --without-pip /opt/venv \
 && useradd --system --uid 10001 --user-group --no-create-home --home-dir /app \
      --shell /usr/sbin/nologin app
WORKDIR /app

# What every function needs (shared/'s imports): the lines all functions' pinned requirements
# have in common. One layer, identical in every image, so the images share it on disk.
FROM base AS core
# >>> functions.yaml: core-requirements (make manifest writes this part; do not edit it)
COPY functions/gateway/requirements.txt /tmp/req/gateway.txt
COPY functions/orchestrator/requirements.txt /tmp/req/orchestrator.txt
COPY functions/agents/calculator/requirements.txt /tmp/req/calculator.txt
COPY functions/agents/search/requirements.txt /tmp/req/search.txt
COPY functions/agents/data_processor/requirements.txt /tmp/req/data_processor.txt
COPY functions/agents/tavily/requirements.txt /tmp/req/tavily.txt
# <<< functions.yaml: core-requirements
RUN cat /tmp/req/*.txt | sed -e 's/ *#.*//' -e '/^$/d' | sort | uniq -c \
      | awk -v n="$(ls /tmp/req | wc -l)" '$1 == n' | sed 's/^ *[0-9]* //' > /tmp/core.txt \
 && test -s /tmp/core.txt \
 && pip --python /opt/venv/bin/python install --no-compile -r /tmp/core.txt \
 && python -m compileall -q -j 0 /opt/venv/lib \
 && rm -rf /tmp/req /tmp/core.txt
# gunicorn (>= 25.1) opens a control socket at start, by default in $HOME/.gunicorn: /app is
# not writable by the app user (nor at all on the production override's read-only root), and
# the failure was logged as a plain-text error line among the JSON ones. $XDG_RUNTIME_DIR is
# where gunicorn looks first: /tmp is writable here and a tmpfs in production.
ENV XDG_RUNTIME_DIR=/tmp
# Health without curl (the slim image has none): exit 0 when /health answers 2xx.
COPY docker/healthcheck.sh /usr/local/bin/healthcheck
HEALTHCHECK --interval=2s --timeout=2s --start-period=10s --retries=3 CMD ["healthcheck"]

# ---- one stage per function: its own dependencies, then shared/, then the function --------

FROM core AS gateway
COPY functions/gateway/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY config/gateway.yaml config/gateway.yaml
COPY shared/ shared/
COPY functions/gateway/ functions/gateway/
# /var/log/agentorch: where Compose mounts the gateway's log volume (LOG_FILE); owned by app,
# so a new named volume is too (Docker copies the folder's owner into it), even on a read-only root.
RUN python -m compileall -q shared functions \
 && mkdir -p /var/log/agentorch && chown app:app /var/log/agentorch
USER app
ENV PORT=8585 WORKERS=1
EXPOSE 8585
CMD ["python", "-m", "shared.serve", "--source", "functions/gateway/main.py", "--target", "gateway"]

# >>> functions.yaml: agent-stages (make manifest writes this part; do not edit it)
FROM core AS calculator
COPY functions/agents/calculator/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY functions/agents/__init__.py functions/agents/__init__.py
COPY shared/ shared/
COPY functions/agents/calculator/ functions/agents/calculator/
RUN python -m compileall -q shared functions
USER app
ENV PORT=8080 WORKERS=1
EXPOSE 8080
CMD ["python", "-m", "shared.serve", "--source", "functions/agents/calculator/main.py", "--target", "calculator"]

FROM core AS search
COPY functions/agents/search/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY functions/agents/__init__.py functions/agents/__init__.py
COPY config/search.yaml config/search.yaml
COPY config/knowledge/ config/knowledge/
COPY shared/ shared/
COPY functions/agents/search/ functions/agents/search/
RUN python -m compileall -q shared functions
USER app
ENV PORT=8080 WORKERS=1
EXPOSE 8080
CMD ["python", "-m", "shared.serve", "--source", "functions/agents/search/main.py", "--target", "search"]

FROM core AS data_processor
COPY functions/agents/data_processor/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY functions/agents/__init__.py functions/agents/__init__.py
COPY shared/ shared/
COPY functions/agents/data_processor/ functions/agents/data_processor/
RUN python -m compileall -q shared functions
USER app
ENV PORT=8080 WORKERS=1
EXPOSE 8080
CMD ["python", "-m", "shared.serve", "--source", "functions/agents/data_processor/main.py", "--target", "data_processor"]

FROM core AS tavily
COPY functions/agents/tavily/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY functions/agents/__init__.py functions/agents/__init__.py
COPY shared/ shared/
COPY functions/agents/tavily/ functions/agents/tavily/
RUN python -m compileall -q shared functions
USER app
ENV PORT=8080 WORKERS=1
EXPOSE 8080
CMD ["python", "-m", "shared.serve", "--source", "functions/agents/tavily/main.py", "--target", "tavily"]
# <<< functions.yaml: agent-stages

FROM core AS orchestrator
COPY functions/orchestrator/requirements.txt /tmp/requirements.txt
RUN pip --python /opt/venv/bin/python install -r /tmp/requirements.txt && rm /tmp/requirements.txt
COPY functions/__init__.py functions/__init__.py
COPY config/orchestrator.yaml config/
# Its built-in agents: each agent of the manifest, at its Compose URL (docker-compose.yml).
COPY functions.yaml functions.yaml
COPY shared/ shared/
COPY functions/orchestrator/ functions/orchestrator/
RUN python -m compileall -q shared functions
USER app
ENV PORT=8080 WORKERS=1
EXPOSE 8080
CMD ["python", "-m", "shared.serve", "--source", "functions/orchestrator/main.py", "--target", "orchestrator"]

# ---- the interactive test client: `agentorch ask` against the orchestrator ----------------
# Also where the `test` profile's smoke checks run, on the stack's network (docker-smoke.sh).
FROM core AS interactive
COPY constraints.txt /tmp/constraints.txt
RUN pip --python /opt/venv/bin/python install -c /tmp/constraints.txt httpx rich prompt_toolkit \
 && rm /tmp/constraints.txt
COPY shared/ shared/
COPY emulator/ emulator/
COPY docker/wait-for-it.sh docker/entrypoint-interactive.sh /usr/local/bin/
COPY docker/smoke.py docker/smoke.py
RUN python -m compileall -q shared emulator \
 && printf '#!/bin/sh\nexec python -m emulator.cli "$@"\n' > /usr/local/bin/agentorch \
 && chmod 755 /usr/local/bin/agentorch
USER app
# /app is read-only to the app user: the prompt keeps its history under /tmp instead.
ENV ORCHESTRATOR_URL=http://orchestrator:8080 XDG_STATE_HOME=/tmp/state
HEALTHCHECK NONE
ENTRYPOINT ["entrypoint-interactive.sh"]
CMD ["ask"]

# ---- the `test` profile's fakes: the fake Anthropic API and moto's Bedrock ----------------
FROM core AS fakes
COPY constraints.txt /tmp/constraints.txt
RUN pip --python /opt/venv/bin/python install -c /tmp/constraints.txt pytest 'moto[server]' \
 && rm /tmp/constraints.txt
COPY tests/__init__.py tests/__init__.py
COPY tests/fakes/ tests/fakes/
COPY docker/fakes.py docker/fakes.py
USER app
HEALTHCHECK NONE
ENTRYPOINT ["python", "docker/fakes.py"]
CMD ["anthropic", "--port", "8090"]

# ---- any function as an AWS Lambda container image -----------------------------------------
# docker build --target lambda --build-arg FUNCTION=<target> -t agentorch/<target>-lambda .
# The function's own image, plus AWS's runtime interface client (the `lambda` extra, pinned by
# constraints.txt) running its `handler` (shared/lambda_http.py): Lambda's Runtime API in, the
# function's ASGI app behind it. main.py at the task root is the one line that names the
# function's main module, so the handler is `main.handler` whatever the function.
FROM ${FUNCTION} AS lambda
USER root
COPY constraints.txt /tmp/constraints.txt
RUN pip --python /opt/venv/bin/python install -c /tmp/constraints.txt awslambdaric \
 && rm /tmp/constraints.txt \
 && main="$(find functions -name main.py)" \
 && test "$(printf '%s\n' "$main" | wc -l)" -eq 1 \
 && printf 'from %s import handler  # noqa: F401\n' "$(printf '%s' "${main%.py}" | tr / .)" \
      > main.py \
 && python -m compileall -q main.py /opt/venv/lib
USER app
ENV LAMBDA_TASK_ROOT=/app
HEALTHCHECK NONE
ENTRYPOINT ["python", "-m", "awslambdaric"]
CMD ["main.handler"]
