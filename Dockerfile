# syntax=docker/dockerfile:1
# Build: Node 22 with the full toolchain; only the bundle and its licences leave this stage. The bundle
# is plain JavaScript, so this stage runs on the builder's own platform (no emulation) whatever the
# image's (`docker build --platform`).
FROM --platform=$BUILDPLATFORM node:22-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY lib ./lib
COPY functions ./functions
COPY ec2-agent ./ec2-agent
COPY scripts/build.ts ./scripts/build.ts
# The bundler alone: `make test` type-checks the whole checkout (the CLIs and tests too), which the
# image has no use for.
RUN node_modules/.bin/tsx scripts/build.ts

# Runtime: distroless Node 22, no shell, no package manager. The bundle is self-contained
# (no node_modules) and writes nothing to disk, so the root filesystem can be read-only.
FROM gcr.io/distroless/nodejs22-debian12:nonroot
WORKDIR /app
COPY --from=build /src/dist/random-number.mjs ./random-number.mjs
# The licences: this project's, and those of the packages the bundle holds code from.
COPY LICENSE ./LICENSE
COPY --from=build /src/dist/random-number.licenses.txt ./THIRD-PARTY-LICENSES.txt
# 65532 is distroless' "nonroot"; numeric so that Kubernetes' runAsNonRoot can verify it.
USER 65532:65532
ENV NODE_ENV=production PORT=8080
EXPOSE 8080
CMD ["random-number.mjs"]
