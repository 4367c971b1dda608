# One image with every glance-* binary; docker-compose picks the command per service.
# scripts/compose-images.sh builds the same runtime stage around binaries built on the host,
# for machines where rust:1-bookworm cannot be pulled: keep the stage self-contained.
FROM rust:1-bookworm AS build
# glance-digest links the system's OpenSSL (its SHA-2 is the fastest we measured).
RUN apt-get update && apt-get install -y --no-install-recommends libssl-dev pkg-config \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -name 'glance-*' -exec cp {} /out/ \;

FROM debian:bookworm-slim AS runtime
# ca-certificates for web-download imports over HTTPS; curl for the API's health check;
# qemu-utils for the image_conversion import plugin (qemu-img info and convert); libssl3 for
# the digests of image data (glance-digest).
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl qemu-utils libssl3 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10000 glance \
 && useradd --system --uid 10000 --gid glance --home-dir /var/lib/glance glance \
 && mkdir -p /var/lib/glance/images /var/lib/glance/image-cache /etc/glance \
 && chown -R glance:glance /var/lib/glance
COPY --from=build /out/ /usr/local/bin/
# Named volumes mounted here start with this ownership, so the non-root user can write them.
USER glance
WORKDIR /var/lib/glance
EXPOSE 9292
CMD ["glance-all-in-one", "--bind", "0.0.0.0:9292", "--data-dir", "/var/lib/glance"]
