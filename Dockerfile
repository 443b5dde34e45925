# syntax=docker/dockerfile:1
# Turret's container image. Built on the full Node image (re2 compiles a native addon there, and
# TypeScript is a dev dependency); runs on the slim image of the same Debian release (the addon
# links against the same glibc) with production dependencies only, as the unprivileged `node`
# user (uid 1000). Turret writes only to its CA directory and its audit directory, both volumes,
# so the container runs with a read-only root filesystem (`read_only: true` in
# deploy/compose.yaml). Build from the repository root: docker build -t turret .
ARG NODE_VERSION=20-bookworm

FROM node:${NODE_VERSION} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:${NODE_VERSION}-slim
WORKDIR /app
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# The CA directory holds the key files (0600) and must be private to Turret's user.
RUN mkdir -p /etc/turret/rules /var/lib/turret/ca /var/log/turret \
 && chown node:node /var/lib/turret/ca /var/log/turret \
 && chmod 0700 /var/lib/turret/ca
ENV TURRET_RULES=/etc/turret/rules \
    TURRET_CA_DIR=/var/lib/turret/ca
USER node
VOLUME ["/var/lib/turret/ca", "/var/log/turret"]
EXPOSE 8750
STOPSIGNAL SIGTERM
# /healthz on the admin listener, which stays on loopback inside the container.
HEALTHCHECK --interval=10s --timeout=3s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8751/healthz').then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# --max-semi-space-size: the young generation Turret is measured with (src/cli/heap.ts).
ENTRYPOINT ["node", "--max-semi-space-size=64", "/app/dist/main.js"]
CMD ["start", "--production", "--listen=0.0.0.0:8750", "--admin=127.0.0.1:8751", "--audit=/var/log/turret/audit.jsonl"]
