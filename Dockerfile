# One image with every glance-* binary; docker-compose picks the command per service.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --workspace --bins \
 && mkdir /out \
 && find target/release -maxdepth 1 -type f -executable -name 'glance-*' -exec cp {} /out/ \;

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --home /var/lib/glance glance \
 && mkdir -p /var/lib/glance/images /var/lib/glance/image-cache && chown -R glance /var/lib/glance
COPY --from=build /out/ /usr/local/bin/
USER glance
WORKDIR /var/lib/glance
EXPOSE 9292
CMD ["glance-all-in-one", "--bind", "0.0.0.0:9292", "--data-dir", "/var/lib/glance"]
