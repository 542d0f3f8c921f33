# Drives one server through a fixed tutorial-protocol scenario and prints what each client
# received (type, client_id, message, field names; timestamps only checked for ISO 8601 shape),
# so our server and the FastAPI tutorial's can be compared line by line:
#
#   cp -r ../shared/bench/fastapi-tutorial /tmp/ && /tmp/fastapi-tutorial/run.sh 18301 &
#   cargo run -p chat-mio-server -- --bind 127.0.0.1:18302 &
#   PY=/tmp/fastapi-tutorial/.venv/bin/python        # has the `websockets` package
#   diff <($PY tools/compare_with_tutorial.py ws://127.0.0.1:18301/ws/) \
#        <($PY tools/compare_with_tutorial.py ws://127.0.0.1:18302/ws/)
import asyncio, json, re, sys
import websockets

URL = sys.argv[1]
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?$")

async def recv_n(ws, n):
    out = []
    for _ in range(n):
        m = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert TS.match(m["timestamp"]), m["timestamp"]
        out.append((m["type"], m["client_id"], m["message"], sorted(m.keys())))
    return out

async def main():
    log = {}
    alice = await websockets.connect(URL + "alice")
    log["alice"] = await recv_n(alice, 1)
    bob = await websockets.connect(URL + "bob")
    log["alice"] += await recv_n(alice, 1)
    log["bob"] = await recv_n(bob, 1)
    await alice.send("hi <b>bob</b> 🎉")
    log["alice"] += await recv_n(alice, 1)
    log["bob"] += await recv_n(bob, 1)
    await bob.send("")
    log["alice"] += await recv_n(alice, 1)
    log["bob"] += await recv_n(bob, 1)
    await bob.close()
    log["alice"] += await recv_n(alice, 1)
    await alice.close()
    for k, v in log.items():
        for f in v:
            print(k, f)

asyncio.run(main())
