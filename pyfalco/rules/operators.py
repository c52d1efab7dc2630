# SPDX-License-Identifier: Apache-2.0
"""Runtime semantics of operators and transformers, shared by compiler.py and interpreter.py.

Values have a *kind* derived from the field type: ``str``, ``num``, ``bool``, ``ip``, ``bytes`` or
``dyn`` (raw arguments, compared as numbers when the literal is a number). A missing value is None
and makes every comparison false (``exists`` excepted), as Falco's missing values do.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import math
import re
from functools import lru_cache

__all__ = [
    "kind_of", "ALLOWED_OPS", "LiteralError", "convert_literal", "parse_number",
    "to_ip", "pmatch", "normalize_prefix",
    "glob_matcher", "regex_matcher", "apply_scalar", "TRANSFORMS", "transform_kind", "ip_match", "to_bytes",
]

_NUM_TYPES = frozenset((
    "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64", "ERRNO", "FD", "PID",
    "RELTIME", "ABSTIME", "PORT", "DOUBLE", "UID", "GID", "FLAGS8", "FLAGS16", "FLAGS32", "MODE",
    "SIGTYPE", "SYSCALLID", "L4PROTO", "SOCKFAMILY",
))
_IP_TYPES = frozenset(("IPADDR", "IPNET", "IPV4ADDR", "IPV4NET", "IPV6ADDR", "IPV6NET"))

_CMP = frozenset(("=", "==", "!=", "exists", "in", "intersects"))
ALLOWED_OPS = {
    "str": frozenset(("=", "==", "!=", "<", "<=", ">", ">=", "contains", "icontains", "bcontains",
                      "startswith", "bstartswith", "endswith", "glob", "iglob", "regex", "in",
                      "intersects", "pmatch", "exists")),
    "num": _CMP | {"<", "<=", ">", ">="},
    "bool": _CMP,
    "ip": _CMP,
    "bytes": frozenset(("=", "==", "!=", "contains", "bcontains", "startswith", "bstartswith",
                        "endswith", "exists")),
    "dyn": _CMP | {"<", "<=", ">", ">=", "contains", "startswith", "endswith"},
}


def kind_of(ftype: str) -> str:
    if ftype in _NUM_TYPES:
        return "num"
    if ftype == "BOOL":
        return "bool"
    if ftype in _IP_TYPES:
        return "ip"
    if ftype == "BYTEBUF":
        return "bytes"
    if ftype == "DYN":
        return "dyn"
    return "str"


class LiteralError(ValueError):
    """A literal that cannot be read as the type of the field it is compared with."""


# libsinsp's number literals: a decimal or hex integer, a decimal optionally with a fraction and
# an exponent (the exponent has a sign: ``1e+3``, not ``1e3``). Nothing else: no inf/nan, no
# ``1_000``, no blanks; an integer must fit the 64 bits of the widest field types.
_NUMBER = re.compile(r"[+\-]?(?:(0[xX][0-9a-fA-F]+)|[0-9]+(\.[0-9]*)?([eE][+\-][0-9]+)?)\Z")
INT64_MIN, UINT64_MAX = -(1 << 63), (1 << 64) - 1


def parse_number(text: str) -> int | float:
    """The value of a number literal (see ``_NUMBER``): an int (within 64 bits), or a finite
    float when it has a fraction. Raises LiteralError for anything else."""
    m = _NUMBER.match(text)
    if m is None:
        raise LiteralError(f"'{text}' is not a valid number")
    if m.group(1):
        value: int | float = int(text, 16)
    elif m.group(2) is None and m.group(3) is None:
        value = int(text, 10)
    else:
        value = float(text)
        if not math.isfinite(value):  # 1e+999
            raise LiteralError(f"'{text}' is out of the range of 64-bit floating point numbers")
        if value.is_integer() and INT64_MIN <= value <= UINT64_MAX:
            value = int(value)
        return value
    if not INT64_MIN <= value <= UINT64_MAX:
        raise LiteralError(f"'{text}' is out of the range of 64-bit numbers")
    return value


def convert_literal(kind: str, op: str, text: str):
    """The runtime value of a literal compared with a value of ``kind`` by ``op``."""
    if op in ("bcontains", "bstartswith"):
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise LiteralError(f"'{text}' is not a valid hex string for '{op}'") from None
    if kind == "num":
        # libsinsp reads a literal for a narrower field type as 64 bits and truncates it; here
        # it keeps its value (``fd.lport < 100000`` holds for every port)
        return parse_number(text)
    if kind == "bool":
        low = text.lower()
        if low in ("true", "1"):
            return True
        if low in ("false", "0"):
            return False
        raise LiteralError(f"'{text}' is not a valid boolean (true or false)")
    if kind == "ip":
        try:
            if "/" in text:
                return ipaddress.ip_network(text, strict=False)
            return ipaddress.ip_address(text)
        except ValueError:
            raise LiteralError(f"'{text}' is not a valid IP address or network") from None
    if kind == "bytes":
        return text.encode("utf-8", "surrogateescape")
    if kind == "dyn":
        try:
            return parse_number(text)
        except LiteralError:
            return text
    return text


# ---- value helpers --------------------------------------------------------------------------

@lru_cache(maxsize=4096)
def _parse_ip(text: str):
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def to_ip(value):
    if value is None or isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return value
    if isinstance(value, str):
        return _parse_ip(value)
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return ipaddress.ip_address(value)
        except ValueError:
            return None
    if isinstance(value, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return value.network_address
    return None


def ip_match(value, target) -> bool:
    """``value`` (an address) equals ``target`` (an address) or lies inside it (a network)."""
    addr = to_ip(value)
    if addr is None:
        return False
    if isinstance(target, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
        return addr in target
    return addr == target


class IpTargets:
    """The addresses and networks of one ``in``/``intersects`` list over an ip field, with the
    answers for recent addresses kept (events name the same few addresses again and again)."""

    __slots__ = ("targets", "_seen")

    def __init__(self, targets: tuple) -> None:
        self.targets = targets
        self._seen: dict = {}

    def __repr__(self) -> str:
        return repr(self.targets)

    def has(self, value) -> bool:
        """``any(ip_match(value, t) for t in targets)``."""
        addr = to_ip(value)
        if addr is None:
            return False
        seen = self._seen
        hit = seen.get(addr)
        if hit is None:
            hit = False
            for t in self.targets:
                if isinstance(t, (ipaddress.IPv4Network, ipaddress.IPv6Network)):
                    if addr in t:
                        hit = True
                        break
                elif addr == t:
                    hit = True
                    break
            if len(seen) >= 1024:
                seen.clear()
            seen[addr] = hit
        return hit


def ip_in(value, targets: IpTargets) -> bool:
    return targets.has(value)


def to_bytes(value) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8", "surrogateescape")


def normalize_prefix(path: str) -> str:
    return path.rstrip("/") or "/" if path.startswith("/") else path.rstrip("/")


def pmatch(path, prefixes) -> bool:
    """True if ``path`` equals one of ``prefixes`` or lies below one (path-component wise)."""
    if path is None:
        return False
    if path in prefixes:
        return True
    i = path.rfind("/")
    while i > 0:
        path = path[:i]
        if path in prefixes:
            return True
        i = path.rfind("/")
    return i == 0 and "/" in prefixes


def glob_matcher(pattern: str, ignore_case: bool):
    """A ``match`` callable for shell wildcards (``*`` also matches '/', like fnmatch(3))."""
    return re.compile(fnmatch.translate(pattern), re.IGNORECASE if ignore_case else 0).match


def regex_matcher(pattern: str):
    """A ``fullmatch`` callable: Falco's regex is anchored at both ends. Raises re.error."""
    return re.compile(pattern).fullmatch


