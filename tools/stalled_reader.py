# Opens one WebSocket to the chat (tutorial protocol) and never reads; holds it for N seconds.
# Usage: python3 tools/stalled_reader.py PORT SECONDS   (see BENCHMARKS.md, "stalled reader")
import base64, os, socket, sys, time
port, hold = int(sys.argv[1]), float(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
key = base64.b64encode(os.urandom(16)).decode()
s.sendall(f"GET /ws/stalled HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n".encode())
time.sleep(hold)
