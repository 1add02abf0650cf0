#!/usr/bin/env bash
# Build the agent's image without pulling a base image: a root filesystem holding the node
# binary, the shared libraries `ldd` lists for it, and the application compiled from src/
# with its production dependencies, imported with `docker import`. Same layout and entry
# point as the Dockerfile: /app/dist/cli.js run by node, `agent` by default.
#
#   npm ci                              # once: the compiler and the dependencies
#   scripts/build-image.sh [TAG]        # default shoal:latest; honours DOCKER_HOST
#
# Works offline: it compiles into its own folder (the repository's dist/ is left alone) and
# copies the production packages from node_modules instead of installing them again.
set -euo pipefail
tag="${1:-shoal:latest}"
top="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/shoal-image.XXXXXX")"
trap 'rm -rf "$work"' EXIT
root="$work/rootfs"
mkdir -p "$root/usr/local/bin" "$root/app" "$root/tmp" "$root/etc" "$root/root"
chmod 1777 "$root/tmp"

if [ ! -x "$top/node_modules/typescript/bin/tsc" ]; then
  echo "build-image.sh: run \`npm ci\` first (needs the TypeScript compiler and the dependencies)" >&2
  exit 1
fi

node_bin="$(readlink -f "$(command -v node)")"
cp -L "$node_bin" "$root/usr/local/bin/node"
# The dynamic loader and every library node links against, at the same paths.
for lib in $(ldd "$node_bin" | grep -o '/[^ ]*'); do
  mkdir -p "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done
echo 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
echo 'root:x:0:' > "$root/etc/group"

# The application: compiled output (and the UI's static files), the example static file,
# production dependencies only.
(cd "$top" && node node_modules/typescript/bin/tsc -p tsconfig.build.json --outDir "$root/app/dist" --sourceMap false)
(cd "$top" && node scripts/copy-assets.mjs "$root/app/dist")
cp -r "$top/examples" "$top/package.json" "$root/app/"
# Every package `npm ls` counts as a production dependency, at its place in node_modules.
(cd "$top" && npm ls --omit=dev --all --parseable 2>/dev/null | sed -n "s|^$top/||p" | grep '^node_modules/' | sort -u) > "$work/packages"
if [ ! -s "$work/packages" ]; then
  echo "build-image.sh: npm ls found no production packages in $top/node_modules" >&2
  exit 1
fi
tar -C "$top" -c -T "$work/packages" | tar -C "$root/app" -x

tar -C "$root" -c . | docker import \
  --change 'WORKDIR /app' \
  --change 'ENV NODE_ENV=production' \
  --change 'ENTRYPOINT ["/usr/local/bin/node", "/app/dist/cli.js"]' \
  --change 'CMD ["agent"]' \
  - "$tag" >/dev/null
echo "$tag"
