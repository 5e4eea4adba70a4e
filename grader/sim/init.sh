#!/bin/bash
# PID 1 of a simulated student VM. It runs inside fresh mount, pid, uts and ipc namespaces
# (and the VM's network namespace), gives the VM its own copy-on-write /etc, /var, /home,
# /root and /usr/local (where a student may put their own commands), its own /tmp and /run,
# an identity (host name, machine-id, host key, root's key), and starts sshd. Nothing here is
# any lab's: a pack's scenarios set up the VM as its lab hands it out, then do the lab.
set -euo pipefail
: "${VM_DIR:?}" "${VM_ADDRESS:?}" "${VM_PASSWORD:?}" "${AUTHORIZED_KEY:?}"

# PIDs from a point of the VM's own, as a machine up for a while has them: two VMs doing the
# same steps in the same second must not get the same PIDs (a daemon that makes its ids from
# the time and its PID, a mail server's message ids say, would give both the same). This
# VM's PID namespace only (--mount-proc).
echo $(( RANDOM % 20000 + 1000 )) > /proc/sys/kernel/ns_last_pid

for dir in etc var home root usr/local; do
    name=${dir//\//_}
    mkdir -p "$VM_DIR/$name.upper" "$VM_DIR/$name.work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$VM_DIR/$name.upper,workdir=$VM_DIR/$name.work" "/$dir"
done

# root's shell starts as a fresh Debian root's does: the grading machine's own set-up of its
# shell (a pyenv, a cargo in its .bashrc, which sshd's bash reads before every command) is not
# the VM's, and made every command of a grading slower (written to the VM's /root only)
for rc in bashrc profile; do
    if [ -f "/usr/share/base-files/dot.$rc" ]; then
        cp "/usr/share/base-files/dot.$rc" "/root/.$rc"
    elif [ -f "/etc/skel/.$rc" ]; then
        cp "/etc/skel/.$rc" "/root/.$rc"
    fi
done

# identity: a host name (a lab's start may set its own), a machine-id of its own (or the one
# given: a copied VM), a host key of its own (or the one given: a cloned VM)
hostname vm
printf '127.0.0.1\tlocalhost\n%s\tvm\n' "$VM_ADDRESS" > /etc/hosts
# no DNS server is reachable from the VM: fail fast instead of waiting for one
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > /etc/resolv.conf
rm -f /etc/machine-id
printf '%s\n' "${MACHINE_ID:-$(tr -d - < /proc/sys/kernel/random/uuid)}" > /etc/machine-id

# ssh: a host key of its own (or the one given), root logs in with the grader's key
rm -f /etc/ssh/ssh_host_*
if [ -n "${HOST_KEY_FILE:-}" ]; then
    install -m 600 "$HOST_KEY_FILE" /etc/ssh/ssh_host_ed25519_key
    ssh-keygen -y -f /etc/ssh/ssh_host_ed25519_key > /etc/ssh/ssh_host_ed25519_key.pub
else
    ssh-keygen -q -t ed25519 -N '' -f /etc/ssh/ssh_host_ed25519_key
fi
printf 'HostKey /etc/ssh/ssh_host_ed25519_key\nUseDNS no\n' > /etc/ssh/sshd_config.d/labsim.conf
install -d -m 700 /root/.ssh
printf '%s\n' "$AUTHORIZED_KEY" > /root/.ssh/authorized_keys
echo "root:$VM_PASSWORD" | chpasswd

# only now hide the host's /tmp and /run
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock

/usr/sbin/sshd
echo booted

trap '' TERM INT HUP
while :; do   # reap orphans, as an init does
    sleep 3600 & wait $! || true
done
