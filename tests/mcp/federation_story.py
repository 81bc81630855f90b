"""The federation story through the official MCP Python SDK, against two real instances.

Run by the Rust test `mcp::the_official_python_client_drives_the_story_on_two_instances`, which
starts A and B (API processes and workers) and passes, in the environment:
A_URL, A_TOKEN (manage + read), A_APPROVER (infra_tasks.control), B_URL, B_TOKEN, WORKER_TOKEN.
Exits non-zero on the first mismatch; prints one line per step.
"""

import asyncio
import json
import os
import sys
import time
from datetime import datetime, timezone

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

TOOLS = {
    "system_sdwan_propose_federation_peer",
    "system_sdwan_accept_federation_peer",
    "system_sdwan_revoke_federation_peer",
    "system_sdwan_list_federation_peers",
    "system_sdwan_get_federation_peer",
    "system_sdwan_federation_scan",
    "system_sdwan_diagnose_federation",
    "system_sdwan_list_approvals",
    "system_sdwan_get_approval",
    "system_sdwan_claim_approval_result",
    "platform_recent_events",
}

A_URL, B_URL = os.environ["A_URL"], os.environ["B_URL"]
A_TOKEN, B_TOKEN = os.environ["A_TOKEN"], os.environ["B_TOKEN"]
A_APPROVER, WORKER_TOKEN = os.environ["A_APPROVER"], os.environ["WORKER_TOKEN"]


def fail(message):
    print(f"FAIL: {message}", flush=True)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def client(base, token, mode):
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=60)
    return Client(streamable_http_client(f"{base}/mcp", http_client=http), mode=mode)


async def call(c, tool, args=None):
    result = await c.call_tool(tool, args or {})
    return result


def ok(result, what):
    if result.is_error:
        fail(f"{what}: {result.content[0].text}")
    return result.structured_content


async def rest(base, token, method, path, body=None, worker=False):
    headers = {"X-Worker-Token": token} if worker else {"Authorization": f"Bearer {token}"}
    async with httpx2.AsyncClient(timeout=60) as http:
        response = await http.request(method, f"{base}{path}", headers=headers, json=body)
    data = response.json()
    check(data.get("success"), f"{method} {path}: {response.status_code} {data}")
    return data["data"]


async def approve_and_tick(request_id):
    await rest(A_URL, A_APPROVER, "POST", f"/api/v1/ai/autonomy/approvals/{request_id}/approve",
               {"comments": "approved by the MCP story"})
    tick = await rest(A_URL, WORKER_TOKEN, "POST", "/api/v1/system/worker_api/sdwan_manager/tick",
                      worker=True)
    return tick


async def connect_in_both_modes():
    for mode in ("legacy", "auto"):
        async with client(A_URL, A_TOKEN, mode) as c:
            tools = await c.list_tools()
            names = {t.name for t in tools.tools}
            check(names == TOOLS, f"[{mode}] tools: {sorted(names)}")
            check(all(t.output_schema for t in tools.tools), f"[{mode}] every tool has an output schema")
            check("system_sdwan_accept_federation_peer" in (c.instructions or ""),
                  f"[{mode}] instructions")
            print(f"[{mode}] connected: protocol {c.protocol_version}, {len(names)} tools, "
                  f"server {c.server_info.name if c.server_info else '?'}", flush=True)


def leaves(error):
    """The MCPErrors inside (possibly nested) exception groups."""
    if isinstance(error, BaseExceptionGroup):
        return [leaf for e in error.exceptions for leaf in leaves(e)]
    return [error]


async def wrong_token():
    seen = []
    try:
        async with client(A_URL, "pnop_not_a_token", "legacy") as c:
            await c.list_tools()
    except* MCPError as group:
        seen.extend(leaves(group))
    check(seen, "a wrong token was accepted")
    error = seen[0]
    code = getattr(error, "code", None) or getattr(getattr(error, "error", None), "code", None)
    message = str(error)
    check(code == -32001, f"wrong token: code {code} ({message})")
    check("Invalid or disabled operator token" in message, f"wrong token: {message}")
    print(f"wrong token: MCPError {code}: {message}", flush=True)


