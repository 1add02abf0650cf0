# The agent's image for machines that can pull base images. scripts/build-image.sh builds
# the same layout (/app with dist/, production node_modules, examples/) with `docker import`
# for machines that cannot.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY examples ./examples
EXPOSE 7946/udp 7946/tcp 7776 7777
ENTRYPOINT ["node", "/app/dist/cli.js"]
CMD ["agent"]
