#!/bin/bash
# A container made by hand, then traced with --cgroup: a cgroup below this
# shell's own (with a 1 GiB memory limit), private mount and pid namespaces, and
# a root directory with its own copy of libc. Its process allocates 4 GiB and
# writes 300 MiB of it. Run as root after scripts/build.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build"
if [[ $(id -u) -ne 0 ]]; then
    echo "container_demo.sh: run as root: sudo $0" >&2
    exit 1
fi
for needed in "$build/memobserve" "$build/workloads/container_cases"; do
    [[ -x $needed ]] || { echo "container_demo.sh: $needed missing: run scripts/build.sh first" >&2; exit 1; }
done

name="memobserve-demo-$$"
v2_mount=/sys/fs/cgroup
[[ -f /sys/fs/cgroup/unified/cgroup.controllers ]] && v2_mount=/sys/fs/cgroup/unified
v2_dir="$v2_mount$(sed -n 's/^0:://p' /proc/self/cgroup)/$name"
v2_dir=${v2_dir//\/\//\/}
memory_dir=""
container_root=$(mktemp -d /tmp/memobserve-demo-root.XXXXXX)

cleanup() {
    for dir in "$v2_dir" "$memory_dir"; do
        [[ -n $dir && -d $dir ]] || continue
        for _ in $(seq 50); do
            [[ -n $(cat "$dir/cgroup.procs") ]] || break
            xargs -r kill -9 < "$dir/cgroup.procs" 2>/dev/null || true
            sleep 0.1
        done
        # The kernel frees a cgroup shortly after its last process dies.
        for _ in $(seq 50); do
            rmdir "$dir" 2>/dev/null && break
            sleep 0.1
        done
        [[ -d $dir ]] && echo "container_demo.sh: could not remove $dir; remove it with rmdir" >&2
    done
    rm -rf "$container_root"
}
trap cleanup EXIT

mkdir "$v2_dir"
if [[ -f /sys/fs/cgroup/memory/memory.usage_in_bytes ]]; then
    memory_dir="/sys/fs/cgroup/memory$(sed -n 's/^[0-9]*:memory://p' /proc/self/cgroup)/$name"
    memory_dir=${memory_dir//\/\//\/}
    mkdir "$memory_dir"
    echo $((1 << 30)) > "$memory_dir/memory.limit_in_bytes"
elif grep -qw memory "$v2_dir/../cgroup.subtree_control" 2>/dev/null; then
    echo $((1 << 30)) > "$v2_dir/memory.max"
else
    echo "container_demo.sh: no memory controller to set a limit on; going on without one" >&2
fi

# The container's root: the program and the libraries it needs, copied.
cp "$build/workloads/container_cases" "$container_root/"
for library in $(ldd "$build/workloads/container_cases" | grep -o '/[^ ]*'); do
    mkdir -p "$container_root$(dirname "$library")"
    cp -L "$library" "$container_root$library"
done

join="echo \$\$ > $v2_dir/cgroup.procs"
[[ -n $memory_dir ]] && join="$join && echo \$\$ > $memory_dir/cgroup.procs"
coproc CONTAINER { sh -c "$join && exec unshare --mount --pid --fork --kill-child chroot $container_root /container_cases main"; }
read -r line <&"${CONTAINER[0]}"   # ready

# Attach, then let the container allocate.
log=$(mktemp /tmp/memobserve-demo-log.XXXXXX)
"$build/memobserve" snapshot --cgroup "${v2_dir#"$v2_mount"}" --duration 4 --top 5 \
    -o /tmp/memobserve-container-demo.json 2> "$log" &
tracer=$!
until grep -q "tracing cgroup" "$log"; do
    kill -0 $tracer 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.1
done
echo go >&"${CONTAINER[1]}"
read -r line <&"${CONTAINER[0]}"   # done
wait $tracer
cat "$log" >&2
rm -f "$log"
# End the container quietly; cleanup removes the cgroups.
kill -9 "$CONTAINER_PID" 2>/dev/null || true
wait "$CONTAINER_PID" 2>/dev/null || true
