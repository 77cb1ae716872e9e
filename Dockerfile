# Goodput load generator (Locust master or worker) and the simulated engine, in one image.
#   docker build -t goodput .
#   docker run --rm -p 8089:8089 goodput --host http://my-vllm:8000          # web UI on :8089
#   docker run --rm goodput --worker --master-host MASTER                       # a worker
#   docker run --rm --entrypoint python goodput -m simserver --host 0.0.0.0   # the simulated engine
# docker-compose.yml wires master, workers and a target; k8s/ has the Kubernetes manifests.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies first (pinned: requirements.txt + constraints.txt), so code changes reuse this layer.
COPY requirements.txt constraints.txt ./
RUN pip install --no-compile -r requirements.txt -c constraints.txt

# A fixed non-root uid, so a Kubernetes securityContext or a compose `user:` can name it.
RUN useradd --uid 10001 --create-home --shell /usr/sbin/nologin goodput \
    && mkdir -p /app/results \
    && chown goodput:goodput /app/results

COPY --chown=goodput:goodput . .

USER 10001
# 8089 web UI, 5557 master ← workers, 8000 simulated engine
EXPOSE 8089 5557 8000

ENTRYPOINT ["locust", "-f", "locustfile.py"]
