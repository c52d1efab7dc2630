# SPDX-License-Identifier: Apache-2.0
"""Wire layers of the CRI client (``runtime.v1.RuntimeService``) over a unix socket, stdlib only.

The Container Runtime Interface is gRPC: protobuf messages in HTTP/2 (cleartext, with prior
knowledge) on the runtime's unix socket (containerd: ``/run/containerd/containerd.sock``, CRI-O:
``/var/run/crio/crio.sock``). One module per layer, each importing only the ones below it:

* errors.py: CRIError (with the gRPC status) and ProtocolError;
* protobuf.py: the protobuf wire format;
* hpack.py: HPACK header compression (RFC 7541);
* http2.py: HTTP/2 framing (RFC 9113) and gRPC unary calls.

The CRI client on top of them is ``pyfalco.state.cri``.
"""
