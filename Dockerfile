# syntax=docker/dockerfile:1
# Images: `meshwarden` (webhook, guard) and `meshwarden-init` (traffic capture). Build one with
#   docker build --target meshwarden-init -t meshwarden/meshwarden-init .
# or `make docker-images` for all of them. Without Docker, `make images` builds them as OCI tarballs in
# bin/images/: the same programs, paths, users and entrypoints (hack/images tests that they agree), on an
# empty base instead of distroless.
# Both binaries are static, so the runtime stages carry nothing else.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so that source edits do not invalidate the download layer.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/root/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
RUN --mount=type=cache,target=/root/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/ ./cmd/meshwarden ./cmd/meshwarden-init

# meshwarden-init programs nftables over netlink, so it needs no iptables or nft binary. It runs as
# root and needs NET_ADMIN (plus NET_RAW for the iptables backend) in the init container only.
FROM gcr.io/distroless/static-debian12 AS meshwarden-init
COPY --from=build /out/meshwarden-init /usr/local/bin/meshwarden-init
USER 0:0
ENTRYPOINT ["/usr/local/bin/meshwarden-init"]

# For nodes whose kernel lacks nftables: the same program plus iptables-restore (--backend iptables,
# or auto, which falls back to it).
FROM debian:bookworm-slim AS meshwarden-init-iptables
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends iptables \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/meshwarden-init /usr/local/bin/meshwarden-init
USER 0:0
ENTRYPOINT ["/usr/local/bin/meshwarden-init"]

# The webhook and guard run unprivileged.
FROM gcr.io/distroless/static-debian12:nonroot AS meshwarden
COPY --from=build /out/meshwarden /usr/local/bin/meshwarden
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/meshwarden"]