def apply_scalar(op: str, kind: str, lhs, rhs) -> bool:
    """``lhs op rhs`` for one non-missing left value and a converted right value (reference semantics)."""
    if kind == "ip" and op in ("=", "==", "!="):
        hit = ip_match(lhs, rhs)
        return hit if op != "!=" else (to_ip(lhs) is not None and not hit)
    if kind == "dyn" and isinstance(rhs, str) and not isinstance(lhs, str):
        lhs = str(lhs)
    if op in ("=", "=="):
        return lhs == rhs
    if op == "!=":
        return lhs != rhs
    if op in ("<", "<=", ">", ">="):
        if type(lhs) is not type(rhs) and not (isinstance(lhs, (int, float)) and isinstance(rhs, (int, float))):
            return False
        return {"<": lhs < rhs, "<=": lhs <= rhs, ">": lhs > rhs, ">=": lhs >= rhs}[op]
    if op == "contains":
        return rhs in lhs if not isinstance(lhs, bytes) else to_bytes(rhs) in lhs
    if op == "icontains":
        return rhs.lower() in lhs.lower()
    if op == "startswith":
        return lhs.startswith(rhs)
    if op == "endswith":
        return lhs.endswith(rhs)
    if op == "bcontains":
        return rhs in to_bytes(lhs)
    if op == "bstartswith":
        return to_bytes(lhs).startswith(rhs)
    if op == "glob":
        return fnmatch.fnmatchcase(lhs, rhs)
    if op == "iglob":
        return fnmatch.fnmatchcase(lhs.lower(), rhs.lower())
    if op == "regex":
        try:
            return re.fullmatch(rhs, lhs) is not None
        except re.error:  # a pattern taken from the event itself (val())
            return False
    raise ValueError(f"not a scalar operator: {op}")


# ---- transformers ------------------------------------------------------------------------------

def _each(fn):
    def apply(value):
        if value is None:
            return None
        if isinstance(value, tuple):
            return tuple(fn(v) for v in value if v is not None)
        return fn(value)
    apply.__name__ = fn.__name__
    return apply


def _as_str(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    return value if isinstance(value, str) else str(value)


@_each
def t_tolower(value):
    return _as_str(value).lower()


@_each
def t_toupper(value):
    return _as_str(value).upper()


@_each
def t_basename(value):
    return _as_str(value).rpartition("/")[2]


def t_b64(value):
    if value is None:
        return None
    if isinstance(value, tuple):
        return tuple(x for x in (t_b64(v) for v in value) if x is not None)
    try:
        return base64.b64decode(to_bytes(value), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None


def t_len(value):
    if value is None:
        return None
    if isinstance(value, (str, bytes, bytearray, tuple)):
        return len(value)
    return len(str(value))


def _flat(values):
    for v in values:
        if isinstance(v, tuple):
            yield from (x for x in v if x is not None)
        elif v is not None:
            yield v


def t_join(sep, *values):
    """Values joined with ``sep``; missing values are skipped, all missing gives None."""
    parts = [_as_str(v) for v in _flat(values)]
    return sep.join(parts) if parts else None


def t_concat(*values):
    """Values concatenated; any missing value makes the result missing."""
    if any(v is None for v in values):
        return None
    return "".join(_as_str(v) if not isinstance(v, tuple) else ",".join(map(_as_str, v)) for v in values)


TRANSFORMS = {
    "tolower": t_tolower, "toupper": t_toupper, "basename": t_basename, "b64": t_b64,
    "len": t_len, "join": t_join, "concat": t_concat,
}


def transform_kind(name: str) -> str:
    return "num" if name == "len" else "str"