async def story():
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    async with client(A_URL, A_TOKEN, "legacy") as a, client(B_URL, B_TOKEN, "auto") as b:
        # 1. Propose on A (its propose policy is relaxed for this step).
        proposed = ok(await call(a, "system_sdwan_propose_federation_peer",
                                 {"remote_instance_url": os.environ["B_PUBLIC_URL"],
                                  "spawn_role": "parent", "idempotency_key": "story-propose-1"}),
                      "propose")
        check(proposed["approval_required"] is False, f"propose: {proposed}")
        token = proposed["acceptance_token"]
        check(token.startswith("pnfa1_"), "propose: a pnfa1_ token")
        a_peer = proposed["peer"]["id"]
        print(f"propose on A: peer {a_peer} {proposed['peer']['status']}, token pnfa1_… (shown once)",
              flush=True)

        # 2. Accept on B with the token, as the runbook says.
        accepted = await call(b, "system_sdwan_accept_federation_peer", {"acceptance_token": token})
        body = ok(accepted, "accept")
        b_peer = body["peer"]["id"]
        print("accept on B: isError=%s approval_required=%s peer=%s status=%s remote_instance_url=%s"
              % (accepted.is_error, body["approval_required"], b_peer, body["peer"]["status"],
                 body["peer"]["remote_instance_url"]), flush=True)
        check(body["peer"]["status"] == "accepted", f"accept: {body['peer']['status']}")

        # 3. The workers handshake and heartbeat: both sides active.
        deadline = time.monotonic() + 120
        while True:
            pa = ok(await call(a, "system_sdwan_list_federation_peers", {"limit": 10}), "list A")
            pb = ok(await call(b, "system_sdwan_list_federation_peers", {"limit": 10}), "list B")
            sa, sb = pa["peers"][0]["status"], pb["peers"][0]["status"]
            if sa == "active" and sb == "active":
                break
            check(time.monotonic() < deadline, f"both active within 120 s (A {sa}, B {sb})")
            await asyncio.sleep(0.5)
        print("both active: A sees %s, B sees %s" % (sa, sb), flush=True)
        got = ok(await call(a, "system_sdwan_get_federation_peer", {"peer_id": a_peer}), "get")
        check(got["heartbeat_stale"] is False and got["degraded_reason"] is None, f"get: {got}")
        print(f"get on A: {got['status']}, heartbeat_stale={got['heartbeat_stale']}, "
              f"certificates={'yes' if got.get('certificates') else 'no'}", flush=True)

        # 4. Events, filtered by source and since.
        events = ok(await call(a, "platform_recent_events",
                               {"source": "accept_controller", "since": since}), "events")["events"]
        kinds = [e["kind"] for e in events]
        check("federation.peer.accepted" in kinds, f"events: {kinds}")
        print(f"recent events on A (accept_controller since {since}): {kinds}", flush=True)

        # 5. Governance scan and the doctor.
        report = ok(await call(a, "system_sdwan_federation_scan", {}), "scan")
        check(report["trigger"] == "mcp", f"scan trigger {report['trigger']}")
        print(f"scan on A: report {report['id']}, {len(report['findings'])} finding(s), "
              f"counts {json.dumps(report['counts'])}", flush=True)
        diagnosis = ok(await call(a, "system_sdwan_diagnose_federation", {"peer_id": a_peer}),
                       "diagnose")
        statuses = {c["check"]: c["status"] for c in diagnosis["checks"]}
        check(statuses["peer.handshake"] == "ok" and statuses["peer.outbound"] == "ok",
              f"diagnose: {statuses}")
        print(f"diagnose on A: {diagnosis['status']} {statuses}", flush=True)

        # 6. Revoke: gated, approved by a second operator, executed on the tick.
        queued = ok(await call(a, "system_sdwan_revoke_federation_peer",
                               {"peer_id": a_peer, "reason": "end of the MCP story"}), "revoke")
        check(queued["approval_required"] is True, f"revoke: {queued}")
        request = queued["approval_request"]["id"]
        print(f"revoke on A: {queued['message']} ({request})", flush=True)
        listed = ok(await call(a, "system_sdwan_list_approvals", {}), "approvals")["approvals"]
        check(any(r["id"] == request for r in listed), "the revoke is pending")
        tick = await approve_and_tick(request)
        check(tick["executed"] == 1, f"tick: {tick}")
        done = ok(await call(a, "system_sdwan_get_approval", {"approval_request_id": request}),
                  "get approval")
        check(done["execution_status"] == "succeeded", f"approval: {done}")
        gone = ok(await call(a, "system_sdwan_get_federation_peer", {"peer_id": a_peer}), "get")
        check(gone["status"] == "revoked", f"after revoke: {gone['status']}")
        print(f"after approve + tick: request {done['execution_status']}, peer {gone['status']}",
              flush=True)

        # 7. A gated propose, collected with system_sdwan_claim_approval_result.
        await rest(A_URL, A_TOKEN, "PUT",
                   "/api/v1/ai/autonomy/policies/system.federation_peer_propose",
                   {"policy": "require_approval", "timeout_seconds": 14400, "timeout_action": "reject"})
        queued = ok(await call(a, "system_sdwan_propose_federation_peer",
                               {"remote_instance_url": "https://platform-c.example.com",
                                "spawn_role": "child"}), "gated propose")
        check(queued["approval_required"] is True, f"gated propose: {queued}")
        request = queued["approval_request"]["id"]
        await approve_and_tick(request)
        claimed = ok(await call(a, "system_sdwan_claim_approval_result",
                                {"approval_request_id": request}), "claim")
        check(claimed["acceptance_token"].startswith("pnfa1_"), "claim: a token")
        again = await call(a, "system_sdwan_claim_approval_result", {"approval_request_id": request})
        check(again.is_error and again.content[0].text == "409 CONFLICT: result already claimed",
              f"second claim: {again.content[0].text}")
        print(f"gated propose: {queued['message']}; claimed pnfa1_… once; "
              f"again: isError {again.content[0].text}", flush=True)


async def main():
    await connect_in_both_modes()
    await wrong_token()
    await story()
    print("ALL OK", flush=True)


asyncio.run(main())
