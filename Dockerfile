# edge in a container: the daemon on its configuration, state in a volume.
#   docker build -t edge .
#   docker run --rm -p 4280:4280 -v edge-state:/var/lib/edge \
#     -v "$PWD/config/edge.yaml:/etc/edge/edge.yaml:ro" edge
# Inside a container the API must listen on 0.0.0.0 to be reachable from the host, so
# the image's copy of the demo configuration is changed to that. The data plane binds
# 127.77.x.x addresses inside the container: reach them with `docker exec ... curl`.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    EDGE_STATE_DIR=/var/lib/edge

WORKDIR /src
COPY pyproject.toml README.md ./
COPY edge ./edge
RUN pip install . && rm -rf /src

COPY config/edge.yaml /etc/edge/edge.yaml
RUN sed -i 's/^  listen: 127.0.0.1:4280/  listen: 0.0.0.0:4280/' /etc/edge/edge.yaml \
    && grep -q 'listen: 0.0.0.0:4280' /etc/edge/edge.yaml

RUN useradd --system --uid 10001 --home-dir /var/lib/edge --shell /usr/sbin/nologin edge \
    && install -d -o edge -g edge -m 0700 /var/lib/edge
USER edge
VOLUME ["/var/lib/edge"]
EXPOSE 4280

HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:4280/healthz', timeout=2)" || exit 1

CMD ["edge", "serve", "--config", "/etc/edge/edge.yaml"]
