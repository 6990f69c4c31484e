# Builds the manager into a static binary and ships it on distroless, as a
# non-root user. make image builds the same image without a container engine
# (hack/build-image): /manager as the entrypoint, user 65532:65532, and a CA
# bundle at /etc/ssl/certs/ca-certificates.crt; keep the two alike.
FROM golang:1.26 AS builder
ARG TARGETOS
ARG TARGETARCH

WORKDIR /workspace
# Dependencies first, so that their layer is reused while only the code changes.
COPY go.mod go.sum ./
RUN go mod download

COPY main.go main.go
COPY api/ api/
COPY internal/ internal/

# TARGETOS and TARGETARCH are set by docker buildx for each --platform; a plain
# docker build leaves them empty and Go builds for the builder's own platform.
RUN CGO_ENABLED=0 GOOS=${TARGETOS:-linux} GOARCH=${TARGETARCH} \
    go build -trimpath -buildvcs=false -ldflags="-s -w -buildid=" -o manager .

FROM gcr.io/distroless/static:nonroot
WORKDIR /
# The binary is where ko, which builds the released image, puts it.
COPY --from=builder /workspace/manager /ko-app/surge-operator
USER 65532:65532

ENTRYPOINT ["/ko-app/surge-operator"]
