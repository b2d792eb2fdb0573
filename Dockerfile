# hydrant: build on Debian bookworm, run on bookworm-slim as a non-root user.
#   docker build -t hydrant .
#   docker run --rm -e HYDRANT_DATABASE_URL=... hydrant migrate up
#   docker run -p 8443:8443 -p 8080:8080 -e HYDRANT_MODE=production -e HYDRANT_JWT_SECRET=... \
#     -e HYDRANT_TLS_CERT=/certs/cert.pem -e HYDRANT_TLS_KEY=/certs/key.pem -v /certs:/certs:ro hydrant

FROM debian:bookworm AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      build-essential cmake pkg-config \
      libh2o-dev libuv1-dev libjwt-dev libargon2-dev libpq-dev libhiredis-dev \
      libcurl4-openssl-dev libssl-dev libjansson-dev libyaml-dev libcrypt-dev libwslay-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY src ./src
COPY tests ./tests
COPY bench ./bench
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DHYDRANT_TESTS=OFF \
 && cmake --build build -j"$(nproc)" \
 && strip build/hydrant

FROM debian:bookworm-slim
# Runtime libraries: exactly the packages of the libraries the binary links
# (tests/integration/test_dockerfile_libs.sh keeps this list in step with `readelf`),
# plus ca-certificates for outgoing TLS and curl for the health check.
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libh2o0.13 libuv1 libpq5 libhiredis0.14 libjansson4 libyaml-0-2 libssl3 libcurl4 \
      libjwt0 libargon2-1 libcrypt1 libwslay1 \
      ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home-dir /opt/hydrant --shell /usr/sbin/nologin hydrant
COPY --from=build /src/build/hydrant /usr/local/bin/hydrant
WORKDIR /opt/hydrant
COPY h2o.conf ./h2o.conf
COPY migrations ./migrations
COPY templates ./templates
COPY docs ./docs
RUN mkdir -p /opt/hydrant/uploads && chown hydrant:hydrant /opt/hydrant/uploads
USER hydrant
ENV HYDRANT_UPLOAD_DIR=/opt/hydrant/uploads
EXPOSE 8443 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD curl -fsS http://127.0.0.1:8080/health/live || exit 1
ENTRYPOINT ["hydrant"]
CMD ["serve"]
