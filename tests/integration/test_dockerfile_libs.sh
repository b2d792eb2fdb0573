#!/usr/bin/env bash
# Keeps the Dockerfile's runtime packages in step with the binary: every shared library
# the binary links directly (readelf NEEDED) must come from a package installed in the
# runtime stage, and every library package installed there must be needed.
# Usage: test_dockerfile_libs.sh BINARY DOCKERFILE
set -euo pipefail
binary=$1
dockerfile=$2

# Packages bookworm-slim already has, and sanitizer runtimes of the ASan build.
base='^(libc6|libgcc-s1|libstdc\+\+6|libasan[0-9]*|libubsan[0-9]*|liblsan[0-9]*)$'
# Packages in the runtime stage that are not libraries of the binary.
extra='^(ca-certificates|curl)$'

# The runtime stage's apt-get install line(s): from the last FROM to the end.
runtime=$(awk '/^FROM /{stage=""} {stage = stage "\n" $0} END {print stage}' "$dockerfile" |
  sed -n '/apt-get install/,/rm -rf/p' | tr ' \\' '\n\n' | grep -E '^[a-z0-9][a-z0-9.+-]+$' |
  grep -vE '^(apt-get|install|rm|useradd|DEBIAN_FRONTEND=noninteractive|y|no|recommends)$' | sort -u)

package_of() { # a library path -> its Debian package
  local path real
  path=$1
  real=$(readlink -f "$path")
  for candidate in "$path" "$real" "${real#/usr}" "/usr$real"; do
    if out=$(dpkg -S "$candidate" 2>/dev/null); then echo "${out%%:*}"; return 0; fi
  done
  echo "unknown:$path"
}

needed=$(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
required=""
for lib in $needed; do
  path=$(ldd "$binary" | awk -v l="$lib" '$1 == l {print $3}')
  [ -n "$path" ] || { echo "cannot resolve $lib"; exit 1; }
  pkg=$(package_of "$path")
  [[ $pkg =~ $base ]] || required="$required $pkg"
done
required=$(echo "$required" | tr ' ' '\n' | sed '/^$/d' | sort -u)

status=0
for pkg in $required; do
  if ! grep -qx "$pkg" <<<"$runtime"; then
    echo "Dockerfile runtime stage lacks $pkg (the binary links a library from it)"
    status=1
  fi
done
for pkg in $runtime; do
  [[ $pkg =~ $extra ]] && continue
  if ! grep -qx "$pkg" <<<"$required"; then
    echo "Dockerfile runtime stage installs $pkg, which the binary does not link"
    status=1
  fi
done
for pkg in $required $runtime; do
  apt-cache show "$pkg" >/dev/null 2>&1 || { echo "no Debian package named $pkg"; status=1; }
done
[ $status = 0 ] && echo "runtime packages match the binary: $(echo $required | tr '\n' ' ')"
exit $status
