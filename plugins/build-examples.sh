#!/usr/bin/env bash
# Builds the example plugins from source into OUT (default: target/plugins):
#   OUT/<name>/<name>.wasm  and  OUT/<name>/plugin.toml  (sha256 filled in).
# C examples need clang-15 + lld-15; AssemblyScript examples need
# `npm ci` in plugins/sdk/assemblyscript (.ci/install-deps does both).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/../target/plugins}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"

CLANG="${CLANG:-clang-15}"
ASC="$here/sdk/assemblyscript/node_modules/.bin/asc"

package() { # name wasm
  local name="$1" wasm="$2" sum
  sum="$(sha256sum "$wasm" | cut -d' ' -f1)"
  sed "s/@SHA256@/$sum/" "$here/examples/$name/plugin.toml" > "$out/$name/plugin.toml"
}

build_c() { # name
  local name="$1"
  mkdir -p "$out/$name"
  "$CLANG" --target=wasm32 -O2 -nostdlib -ffreestanding -fvisibility=hidden \
    -Wall -Wextra -Werror \
    -Wl,--no-entry -Wl,--export-dynamic -Wl,-z,stack-size=65536 \
    -I "$here/sdk/c" -o "$out/$name/$name.wasm" "$here/examples/$name/$name.c"
  package "$name" "$out/$name/$name.wasm"
}

build_as() { # name
  local name="$1"
  if [ ! -x "$ASC" ]; then
    echo "build-examples.sh: $ASC missing; run 'npm ci' in plugins/sdk/assemblyscript (or .ci/install-deps)" >&2
    exit 1
  fi
  mkdir -p "$out/$name"
  (cd "$here/examples/$name" && "$ASC" "$name.ts" --runtime stub -O3 --noAssert -o "$out/$name/$name.wasm")
  package "$name" "$out/$name/$name.wasm"
}

build_c http-restart
build_c annotate
build_as scale-up
echo "built example plugins into $out"
