# SPDX-License-Identifier: Apache-2.0
"""Declarative catalog of Falco's filter field names and types (the rule engine validates against it).

Only names, types and argument shapes live here; extracting values is the job of the field
providers. ``arg`` says what may follow the name in brackets:

* ``none``     no argument;
* ``required`` an argument is required (``evt.arg[0]``, ``evt.arg.flags``);
* ``optional`` an optional free-form argument (``proc.env[HOME]`` or ``proc.env``);
* ``index``    an optional integer (``proc.aname[2]``; without it: any ancestor);
* ``key``      a required key (``container.label[app]``, ``container.mount.dest[/var/run/x]``).

``is_list`` marks fields whose value is a list of values (``fd.types``): ``in`` means "every value
is in the set". ``multi`` (``none,any`` in the table) marks fields that yield several values of
which any may match, for every operator, ``in`` included: Falco's either-end network fields
(``fd.ip``, ``fd.port``, ``fd.net``, ``fd.proto``), whose value is the tuple of both ends.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["FieldInfo", "FIELDS", "lookup", "split_dot_arg", "TYPES", "ARG_KINDS"]


class FieldInfo(NamedTuple):
    name: str
    type: str
    desc: str
    arg: str = "none"
    is_list: bool = False
    multi: bool = False


TYPES = frozenset((
    "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "CHARBUF", "BYTEBUF",
    "ERRNO", "FD", "PID", "FSPATH", "RELTIME", "ABSTIME", "PORT", "L4PROTO", "SOCKFAMILY", "BOOL",
    "IPADDR", "IPNET", "IPV4ADDR", "IPV4NET", "IPV6ADDR", "IPV6NET", "DOUBLE", "UID", "GID",
    "FLAGS8", "FLAGS16", "FLAGS32", "MODE", "SIGTYPE", "SYSCALLID", "DYN",
))
ARG_KINDS = frozenset(("none", "required", "optional", "index", "key"))

# name | type | arg[,list|,any] | description
_TABLE = """
evt.num|UINT64|none|event number
evt.time|CHARBUF|none|event timestamp as a time string (HH:MM:SS.nnnnnnnnn)
evt.time.s|CHARBUF|none|event timestamp as a time string without nanoseconds
evt.time.iso8601|CHARBUF|none|event timestamp in ISO 8601 format, with nanoseconds and time zone
evt.datetime|CHARBUF|none|event timestamp as a date and time string
evt.datetime.s|CHARBUF|none|event timestamp as a date and time string without nanoseconds
evt.rawtime|ABSTIME|none|absolute event timestamp, ns from epoch
evt.rawtime.s|ABSTIME|none|integer part of the event timestamp, s
evt.rawtime.ns|ABSTIME|none|fractional part of the event timestamp, ns
evt.reltime|RELTIME|none|ns from the start of the capture
evt.reltime.s|RELTIME|none|s from the start of the capture
evt.reltime.ns|RELTIME|none|fractional part of reltime, ns
evt.pluginname|CHARBUF|none|name of the plugin that generated the event
evt.plugininfo|CHARBUF|none|summary of the event from its plugin
evt.source|CHARBUF|none|event source (syscall, ...)
evt.is_async|BOOL|none|true for asynchronous events
evt.asynctype|CHARBUF|none|type of an asynchronous event
evt.hostname|CHARBUF|none|hostname of the machine running the engine
evt.type|CHARBUF|none|name of the event (open, execve, ...)
evt.type.is|UINT32|required|1 if the event type is the argument
syscall.type|CHARBUF|none|name of the system call, for syscall events
evt.category|CHARBUF|none|event category (file, net, process, ...)
evt.cpu|INT16|none|CPU the event happened on
evt.args|CHARBUF|none|all event arguments as one string
evt.arg|CHARBUF|required|one event argument by name or index, rendered (evt.arg.fd, evt.arg[0])
evt.rawarg|DYN|required|one event argument by name, raw (evt.rawarg.res)
evt.info|CHARBUF|none|event arguments, or a description for plugin events
evt.buffer|BYTEBUF|none|the binary data buffer of I/O events
evt.buflen|UINT64|none|length of the binary buffer of I/O events
evt.res|CHARBUF|none|return value: SUCCESS or an error code name (ENOENT, ...)
evt.rawres|INT64|none|return value as a number
evt.failed|BOOL|none|true for events that returned an error
evt.is_io|BOOL|none|true for events that read or write a file descriptor
evt.is_io_read|BOOL|none|true for reads
evt.is_io_write|BOOL|none|true for writes
evt.io_dir|CHARBUF|none|r for reads, w for writes
evt.is_wait|BOOL|none|true for events that make the thread wait
evt.wait_latency|RELTIME|none|time spent waiting (deprecated)
evt.is_syslog|BOOL|none|true for writes to /dev/log
evt.count|UINT32|none|1 for every event
evt.count.error|UINT32|none|1 for events that returned an error
evt.count.error.file|UINT32|none|1 for file events that returned an error
evt.count.error.net|UINT32|none|1 for network events that returned an error
evt.count.error.memory|UINT32|none|1 for memory events that returned an error
evt.count.error.other|UINT32|none|1 for other events that returned an error
evt.count.exit|UINT32|none|1 for exit events
evt.around|UINT64|required|events around a timestamp
evt.abspath|CHARBUF|none|absolute path of *at() and path syscalls
evt.abspath.src|CHARBUF|none|source absolute path of rename/link syscalls
evt.abspath.dst|CHARBUF|none|destination absolute path of rename/link syscalls
evt.buflen.in|UINT64|none|bytes read
evt.buflen.out|UINT64|none|bytes written
evt.buflen.file|UINT64|none|bytes read or written to files
evt.buflen.file.in|UINT64|none|bytes read from files
evt.buflen.file.out|UINT64|none|bytes written to files
evt.buflen.net|UINT64|none|bytes read or written to the network
evt.buflen.net.in|UINT64|none|bytes read from the network
evt.buflen.net.out|UINT64|none|bytes written to the network
evt.is_open_read|BOOL|none|true for open/openat/openat2/open_by_handle_at events opening for reading
evt.is_open_write|BOOL|none|true for open events opening for writing
evt.is_open_exec|BOOL|none|true for open events creating executable files
evt.is_open_create|BOOL|none|true for open events that created the file
evt.deltatime|RELTIME|none|time since the previous event
evt.deltatime.s|RELTIME|none|integer part of deltatime, s
evt.deltatime.ns|RELTIME|none|fractional part of deltatime, ns
evt.dir|CHARBUF|none|event direction (> enter, < exit; deprecated)
evt.latency|RELTIME|none|enter-to-exit delta (deprecated)
evt.latency.s|RELTIME|none|integer part of latency, s (deprecated)
evt.latency.ns|RELTIME|none|fractional part of latency, ns (deprecated)
evt.latency.human|CHARBUF|none|latency as a human readable string (deprecated)
proc.exe|CHARBUF|none|first command-line argument (argv[0])
proc.pexe|CHARBUF|none|proc.exe of the parent
proc.aexe|CHARBUF|index|proc.exe of an ancestor (proc.aexe[1] is the parent); without index: any ancestor
proc.exepath|CHARBUF|none|full path of the executable
proc.pexepath|CHARBUF|none|proc.exepath of the parent
proc.aexepath|CHARBUF|index|proc.exepath of an ancestor; without index: any ancestor
proc.name|CHARBUF|none|name of the executable (comm)
proc.pname|CHARBUF|none|name of the parent
proc.aname|CHARBUF|index|name of an ancestor (proc.aname[1] is the parent); without index: any ancestor
proc.args|CHARBUF|none|command-line arguments (without the executable)
proc.aargs|CHARBUF|index|arguments of an ancestor
proc.cmdline|CHARBUF|none|name plus arguments
proc.pcmdline|CHARBUF|none|proc.cmdline of the parent
proc.acmdline|CHARBUF|index|proc.cmdline of an ancestor
proc.cmdnargs|UINT64|none|number of command-line arguments
proc.cmdlenargs|UINT64|none|total length of the command-line arguments
proc.exeline|CHARBUF|none|full command line with exe as first argument
proc.env|CHARBUF|optional|environment, or one variable (proc.env[HOME])
proc.aenv|CHARBUF|optional|environment of an ancestor (deprecated)
proc.cwd|CHARBUF|none|current working directory
proc.loginshellid|INT64|none|pid of the outermost shell ancestor
proc.tty|UINT32|none|controlling terminal, 0 for none
proc.pid|INT64|none|process id
proc.ppid|INT64|none|parent process id
proc.apid|INT64|index|pid of an ancestor
proc.vpid|INT64|none|pid as seen in its pid namespace
proc.pvpid|INT64|none|parent pid as seen in its pid namespace
proc.sid|INT64|none|session id
proc.sname|CHARBUF|none|name of the session leader
proc.sid.exe|CHARBUF|none|proc.exe of the session leader
proc.sid.exepath|CHARBUF|none|proc.exepath of the session leader
proc.vpgid|INT64|none|process group id as seen in its pid namespace
proc.vpgid.name|CHARBUF|none|name of the process group leader
proc.vpgid.exe|CHARBUF|none|proc.exe of the process group leader
proc.vpgid.exepath|CHARBUF|none|proc.exepath of the process group leader
proc.pgid|INT64|none|process group id
proc.pgid.name|CHARBUF|none|name of the process group leader (host namespace)
proc.pgid.exe|CHARBUF|none|proc.exe of the process group leader (host namespace)
proc.pgid.exepath|CHARBUF|none|proc.exepath of the process group leader (host namespace)
proc.duration|RELTIME|none|ns since the process started
proc.ppid.duration|RELTIME|none|ns since the parent started
proc.pid.ts|ABSTIME|none|start time of the process, ns from epoch
proc.ppid.ts|ABSTIME|none|start time of the parent, ns from epoch
proc.is_exe_writable|BOOL|none|true if the executable is writable by the process user
proc.is_exe_upper_layer|BOOL|none|true if the executable lives in the upper layer of an overlayfs
proc.is_exe_lower_layer|BOOL|none|true if the executable lives in a lower layer of an overlayfs
proc.is_exe_from_memfd|BOOL|none|true if the executable is a memfd
proc.is_sid_leader|BOOL|none|true if the process is its session leader
proc.is_vpgid_leader|BOOL|none|true if the process is its process group leader
proc.is_pgid_leader|BOOL|none|true if the process is its process group leader (host namespace)
proc.exe_ino|INT64|none|inode of the executable
proc.exe_ino.ctime|ABSTIME|none|ctime of the executable inode
proc.exe_ino.mtime|ABSTIME|none|mtime of the executable inode
proc.exe_ino.ctime_duration_proc_start|ABSTIME|none|ns between the executable ctime and the process start
proc.exe_ino.ctime_duration_pidns_start|ABSTIME|none|ns between the pid namespace start and the executable ctime
proc.pidns_init_start_ts|UINT64|none|start time of the pid namespace init process
proc.fdopencount|UINT64|none|number of open file descriptors
proc.fdlimit|INT64|none|maximum number of file descriptors
proc.fdusage|DOUBLE|none|open fds as a percentage of the limit
proc.vmsize|UINT64|none|virtual memory size, KiB
proc.vmrss|UINT64|none|resident memory size, KiB
proc.vmswap|UINT64|none|swapped memory size, KiB
proc.nthreads|UINT64|none|number of threads
proc.nchilds|UINT64|none|number of child threads
proc.stdin.type|CHARBUF|none|type of fd 0
proc.stdin.name|CHARBUF|none|name of fd 0
proc.stdout.type|CHARBUF|none|type of fd 1
proc.stdout.name|CHARBUF|none|name of fd 1
proc.stderr.type|CHARBUF|none|type of fd 2
proc.stderr.name|CHARBUF|none|name of fd 2
thread.cap_permitted|CHARBUF|none|permitted capabilities
thread.cap_inheritable|CHARBUF|none|inheritable capabilities
thread.cap_effective|CHARBUF|none|effective capabilities
thread.pfmajor|UINT64|none|major page faults
thread.pfminor|UINT64|none|minor page faults
thread.tid|INT64|none|thread id
thread.ismain|BOOL|none|true for the main thread of the process
thread.vtid|INT64|none|thread id as seen in its pid namespace
thread.nametid|CHARBUF|none|name and tid
thread.exectime|RELTIME|none|CPU time of the last scheduled run
thread.totexectime|RELTIME|none|total CPU time
thread.cgroups|CHARBUF|none|all cgroups of the thread
thread.cgroup|CHARBUF|key|the cgroup of one subsystem (thread.cgroup[cpuacct])
thread.cpu|DOUBLE|none|CPU usage
thread.cpu.user|DOUBLE|none|user CPU usage
thread.cpu.system|DOUBLE|none|system CPU usage
thread.vmsize|UINT64|none|virtual memory size, KiB
thread.vmsize.b|UINT64|none|virtual memory size, bytes
thread.vmrss|UINT64|none|resident memory size, KiB
thread.vmrss.b|UINT64|none|resident memory size, bytes
user.uid|UINT32|none|user id
user.name|CHARBUF|none|user name
user.homedir|CHARBUF|none|home directory
user.shell|CHARBUF|none|login shell
user.loginuid|INT64|none|audit login uid (-1 when unset)
user.loginname|CHARBUF|none|name of the login user
group.gid|UINT32|none|group id
group.name|CHARBUF|none|group name
fd.num|INT64|none|file descriptor number
fd.type|CHARBUF|none|file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, ...
fd.typechar|CHARBUF|none|one-letter fd type (f, 4, 6, u, p, e, s, l, i, b, m, ...)
fd.name|CHARBUF|none|full name (path, or connection tuple)
fd.directory|CHARBUF|none|directory of a file fd
fd.filename|CHARBUF|none|file name without the directory
fd.ip|IPADDR|none,any|IP of either end (matches when the client's or the server's does)
fd.cip|IPADDR|none|client IP
fd.sip|IPADDR|none|server IP
fd.lip|IPADDR|none|local IP
fd.rip|IPADDR|none|remote IP
fd.port|PORT|none,any|port of either end (matches when the client's or the server's does)
fd.cport|PORT|none|client port
fd.sport|PORT|none|server port
fd.lport|PORT|none|local port
fd.rport|PORT|none|remote port
fd.l4proto|CHARBUF|none|IP protocol (tcp, udp, icmp, raw)
fd.sockfamily|CHARBUF|none|socket family (ip, unix)
fd.is_server|BOOL|none|true if the process owning the fd is the server end
fd.uid|CHARBUF|none|unique fd id (pid and fd)
fd.containername|CHARBUF|none|container id plus fd.name
fd.containerdirectory|CHARBUF|none|container id plus fd.directory
fd.proto|CHARBUF|none,any|protocol (port name) of either end
fd.cproto|CHARBUF|none|client protocol
fd.sproto|CHARBUF|none|server protocol
fd.lproto|CHARBUF|none|local protocol
fd.rproto|CHARBUF|none|remote protocol
fd.net|IPNET|none,any|IP network of either end
fd.cnet|IPNET|none|client IP network
fd.snet|IPNET|none|server IP network
fd.lnet|IPNET|none|local IP network
fd.rnet|IPNET|none|remote IP network
fd.connected|BOOL|none|true for connected sockets
fd.name_changed|BOOL|none|true when the fd name changed with this event
fd.cip.name|CHARBUF|none|domain name of the client IP
fd.sip.name|CHARBUF|none|domain name of the server IP
fd.lip.name|CHARBUF|none|domain name of the local IP
fd.rip.name|CHARBUF|none|domain name of the remote IP
fd.dev|INT32|none|device number of the file
fd.dev.major|INT32|none|major device number
fd.dev.minor|INT32|none|minor device number
fd.ino|INT64|none|inode number
fd.nameraw|CHARBUF|none|fd name as passed to the syscall, not normalized
fd.types|CHARBUF|index,list|types of the fds of the event (poll and similar)
fd.is_upper_layer|BOOL|none|true if the file lives in the upper layer of an overlayfs
fd.is_lower_layer|BOOL|none|true if the file lives in a lower layer of an overlayfs
fdlist.nums|CHARBUF|none|fd numbers of poll events
fdlist.names|CHARBUF|none|fd names of poll events
fdlist.cips|CHARBUF|none|client IPs of poll events
fdlist.sips|CHARBUF|none|server IPs of poll events
fdlist.cports|CHARBUF|none|client ports of poll events
fdlist.sports|CHARBUF|none|server ports of poll events
fs.path.name|CHARBUF|none|path name of a file syscall (normalized)
fs.path.nameraw|CHARBUF|none|path name of a file syscall (as passed)
fs.path.source|CHARBUF|none|source path of link/rename syscalls
fs.path.sourceraw|CHARBUF|none|source path of link/rename syscalls (as passed)
fs.path.target|CHARBUF|none|target path of link/rename syscalls
fs.path.targetraw|CHARBUF|none|target path of link/rename syscalls (as passed)
container.id|CHARBUF|none|container id, 12 characters ("host" for host processes)
container.full_id|CHARBUF|none|full container id
container.name|CHARBUF|none|container name
container.image|CHARBUF|none|container image name
container.image.id|CHARBUF|none|container image id
container.type|CHARBUF|none|container runtime (docker, containerd, cri-o, podman, ...)
container.privileged|BOOL|none|true for privileged containers
container.mounts|CHARBUF|none|all mounts of the container
container.mount|CHARBUF|key|one mount, by index or source (a glob: the first mount that matches)
container.mount.source|CHARBUF|key|source of a mount, by index or destination (a glob)
container.mount.dest|CHARBUF|key|destination of a mount, by index or source (a glob)
container.mount.mode|CHARBUF|key|mode of a mount, by index or source (a glob)
container.mount.rdwr|CHARBUF|key|read/write flag of a mount, by index or source (a glob)
container.mount.propagation|CHARBUF|key|propagation of a mount, by index or source (a glob)
container.image.repository|CHARBUF|none|repository of the container image
container.image.tag|CHARBUF|none|tag of the container image
container.image.digest|CHARBUF|none|digest of the container image
container.start_ts|ABSTIME|none|container start time, ns from epoch
container.duration|RELTIME|none|ns since the container started
container.ip|CHARBUF|none|container IP address
container.cni.json|CHARBUF|none|CNI result of the container
container.host_pid|BOOL|none|true if the container shares the host pid namespace
container.host_network|BOOL|none|true if the container shares the host network namespace
container.host_ipc|BOOL|none|true if the container shares the host IPC namespace
container.label|CHARBUF|key|one container label
container.labels|CHARBUF|none|all container labels
container.healthcheck|CHARBUF|none|health check command (deprecated)
container.liveness_probe|CHARBUF|none|liveness probe command (deprecated)
container.readiness_probe|CHARBUF|none|readiness probe command (deprecated)
k8s.pod.name|CHARBUF|none|Kubernetes pod name
k8s.ns.name|CHARBUF|none|Kubernetes namespace name
k8s.pod.id|CHARBUF|none|Kubernetes pod uid (legacy name)
k8s.pod.uid|CHARBUF|none|Kubernetes pod uid
k8s.pod.sandbox_id|CHARBUF|none|pod sandbox id, 12 characters
k8s.pod.full_sandbox_id|CHARBUF|none|full pod sandbox id
k8s.pod.label|CHARBUF|key|one Kubernetes pod label
k8s.pod.labels|CHARBUF|none|all Kubernetes pod labels
k8s.pod.ip|CHARBUF|none|Kubernetes pod IP
k8s.pod.cni.json|CHARBUF|none|CNI result of the pod
"""


def _build() -> dict[str, FieldInfo]:
    out: dict[str, FieldInfo] = {}
    for line in _TABLE.strip().splitlines():
        name, ftype, arg, desc = line.split("|", 3)
        arg_kind, _, list_flag = arg.partition(",")
        assert ftype in TYPES and arg_kind in ARG_KINDS, line
        assert list_flag in ("", "list", "any"), line
        out[name] = FieldInfo(name, ftype, desc, arg_kind, list_flag == "list", list_flag == "any")
    return out


FIELDS: dict[str, FieldInfo] = _build()

_DOT_ARG_PREFIXES = ("evt.arg.", "evt.rawarg.")


def split_dot_arg(name: str) -> tuple[str, str | None]:
    """``evt.arg.flags`` -> (``evt.arg``, ``flags``); other names -> (name, None)."""
    for prefix in _DOT_ARG_PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            return prefix[:-1], name[len(prefix):]
    return name, None


def lookup(name: str) -> FieldInfo | None:
    """The FieldInfo of ``name`` (``evt.arg.<x>``/``evt.rawarg.<x>`` give evt.arg/evt.rawarg)."""
    info = FIELDS.get(name)
    if info is None:
        base, dot_arg = split_dot_arg(name)
        if dot_arg is not None:
            info = FIELDS.get(base)
    return info
