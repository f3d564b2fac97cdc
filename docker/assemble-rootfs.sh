#!/bin/sh
# Assembles the runtime root file system of the `weir` image in $1 (default
# /rootfs), from inside a Debian stage that has the binary at
# /usr/local/bin/weir and the ca-certificates package installed.
#
# The result is what the final `FROM scratch` stage copies: the binary, the
# shared libraries `ldd` lists (glibc, libm, libgcc_s and the loader), CA
# certificates, passwd/group entries for root and the non-root user 65532,
# /tmp, and the data directory /var/lib/weir owned by 65532. No shell, no
# package manager: nothing in the image but what `weir` uses.
#
# Used by both image builds: `Dockerfile` (registry path) and
# `docker/runtime.Dockerfile` (scripts/build-image.sh, no registry).
set -eu
out=${1:-/rootfs}
bin=/usr/local/bin/weir

mkdir -p "$out/usr/local/bin" "$out/etc/ssl/certs" "$out/var/lib/weir" "$out/home/nonroot" "$out/tmp"
cp "$bin" "$out$bin"

# "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" and the loader line
# "/lib64/ld-linux-x86-64.so.2 (0x…)"; cp -L resolves merged-/usr symlinks.
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u |
  while read -r lib; do
    mkdir -p "$out$(dirname "$lib")"
    cp -L "$lib" "$out$lib"
  done

cp -L /etc/ssl/certs/ca-certificates.crt "$out/etc/ssl/certs/ca-certificates.crt"
cat > "$out/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
nonroot:x:65532:65532:weir:/home/nonroot:/sbin/nologin
PASSWD
cat > "$out/etc/group" <<'GROUP'
root:x:0:
nonroot:x:65532:
GROUP
# glibc's files and dns modules are built into libc.so.6 (since 2.34).
printf 'passwd: files\ngroup: files\nhosts: files dns\n' > "$out/etc/nsswitch.conf"

chmod 1777 "$out/tmp"
chown 65532:65532 "$out/var/lib/weir" "$out/home/nonroot"
chmod 0750 "$out/var/lib/weir"

# Fail here, not at `docker run`: the binary must start in the new root.
chroot "$out" /usr/local/bin/weir --version
