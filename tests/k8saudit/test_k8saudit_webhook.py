# SPDX-License-Identifier: Apache-2.0
"""The k8saudit webhook, served for real on 127.0.0.1 and driven by a real HTTP client
(http.client, raw sockets, TLS with an openssl-made certificate)."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import threading

import pytest

from k8sauditkit import drain, post, raw_request
from pyfalco.generator import k8saudit as gen
from pyfalco.plugins.api import PluginError
from pyfalco.plugins.k8saudit import K8sAuditPlugin


def open_hook(config: dict | None = None, params: str = "http://127.0.0.1:0/k8s-audit"):
    p = K8sAuditPlugin()
    p.init(json.dumps(config or {}))
    return p.open(params)


@pytest.fixture
def hook():
    inst = open_hook()
    yield inst
    inst.close()


def test_event_eventlist_and_array_bodies(hook):
    evs = gen.privileged_pod() + gen.exec_pod() + gen.cluster_admin_binding()
    assert post(hook.port, evs[0]) == (200, "")                        # one Event
    assert post(hook.port, gen.event_list(evs[1:]))[0] == 200           # an EventList
    assert post(hook.port, [evs[0], gen.event_list(evs[1:2])])[0] == 200  # an array of both
    got = drain(hook, 5)
    assert [json.loads(d)["auditID"] for _, d in got] == \
        [e["auditID"] for e in [evs[0], evs[1], evs[2], evs[0], evs[1]]]
    assert all(isinstance(ts, int) and ts > 0 for ts, _ in got)
    assert hook.stats()["accepted_events"] == 5 and hook.stats()["requests"] == 3
    assert hook.next_batch(0.05) == []        # nothing more: an empty batch, not the end


def test_malformed_bodies_are_400_counted_and_the_hook_goes_on(hook):
    assert post(hook.port, b"{not json")[0] == 400
    assert post(hook.port, {"kind": "Pod", "metadata": {}})[0] == 400            # JSON, not audit events
    assert post(hook.port, b"\xff\xfe garbage")[0] == 400
    assert post(hook.port, json.dumps([1, 2]))[0] == 400
    assert post(hook.port, gen.privileged_pod()[0], content_type="text/plain")[0] == 400
    assert hook.stats()["bad_requests"] == 5
    # deep nesting is a 400, not a crash of the worker
    assert post(hook.port, "[" * 100000 + "]" * 100000)[0] == 400
    assert post(hook.port, gen.event_list(gen.exec_pod()))[0] == 200
    assert len(drain(hook, 1)) == 1


def test_bad_single_events_are_skipped_and_counted():
    inst = open_hook({"maxEventSize": 4096})
    try:
        good = gen.exec_pod()[0]
        no_ts = dict(good)
        del no_ts["stageTimestamp"]
        huge = dict(good, requestObject={"blob": "x" * 8000})
        status, _ = post(inst.port, gen.event_list([no_ts, good, huge]))
        assert status == 200
        got = drain(inst, 1)
        assert [json.loads(d)["auditID"] for _, d in got] == [good["auditID"]]
        assert inst.stats()["skipped_events"] == 2
    finally:
        inst.close()


def test_oversized_body_is_refused_with_413():
    inst = open_hook({"webhookMaxBatchSize": 10000})
    try:
        big = gen.event_list(gen.privileged_pod() * 40)
        status, text = post(inst.port, big)
        assert status == 413 and "10000" in text
        assert inst.stats()["oversized"] == 1
        assert inst.next_batch(0.05) == []
        assert post(inst.port, gen.event_list(gen.exec_pod()))[0] == 200     # still serving
    finally:
        inst.close()


def test_methods_paths_and_lengths(hook):
    assert post(hook.port, b"", method="GET", content_type=None)[0] == 405
    assert post(hook.port, gen.exec_pod()[0], path="/other")[0] == 404
    # no Content-Length: 411; a lying Content-Length: the client's problem, no answer, no crash
    no_len = b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n{}"
    assert raw_request(hook.port, no_len, shutdown=True).startswith(b"HTTP/1.0 411")
    short = b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 500\r\n\r\n{}"
    assert raw_request(hook.port, short, shutdown=True) == b""
    # a reset in the middle of a body
    with socket.create_connection(("127.0.0.1", hook.port)) as s:
        s.sendall(short)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert post(hook.port, gen.event_list(gen.exec_pod()))[0] == 200
    assert len(drain(hook, 1)) == 1


def test_concurrent_clients_all_get_their_events_in(hook):
    per, threads = 20, 6
    errors: list = []

    def client():
        try:
            for _ in range(per):
                assert post(hook.port, gen.event_list(gen.exec_pod() + gen.benign_events()))[0] == 200
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    got: list = []
    while any(t.is_alive() for t in ts) or len(got) < per * threads * 5:
        batch = hook.next_batch(0.5)
        if not batch and not any(t.is_alive() for t in ts):
            break
        got.extend(batch)
    for t in ts:
        t.join()
    assert not errors
    assert len(got) == per * threads * 5 == hook.stats()["accepted_events"]
    assert len({json.loads(d)["auditID"] for _, d in got}) == len(got)


def test_custom_fields_from_headers():
    inst = open_hook({"customFieldsHeaders": [
        {"header": "X-Cluster", "customFields": ["cluster_name"]},
        {"header": "X-Cert", "pattern": "OU=([a-z]+),OU=([a-z]+)", "customFields": ["division", "team"]}]})
    try:
        status, _ = post(inst.port, gen.exec_pod()[0], headers={"X-Cluster": "prod-eu", "X-Cert": "CN=x,OU=cheese,OU=pack"})
        assert status == 200
        (_, data), = drain(inst, 1)
        doc = json.loads(data)
        assert (doc["cluster_name"], doc["division"], doc["team"]) == ("prod-eu", "cheese", "pack")
        assert K8sAuditPlugin().extract(_evt(data), "ka.cluster.name", None) == "prod-eu"
    finally:
        inst.close()


def _evt(data: bytes):
    from pyfalco.plugins.api import PluginEvent
    return PluginEvent(1, 1, 1, "k8s_audit", bytes(data))


def test_https_with_the_init_config_certificate(tmp_path):
    key, cert = tmp_path / "k.pem", tmp_path / "c.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    pem = tmp_path / "falco.pem"     # k8saudit's sslCertificate: certificate and key in one file
    pem.write_bytes(cert.read_bytes() + key.read_bytes())
    inst = open_hook({"sslCertificate": str(pem)}, "https://127.0.0.1:0/k8s-audit")
    try:
        ctx = ssl.create_default_context(cafile=str(cert))
        assert post(inst.port, gen.event_list(gen.cluster_admin_binding()), tls=ctx)[0] == 200
        assert len(drain(inst, 1)) == 1
        with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
            post(inst.port, gen.exec_pod()[0])        # plain HTTP to the TLS port is not served
        assert post(inst.port, gen.event_list(gen.exec_pod()), tls=ctx)[0] == 200
    finally:
        inst.close()


def test_open_errors_name_the_plugin(tmp_path):
    p = K8sAuditPlugin()
    p.init("")
    with pytest.raises(PluginError, match="k8saudit.*not supported"):
        p.open("ftp://x/y")
    with pytest.raises(PluginError, match="k8saudit.*cannot read"):
        p.open(str(tmp_path / "missing.json"))
    tls = K8sAuditPlugin()
    tls.init(json.dumps({"sslCertificate": str(tmp_path / "none.pem")}))
    with pytest.raises(PluginError, match="k8saudit.*cannot serve"):
        tls.open("https://127.0.0.1:0/k8s-audit")
    busy = open_hook()
    try:
        with pytest.raises(PluginError, match="cannot serve"):
            p.open(f"http://127.0.0.1:{busy.port}/k8s-audit")
    finally:
        busy.close()
    for bad in ('{"maxEventSize": -1}', '{"webhookMaxBatchSize": "big"}', "[1]", "{oops",
                '{"customFieldsHeaders": [{"header": "X"}]}'):
        with pytest.raises(PluginError, match="k8saudit.*init_config"):
            K8sAuditPlugin().init(bad)


def test_a_full_queue_is_answered_503_and_counted():
    from pyfalco.plugins.k8saudit import AuditWebhook
    hook = AuditWebhook("127.0.0.1", 0, "/k8s-audit", queue_requests=1, request_timeout=1.5).start()
    try:
        body = gen.event_list(gen.exec_pod())
        assert post(hook.port, body)[0] == 200          # queued, nobody reads
        status, text = post(hook.port, body)             # waits up to the request deadline
        assert status == 503 and "retry" in text
        assert hook.stats()["dropped_requests"] == 1 and hook.stats()["accepted_events"] == 1
        assert len(hook.events.get_nowait()) == 1
        assert post(hook.port, body)[0] == 200           # room again
    finally:
        hook.stop()


def test_chunked_bodies():
    inst = open_hook({"webhookMaxBatchSize": 20000})
    try:
        body = json.dumps(gen.event_list(gen.exec_pod() + gen.benign_events())).encode()
        parts = [body[i:i + 700] for i in range(0, len(body), 700)]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\nX-Trailer: 1\r\n\r\n"
        head = b"POST /k8s-audit HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        assert raw_request(inst.port, head + chunked).startswith(b"HTTP/1.0 200")
        assert len(drain(inst, 5)) == 5
        big = json.dumps(gen.event_list(gen.privileged_pod() * 40)).encode()
        big_chunked = b"".join(b"%x\r\n%s\r\n" % (len(big[i:i + 4000]), big[i:i + 4000])
                               for i in range(0, len(big), 4000)) + b"0\r\n\r\n"
        assert raw_request(inst.port, head + big_chunked, shutdown=True).startswith(b"HTTP/1.0 413")
        assert raw_request(inst.port, head + b"zz\r\nxx\r\n", shutdown=True).startswith(b"HTTP/1.0 400")
        assert raw_request(inst.port, head + b"10\r\nshort", shutdown=True).startswith(b"HTTP/1.0 400")
        gz = head.replace(b"chunked", b"gzip")
        assert raw_request(inst.port, gz + b"x", shutdown=True).startswith(b"HTTP/1.0 400")
        assert inst.stats()["oversized"] == 1 and inst.stats()["bad_requests"] == 3
        assert post(inst.port, gen.event_list(gen.exec_pod()))[0] == 200
    finally:
        inst.close()
