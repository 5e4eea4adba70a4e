#!/bin/bash
# PID 1 of a simulated student VM. It runs inside fresh mount, pid, uts and ipc namespaces
# (and the VM's network namespace), gives the VM its own copy-on-write /etc, /var, /home,
# /root and /usr/local (where a student may put their own commands), its own /tmp and /run,
# an identity (host name, host key, users), and starts sshd.
# The lab's other daemons are started by the scenario, as a student would.
set -euo pipefail
: "${VM_DIR:?}" "${VM_ADDRESS:?}" "${VM_PASSWORD:?}" "${AUTHORIZED_KEY:?}" "${FILES:?}"

for dir in etc var home root usr/local; do
    name=${dir//\//_}
    mkdir -p "$VM_DIR/$name.upper" "$VM_DIR/$name.work"
    mount -t overlay overlay \
        -o "lowerdir=/$dir,upperdir=$VM_DIR/$name.upper,workdir=$VM_DIR/$name.work" "/$dir"
done

# identity: every VM is "anglia.bryant", as in the handout
hostname anglia
printf '127.0.0.1\tlocalhost\n%s\tanglia.bryant anglia\n' "$VM_ADDRESS" > /etc/hosts
# no DNS server is reachable from the VM: fail fast instead of waiting for one
printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' > /etc/resolv.conf
echo anglia.bryant > /etc/mailname
# The VMs share one kernel, so its load average is the whole machine's: with a busy machine,
# sendmail's QueueLA/RefuseLA (8 and 12) would make every VM stop listening on port 25 at
# once. A real VM has a load of its own; here the limits are set out of reach.
sed -i 's/^#O QueueLA=.*/O QueueLA=1000/; s/^#O RefuseLA=.*/O RefuseLA=1000/' /etc/mail/sendmail.cf

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

# the lab's users and starting configuration (smith was deleted in an earlier lab)
useradd -m -s /bin/bash bob
echo "bob:$VM_PASSWORD" | chpasswd
if [ -d /etc/sudoers.d ]; then   # bob may sudo without a password (grade --user bob --sudo)
    echo 'bob ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/labsim-bob && chmod 440 /etc/sudoers.d/labsim-bob
fi
install -m 644 "$FILES/inetd.conf" /etc/inetd.conf
install -m 644 "$FILES/vsftpd.conf" /etc/vsftpd.conf

# only now hide the host's /tmp and /run (the files above may live there)
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs -o mode=755 tmpfs /run
mkdir -p /run/sshd /run/lock /run/vsftpd/empty /run/sendmail/mta /run/sendmail/msp
chown smmta:smmsp /run/sendmail/mta && chmod 2755 /run/sendmail/mta
chown smmsp:smmsp /run/sendmail/msp && chmod 2775 /run/sendmail/msp

/usr/sbin/sshd
echo booted

trap '' TERM INT HUP
while :; do   # reap orphans, as an init does
    sleep 3600 & wait $! || true
done
