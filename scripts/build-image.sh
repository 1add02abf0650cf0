#!/usr/bin/env bash
# Build the agent's image without pulling a base image: a root filesystem holding the node
# binary, the shared libraries `ldd` lists for it, and the built application with its
# production dependencies, imported with `docker import`. Same layout and entry point as
# the Dockerfile: /app/dist/cli.js run by node, `agent` by default.
#
#   scripts/build-image.sh [TAG]        # default shoal:latest; honours DOCKER_HOST
set -euo pipefail
tag="${1:-shoal:latest}"
top="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/shoal-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/app" "$root/tmp" "$root/etc"
chmod 1777 "$root/tmp"

node_bin="$(command -v node)"
cp -L "$node_bin" "$root/usr/local/bin/node"
# The dynamic loader and every library node links against, at the same paths.
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"

# The application: compiled output, the example static file, production dependencies only.
(cd "$top" && npm run build --silent)
cp -r "$top/dist" "$top/examples" "$top/package.json" "$top/package-lock.json" "$root/app/"
(cd "$root/app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
rm -f "$root/app/package-lock.json"

tar -C "$root" -c . | docker import \
  --change 'WORKDIR /app' \
  --change 'ENV NODE_ENV=production' \
  --change 'ENTRYPOINT ["/usr/local/bin/node", "/app/dist/cli.js"]' \
  --change 'CMD ["agent"]' \
  - "$tag" >/dev/null
echo "$tag"
