"""A tiny app of your own: an HTTP server that takes a moment to boot, like a real one.

edge runs it as a process machine: it listens on $FLY_PRIVATE_IP:$PORT and says who it is.
"""

import http.server
import json
import os
import time

print(f"booting {os.environ['FLY_MACHINE_ID']} in {os.environ['FLY_REGION']}", flush=True)
time.sleep(0.4)  # loading config, warming caches ...


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = (
            json.dumps(
                {
                    "machine": os.environ["FLY_MACHINE_ID"],
                    "region": os.environ["FLY_REGION"],
                    "pid": os.getpid(),
                    "path": self.path,
                }
            ).encode()
            + b"\n"
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:
        print("request:", fmt % args, flush=True)


address = (os.environ["FLY_PRIVATE_IP"], int(os.environ["PORT"]))
print(f"listening on {address[0]}:{address[1]}", flush=True)
try:
    http.server.HTTPServer(address, Handler).serve_forever()
except KeyboardInterrupt:  # edge stops a machine with its kill_signal, SIGINT here
    print("SIGINT: shutting down", flush=True)
