# SPDX-License-Identifier: Apache-2.0
"""Falco's ``k8saudit`` plugin, built in: the ``k8s_audit`` event source (webhook or files) and its
``ka.*`` fields. ``library_path: libk8saudit.so`` resolves here when no such file exists.

See docs/k8s-audit.md for the kube-apiserver side and the configuration.
"""

from .fields import KA_FIELDS, compile_field
from .payload import AuditPayload, PayloadError, parse_payload, parse_timestamp
from .plugin import FileInstance, K8sAuditPlugin, WebhookInstance, event_doc
from .webhook import AuditWebhook

__all__ = ["K8sAuditPlugin", "WebhookInstance", "FileInstance", "AuditWebhook", "KA_FIELDS", "compile_field",
           "AuditPayload", "PayloadError", "parse_payload", "parse_timestamp", "event_doc"]
