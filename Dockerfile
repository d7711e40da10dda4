# litefs-ts image: `litefs mount` as the entrypoint, with FUSE 2 and the sqlite3 CLI.
#
#   docker build -t litefs-ts .
#   docker run --rm -it --init --cap-add SYS_ADMIN --device /dev/fuse \
#     [--security-opt apparmor:unconfined] \
#     -v "$PWD/litefs.yml:/etc/litefs.yml:ro" -v litefs-data:/var/lib/litefs litefs-ts
#
# FUSE needs CAP_SYS_ADMIN and /dev/fuse (hosts with AppArmor also need the security-opt).
# Without /etc/litefs.yml (or -config) litefs uses its embedded demo configuration: a single
# static primary with the mount at /litefs and the data in /var/lib/litefs. Put the data
# directory on a volume. To ship an application, build FROM this image, add the app, and start
# it from litefs.yml (`exec:`) or after `--`: see deploy/.

# ---- build: npm ci (with compilers in case a native module has no prebuilt binary), tsc ----
FROM node:20-bookworm-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
# fuse-native is vendored (patched to report the caller's PID) and compiled by npm ci.
COPY vendor ./vendor
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY bench ./bench
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

# ---- runtime ------------------------------------------------------------------------------
FROM node:20-bookworm-slim
# fuse: fusermount; libfuse2: the libfuse.so.2 that fuse-native loads; sqlite3: the CLI, handy
# for looking at /litefs from inside the container.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fuse libfuse2 sqlite3 \
 && rm -rf /var/lib/apt/lists/*
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json /app/package-lock.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/vendor ./vendor
COPY --from=build /app/dist ./dist
# The example application of the deploy examples (deploy/app/server.mjs).
COPY deploy/app ./deploy/app
# litefs's cluster API (keep it private) and the usual proxy port.
EXPOSE 20202 8080
ENTRYPOINT ["node", "/app/dist/src/cli/main.js"]
CMD ["mount"]
