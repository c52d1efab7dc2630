# SPDX-License-Identifier: Apache-2.0
"""Errors of the CRI transport: a failed call carries its gRPC status code."""

from __future__ import annotations

__all__ = ["CRIError", "ProtocolError", "GRPC_NOT_FOUND", "GRPC_UNIMPLEMENTED", "GRPC_UNAVAILABLE"]

# gRPC status codes used here
GRPC_NOT_FOUND, GRPC_UNIMPLEMENTED, GRPC_UNAVAILABLE = 5, 12, 14


class CRIError(Exception):
    """A failed call: ``code`` is the gRPC status (None for transport errors)."""

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        self.code = code


class ProtocolError(CRIError):
    """Bytes that break the protobuf, HPACK or HTTP/2 rules (the connection is dropped)."""
