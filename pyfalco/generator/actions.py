# SPDX-License-Identifier: Apache-2.0
"""The generator's actions: each performs one behaviour for real and names the rules it triggers.

An action fails (:class:`ActionFailed`, reported by ``run``/``--check`` and in the exit status)
when a command it runs exits with an unexpected status: the behaviour did not happen, e.g. ``cat
/etc/shadow`` as an unprivileged user.

Safety rules every action follows:

* host actions work in a private temporary directory (Context.tmp) and remove what they made;
  the only host files read are readable system files (/etc/shadow is read, never written);
* anything that writes to system locations (/etc, /usr/bin, /dev, /var/log ...) runs in a
  throw-away podman container of the locally built image, never on the host;
* no traffic leaves the machine: network actions run in a container with ``--network none``
  and put the addresses they talk to (a "public" documentation address, the metadata address
  169.254.169.254, the Kubernetes service address) on that container's own loopback, so
  connections succeed inside its private network namespace; host network actions use
  127.0.0.1;
* kernel-module loading passes a garbage image: the call fails (the kernel rejects it, or has no
  module support), the attempt is still the event the rule sees.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
import textwrap
import threading
from dataclasses import dataclass, field
from typing import Callable

from .context import ActionFailed, Context

__all__ = ["Action", "ACTIONS", "action_names", "get_action"]


@dataclass(frozen=True)
class Action:
    name: str
    rules: tuple            # pyfalco default rules it fires
    where: str              # "host", "container" or "both" (host unless --container)
    description: str
    fn: Callable[[Context], None] = field(repr=False)
    upstream: tuple = ()    # rules of Falco's stable ruleset expected to fire too

    def run(self, ctx: Context) -> None:
        self.fn(ctx)

    def in_container(self, container_flag: bool) -> bool:
        return self.where == "container" or (self.where == "both" and container_flag)


ACTIONS: dict[str, Action] = {}


def action(name: str, rules, where: str, upstream=()):
    def deco(fn):
        ACTIONS[name] = Action(name, tuple(rules), where, textwrap.dedent(fn.__doc__ or "").strip(), fn,
                               tuple(upstream))
        return fn
    return deco


def action_names() -> list[str]:
    return list(ACTIONS)


def get_action(name: str) -> Action:
    try:
        return ACTIONS[name]
    except KeyError:
        raise KeyError(f"unknown action {name!r} (pyfalco-event-generator list)") from None


def _python(ctx: Context, code: str, **kw):
    """Runs Python code in a child process (the behaviour belongs to that process, not ours)."""
    return ctx.run([sys.executable, "-c", textwrap.dedent(code)], **kw)


# ---------------------------------------------------------------------------------------------
# Shells and processes
# ---------------------------------------------------------------------------------------------

@action("terminal_shell_in_container", ["Terminal shell in container"], "container",
        upstream=["Terminal shell in container"])
def terminal_shell_in_container(ctx: Context) -> None:
    """Starts a container with a terminal (podman run -t) whose process is a shell."""
    ctx.podman_run("/bin/sh", "-c", "exit 0", tty=True)


@action("shell_from_server", ["Run shell untrusted"], "both", upstream=["Run shell untrusted"])
def shell_from_server(ctx: Context) -> None:
    """A process named nginx (busybox run as /.../nginx with argv[0] "sh") starts a shell."""
    if ctx.container:
        ctx.container_sh("exec -a sh /usr/sbin/nginx -c '/bin/sh -c \"/bin/true; exit 0\"; exit 0'")
    else:
        nginx = ctx.named_busybox("nginx")
        ctx.run(["sh", "-c", f"{ctx.tool('sh')} -c {ctx.tool('true')}; exit 0"], executable=nginx)


@action("child_of_server", ["Unexpected process spawned by server"], "both")
def child_of_server(ctx: Context) -> None:
    """A process named mysqld runs whoami, the reconnaissance step of an exploited server."""
    if ctx.container:
        ctx.container_sh('exec -a sh /usr/sbin/mysqld -c "/bin/whoami; /bin/true"')
    else:
        mysqld = ctx.named_busybox("mysqld")
        ctx.run(["sh", "-c", f"{ctx.tool('whoami')}; true"], executable=mysqld)


@action("system_user_interactive", ["System user interactive", "Terminal shell in container"], "container",
        upstream=["Terminal shell in container"])
def system_user_interactive(ctx: Context) -> None:
    """In a container with a terminal, su to the daemon system account and run a shell (busybox su
    replaces itself with the shell, which is then also the container's terminal shell)."""
    ctx.podman_run("/bin/su", "-s", "/bin/sh", "daemon", "-c", "/bin/true", tty=True)


# ---------------------------------------------------------------------------------------------
# Sensitive files
# ---------------------------------------------------------------------------------------------

@action("read_sensitive_file", ["Read sensitive file untrusted"], "both", upstream=["Read sensitive file untrusted"])
def read_sensitive_file(ctx: Context) -> None:
    """cat reads /etc/shadow (and, in a container, sudoers and PAM configuration)."""
    if ctx.container:
        ctx.container_sh("/bin/cat /etc/shadow /etc/sudoers /etc/pam.d/common-auth >/dev/null")
    else:
        ctx.run([ctx.tool("cat"), "/etc/shadow"])


@action("directory_traversal_read", ["Directory traversal monitored file read", "Read sensitive file untrusted"],
        "host", upstream=["Directory traversal monitored file read", "Read sensitive file untrusted"])
def directory_traversal_read(ctx: Context) -> None:
    """cat reads /etc/shadow through a path with ../ components."""
    ctx.run([ctx.tool("cat"), "/etc/../etc/../etc/shadow"])


@action("read_ssh_private_key", ["Read ssh information"], "both")
def read_ssh_private_key(ctx: Context) -> None:
    """cat reads an SSH private key (a made-up one in a temporary ~/.ssh on the host)."""
    if ctx.container:
        ctx.container_sh("/bin/cat /root/.ssh/id_rsa >/dev/null")
    else:
        d = ctx.path("home", ".ssh")
        os.makedirs(d, mode=0o700)
        key = os.path.join(d, "id_ed25519")
        with open(key, "w") as f:
            f.write("-----BEGIN OPENSSH PRIVATE KEY-----\nbm90IGEga2V5\n-----END OPENSSH PRIVATE KEY-----\n")
        ctx.run([ctx.tool("cat"), key])


# ---------------------------------------------------------------------------------------------
# Writes to system locations (containers only)
# ---------------------------------------------------------------------------------------------

@action("write_below_etc", ["Write below etc"], "container")
def write_below_etc(ctx: Context) -> None:
    """touch creates /etc/pyfalco-eventgen.conf in a container."""
    ctx.container_sh("/bin/touch /etc/pyfalco-eventgen.conf")


@action("write_below_root", ["Write below root"], "container")
def write_below_root(ctx: Context) -> None:
    """touch creates root's .profile in a container (shell start-up persistence)."""
    ctx.container_sh("/bin/touch /root/.profile")


@action("write_below_binary_dir", ["Write below binary dir"], "container")
def write_below_binary_dir(ctx: Context) -> None:
    """cp drops a new executable into /usr/bin in a container."""
    ctx.container_sh("/bin/cp /bin/busybox /usr/bin/pyfalco-dropped")


@action("write_below_lib", ["Write below monitored dir"], "container")
def write_below_lib(ctx: Context) -> None:
    """touch creates a shared library file in /lib in a container."""
    ctx.container_sh("/bin/touch /lib/libpyfalco-preload.so")


@action("write_package_databases", ["Write below rpm database", "Write below dpkg database"], "container")
def write_package_databases(ctx: Context) -> None:
    """A shell appends to the rpm and dpkg databases in a container."""
    ctx.container_sh("echo >> /var/lib/rpm/Packages; echo >> /var/lib/dpkg/status")


@action("modify_binary_dirs", ["Modify binary dirs"], "container")
def modify_binary_dirs(ctx: Context) -> None:
    """mv renames, then rm deletes, an executable in /usr/bin in a container."""
    ctx.container_sh("/bin/mv /usr/bin/pyfalco-victim /usr/bin/pyfalco-victim.old; "
                     "/bin/rm /usr/bin/pyfalco-victim.old")


@action("mkdir_binary_dirs", ["Mkdir binary dirs"], "container")
def mkdir_binary_dirs(ctx: Context) -> None:
    """mkdir makes a hidden directory in /usr/bin in a container."""
    ctx.container_sh("/bin/mkdir /usr/bin/.pyfalco")


# ---------------------------------------------------------------------------------------------
# Links, permissions
# ---------------------------------------------------------------------------------------------

@action("symlink_sensitive_file", ["Create Symlink Over Sensitive Files"], "both",
        upstream=["Create Symlink Over Sensitive Files"])
def symlink_sensitive_file(ctx: Context) -> None:
    """ln -s makes a link to /etc/shadow (in the temp dir on the host)."""
    if ctx.container:
        ctx.container_sh("/bin/ln -s /etc/shadow /tmp/shadow-link")
    else:
        ctx.run([ctx.tool("ln"), "-s", "/etc/shadow", ctx.path("shadow-link")])


@action("hardlink_sensitive_file", ["Create Hardlink Over Sensitive Files"], "container",
        upstream=["Create Hardlink Over Sensitive Files"])
def hardlink_sensitive_file(ctx: Context) -> None:
    """ln makes a hard link to /etc/shadow in a container."""
    ctx.container_sh("/bin/ln /etc/shadow /tmp/shadow-hardlink")


@action("set_setuid_bit", ["Set Setuid or Setgid bit"], "both")
def set_setuid_bit(ctx: Context) -> None:
    """chmod u+s, g+s on a copy of true (in the temp dir on the host)."""
    if ctx.container:
        ctx.container_sh("/bin/cp /bin/busybox /tmp/suid; /bin/chmod 4755 /tmp/suid; /bin/chmod 2755 /tmp/suid")
    else:
        target = ctx.path("suid-true")
        shutil.copy(ctx.tool("true"), target)
        ctx.run([ctx.tool("chmod"), "4755", target])
        ctx.run([ctx.tool("chmod"), "2755", target])


@action("chmod_sensitive_file", ["Change permissions or owner of sensitive file"], "container")
def chmod_sensitive_file(ctx: Context) -> None:
    """chmod makes /etc/shadow world-readable and chown gives /etc/sudoers away, in a container."""
    ctx.container_sh("/bin/chmod 0644 /etc/shadow; /bin/chown 1:1 /etc/sudoers")


# ---------------------------------------------------------------------------------------------
# /dev, /dev/shm, fileless, dropped binaries
# ---------------------------------------------------------------------------------------------

@action("create_file_below_dev", ["Create files below dev"], "container")
def create_file_below_dev(ctx: Context) -> None:
    """touch creates a regular file /dev/pyfalco in a container."""
    ctx.container_sh("/bin/touch /dev/pyfalco")


@action("exec_from_dev_shm", ["Execution from /dev/shm"], "host", upstream=["Execution from /dev/shm"])
def exec_from_dev_shm(ctx: Context) -> None:
    """Copies true into /dev/shm, runs it, deletes it."""
    target = f"/dev/shm/pyfalco-eventgen-{os.getpid()}-{os.urandom(3).hex()}"
    shutil.copy(ctx.tool("true"), target)
    try:
        os.chmod(target, 0o700)
        ctx.run([target])
    finally:
        os.unlink(target)


@action("fileless_execution", ["Fileless execution via memfd_create"], "host",
        upstream=["Fileless execution via memfd_create"])
def fileless_execution(ctx: Context) -> None:
    """A child writes true into a memfd and executes it from /proc/self/fd."""
    _python(ctx, f"""
        import os
        fd = os.memfd_create("pyfalco-eventgen", 0)
        with open({ctx.tool('true')!r}, "rb") as f:
            os.write(fd, f.read())
        pid = os.fork()
        if pid == 0:
            os.execv(f"/proc/self/fd/{{fd}}", ["memfd-true"])
        os.waitpid(pid, 0)
    """)


@action("drop_and_execute", ["Drop and execute new binary in container"], "container",
        upstream=["Drop and execute new binary in container"])
def drop_and_execute(ctx: Context) -> None:
    """Copies busybox into the container's /tmp after start and executes the copy."""
    ctx.container_sh("/bin/cp /bin/busybox /tmp/true; /tmp/true")


# ---------------------------------------------------------------------------------------------
# Namespaces, containers, kernel, debugging
# ---------------------------------------------------------------------------------------------

@action("change_thread_namespace", ["Change thread namespace"], "host")
def change_thread_namespace(ctx: Context) -> None:
    """nsenter joins its own network namespace (setns, no actual change) and runs true."""
    ctx.run([ctx.tool("nsenter"), "--net=/proc/self/ns/net", ctx.tool("true")])


@action("unshare_namespaces", ["Change namespace privileges via unshare"], "host")
def unshare_namespaces(ctx: Context) -> None:
    """unshare creates a user namespace and runs true in it."""
    ctx.run([ctx.tool("unshare"), "--user", ctx.tool("true")])


# pid 1 re-executes itself after a second: the container's metadata (privileged, mounts) is read
# asynchronously, and the second exec of pid 1 is seen with it
_START_THEN_EXEC = "/bin/sleep 1; exec /bin/true"


@action("privileged_container", ["Launch Privileged Container"], "container")
def privileged_container(ctx: Context) -> None:
    """Starts a privileged container (podman run --privileged)."""
    ctx.container_sh(_START_THEN_EXEC, options=("--privileged",))


@action("sensitive_mount_container", ["Launch Sensitive Mount Container"], "container")
def sensitive_mount_container(ctx: Context) -> None:
    """Starts a container with the host's /etc mounted read-only."""
    ctx.container_sh(_START_THEN_EXEC, options=("-v", "/etc:/host/etc:ro"))


@action("kernel_module_load", ["Linux Kernel Module Injection Detected"], "host")
def kernel_module_load(ctx: Context) -> None:
    """A child calls init_module and finit_module with a garbage module (both fail)."""
    empty = ctx.path("garbage.ko")
    with open(empty, "wb") as f:
        f.write(b"\0" * 64)
    _python(ctx, f"""
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        img = b"\\0" * 64
        libc.syscall(175, img, len(img), b"")              # init_module
        fd = os.open({empty!r}, os.O_RDONLY)
        libc.syscall(313, fd, b"", 0)                      # finit_module
        os.close(fd)
    """)


@action("ptrace_attach", ["PTRACE attached to process"], "host", upstream=["PTRACE attached to process"])
def ptrace_attach(ctx: Context) -> None:
    """A child attaches with PTRACE_ATTACH to its own sleeping child, then detaches."""
    _python(ctx, """
        import ctypes, os, time
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            time.sleep(2)
            os._exit(0)
        time.sleep(0.1)
        if libc.ptrace(16, pid, None, None) == 0:          # PTRACE_ATTACH
            os.waitpid(pid, 0)
            libc.ptrace(17, pid, None, None)               # PTRACE_DETACH
        os.kill(pid, 9)
        os.waitpid(pid, 0)
    """)


@action("ptrace_traceme", ["PTRACE anti-debug attempt"], "host", upstream=["PTRACE anti-debug attempt"])
def ptrace_traceme(ctx: Context) -> None:
    """A child process calls ptrace(PTRACE_TRACEME) and exits."""
    _python(ctx, """
        import ctypes, os
        libc = ctypes.CDLL(None, use_errno=True)
        pid = os.fork()
        if pid == 0:
            libc.ptrace(0, 0, None, None)                  # PTRACE_TRACEME
            os._exit(0)
        os.waitpid(pid, 0)
    """)


@action("packet_socket_in_container", ["Packet socket created in container"], "container",
        upstream=["Packet socket created in container"])
def packet_socket_in_container(ctx: Context) -> None:
    """arping opens an AF_PACKET socket in a container (on its own loopback)."""
    ctx.container_sh("/bin/arping -c 1 -w 1 -I lo 127.0.0.1 >/dev/null 2>&1; true", options=("--cap-add", "NET_RAW"))


# ---------------------------------------------------------------------------------------------
# Network (containers with their own loopback-only network, or 127.0.0.1 on the host)
# ---------------------------------------------------------------------------------------------

_NET_OPTS = ("--cap-add", "NET_ADMIN")


def _listen_then(addr: str, port: int, client: str) -> str:
    """A container script: ``addr`` on the container's loopback, nc listening on ``port``, then
    ``client`` (which connects to it)."""
    return (f"/bin/ip addr add {addr}/32 dev lo && "
            f"(/bin/nc -l -p {port} </dev/null >/dev/null 2>&1 &) ; /bin/sleep 0.3; {client}; /bin/sleep 0.2")


@action("system_binary_network", ["System procs network activity", "Unexpected outbound connection destination",
                                  "Unexpected inbound connection source"], "container")
def system_binary_network(ctx: Context) -> None:
    """A process named sha1sum (nc in disguise) connects to a non-private address; nc accepts it."""
    ctx.container_sh(_listen_then("192.0.2.10", 8080, "(exec -a nc /bin/sha1sum 192.0.2.10 8080 </dev/null)"),
                     options=_NET_OPTS)


@action("reverse_shell", ["Netcat Remote Code Execution in Container",
                          "Redirect STDOUT/STDIN to Network Connection in Container"], "both",
        upstream=["Netcat Remote Code Execution in Container", "Redirect STDOUT/STDIN to Network Connection in Container"])
def reverse_shell(ctx: Context) -> None:
    """nc connects to a local listener with -e: the socket becomes the stdin/stdout of a program
    (true, which exits at once). On the host the listener is this process on 127.0.0.1."""
    if ctx.container:
        ctx.container_sh("(/bin/nc -l -p 4444 </dev/null >/dev/null 2>&1 &); /bin/sleep 0.3; "
                         "/bin/nc 127.0.0.1 4444 -e /bin/true")
        return
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(10)
    port = srv.getsockname()[1]

    def accept():
        try:
            conn, _ = srv.accept()
            conn.close()
        except OSError:
            pass
    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        ctx.run([ctx.named_busybox("nc"), "127.0.0.1", str(port), "-e", ctx.tool("true")])
    finally:
        t.join(5)
        srv.close()


# the host variants of "both" actions that fire the host twins of container rules
HOST_RULES = {
    "reverse_shell": ("Netcat Remote Code Execution on Host", "Redirect STDOUT/STDIN to Network Connection on Host"),
}
HOST_UPSTREAM: dict = {"reverse_shell": ()}
# container variants of "both" actions that do more there: grep -r /root also reads the image's
# made-up SSH private key
CONTAINER_RULES = {
    "search_private_keys": ("Search Private Keys or Passwords", "Read ssh information"),
    "find_cloud_credentials": ("Find AWS Credentials", "Find Cloud Credentials", "Read ssh information"),
}


@action("k8s_api_from_container", ["Contact K8S API Server From Container"], "container",
        upstream=["Contact K8S API Server From Container"])
def k8s_api_from_container(ctx: Context) -> None:
    """nc connects to 10.96.0.1:443 (the usual API server service address), which exists only on
    the container's own loopback."""
    ctx.container_sh(_listen_then("10.96.0.1", 443, "/bin/nc 10.96.0.1 443 </dev/null"), options=_NET_OPTS)


@action("metadata_from_container", ["Contact cloud metadata service from container"], "container")
def metadata_from_container(ctx: Context) -> None:
    """nc connects to 169.254.169.254:80, an address put on the container's own loopback (the real
    metadata service is never contacted)."""
    ctx.container_sh(_listen_then("169.254.169.254", 80, "/bin/nc 169.254.169.254 80 </dev/null"), options=_NET_OPTS)


@action("ssh_from_container", ["Launch Remote File Copy Tools in Container",
                               "Disallowed SSH Connection Non Standard Port",
                               "Unexpected outbound connection destination", "Unexpected inbound connection source"],
        "container", upstream=["Disallowed SSH Connection Non Standard Port"])
def ssh_from_container(ctx: Context) -> None:
    """The host's ssh client (mounted read-only with its libraries) runs in a container and
    connects to port 443 of a documentation address on the container's own loopback, where nc
    listens (and accepts a connection from that "public" address) and hangs up."""
    ssh = ctx.tool("ssh")
    libdir = "/usr/lib/x86_64-linux-gnu" if os.path.isdir("/usr/lib/x86_64-linux-gnu") else None
    if libdir is None or not os.path.isdir("/usr/lib64"):
        raise ActionFailed("ssh_from_container needs a multiarch x86_64 host (/usr/lib/x86_64-linux-gnu)")
    opts = _NET_OPTS + ("-v", f"{libdir}:/lib/x86_64-linux-gnu:ro", "-v", "/usr/lib64:/lib64:ro",
                        "-v", f"{os.path.realpath(ssh)}:/usr/local/bin/ssh:ro")
    client = ("/usr/local/bin/ssh -p 443 -o ConnectTimeout=2 -o BatchMode=yes -o StrictHostKeyChecking=no "
              "-o UserKnownHostsFile=/dev/null root@203.0.113.5 true </dev/null >/dev/null 2>&1")
    ctx.container_sh(_listen_then("203.0.113.5", 443, client), options=opts)


# ---------------------------------------------------------------------------------------------
# Defense evasion, discovery, impact
# ---------------------------------------------------------------------------------------------

@action("clear_logs", ["Clear Log Activities"], "container", upstream=["Clear Log Activities"])
def clear_logs(ctx: Context) -> None:
    """A shell truncates /var/log/app.log in a container."""
    ctx.container_sh(": > /var/log/app.log")


@action("delete_shell_history", ["Delete or rename shell history"], "container")
def delete_shell_history(ctx: Context) -> None:
    """rm deletes root's .ash_history in a container."""
    ctx.container_sh("/bin/rm /root/.ash_history")


@action("remove_bulk_data", ["Remove Bulk Data from Disk"], "both", upstream=["Remove Bulk Data from Disk"])
def remove_bulk_data(ctx: Context) -> None:
    """shred overwrites and deletes a file (in the temp dir on the host)."""
    if ctx.container:
        ctx.container_sh("/bin/cp /etc/hostname /tmp/victim; /bin/shred -u /tmp/victim")
    else:
        victim = ctx.path("victim.dat")
        with open(victim, "wb") as f:
            f.write(b"data" * 1024)
        ctx.run([ctx.tool("shred"), "-u", victim])


@action("search_private_keys", ["Search Private Keys or Passwords"], "both", upstream=["Search Private Keys or Passwords"])
def search_private_keys(ctx: Context) -> None:
    """grep for private key headers and find for id_rsa (below the temp dir on the host)."""
    if ctx.container:
        ctx.container_sh("/bin/grep -rl 'BEGIN OPENSSH PRIVATE KEY' /root; /bin/find /root -name id_rsa")
    else:
        # grep exits 1 when nothing matches: the search itself is the behaviour
        ctx.run([ctx.tool("grep"), "-rl", "BEGIN OPENSSH PRIVATE KEY", ctx.tmp], ok=(0, 1))
        ctx.run([ctx.tool("find"), ctx.tmp, "-name", "id_rsa"])


@action("find_cloud_credentials", ["Find AWS Credentials", "Find Cloud Credentials"], "both",
        upstream=["Find AWS Credentials"])
def find_cloud_credentials(ctx: Context) -> None:
    """grep for AWS secret keys, find for gcloud and kube credentials (below the temp dir)."""
    if ctx.container:
        ctx.container_sh("/bin/grep -r aws_secret_access_key /root; "
                         "/bin/find /root -name application_default_credentials.json")
    else:
        ctx.run([ctx.tool("grep"), "-r", "aws_secret_access_key", ctx.tmp], ok=(0, 1))
        ctx.run([ctx.tool("find"), ctx.tmp, "-path", "*/.config/gcloud/*"])


@action("user_management", ["User mgmt binaries"], "container")
def user_management(ctx: Context) -> None:
    """passwd removes the password of the app account in a container."""
    ctx.container_sh("/bin/passwd -d app >/dev/null 2>&1")


@action("non_sudo_setuid", ["Non sudo setuid"], "host")
def non_sudo_setuid(ctx: Context) -> None:
    """A child Python process switches to the nobody user with setgid/setuid and exits."""
    _python(ctx, """
        import os
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
    """)


@action("crypto_miner", ["Detect crypto miners using the Stratum protocol"], "container")
def crypto_miner(ctx: Context) -> None:
    """Starts a program named xmrig with a stratum+tcp pool URL in a container (no pool exists,
    no connection is made: busybox does not know the applet and exits)."""
    ctx.container_sh("/usr/bin/xmrig -o stratum+tcp://pool.example.invalid:3333 -u wallet >/dev/null 2>&1; true")


def expected_rules(act: Action, in_container: bool) -> tuple:
    """The pyfalco rules an action fires where it runs."""
    if not in_container and act.name in HOST_RULES:
        return HOST_RULES[act.name]
    if in_container and act.name in CONTAINER_RULES:
        return CONTAINER_RULES[act.name]
    return act.rules


def expected_upstream(act: Action, in_container: bool) -> tuple:
    if not in_container and act.name in HOST_UPSTREAM:
        return HOST_UPSTREAM[act.name]
    return act.upstream
