#!/usr/bin/python3
"""libyal's libqcow (Debian's python3-libqcow, module pyqcow) behind the
qcow2-verify adapter protocol, version 1 (docs/protocol.md): a read-only
implementation. One JSON request per stdin line, one JSON answer per stdout
line, in order; logs go to stderr.

Run it with Debian's own interpreter (/usr/bin/python3), which is the one
python3-libqcow installs the module for.
"""
import base64
import json
import sys

import pyqcow

PROTOCOL = 1


class Adapter:
    def __init__(self):
        self.image = None

    def close_image(self):
        if self.image is not None:
            image, self.image = self.image, None
            image.close()

    def handle(self, request):
        op = request.get("op")
        if op == "hello":
            return {
                "protocol": PROTOCOL,
                "name": "libqcow",
                "version": pyqcow.get_version(),
                "mode": "read-only",
                "versions": [2, 3],
                "clusterBitsMin": 9,
                "clusterBitsMax": 21,
                "refcountBits": [1, 2, 4, 8, 16, 32, 64],
                "ops": [],
                "features": ["compressed"],
            }
        if op == "open":
            if not request.get("readOnly", False):
                raise Refusal("failed", "libqcow opens images read-only")
            self.close_image()
            image = pyqcow.file()
            image.open(request["path"])
            self.image = image
            return {}
        if op == "read":
            if self.image is None:
                raise Refusal("failed", "no image is open")
            offset, length = request["offset"], request["length"]
            data = self.image.read_buffer_at_offset(length, offset)
            if len(data) != length:
                raise Refusal("failed", "libqcow returned %d bytes for a read of %d" % (len(data), length))
            if "toFile" in request:
                with open(request["toFile"], "wb") as out:
                    out.write(data)
                return {}
            return {"data": base64.b64encode(data).decode("ascii")}
        if op in ("close", "quit"):
            self.close_image()
            return {}
        raise Refusal("failed", "libqcow is read-only: no %r" % (op,))


class Refusal(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def main():
    adapter = Adapter()
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        answer = {"id": request.get("id"), "ok": True}
        try:
            answer.update(adapter.handle(request))
        except Refusal as refusal:
            answer = {"id": request.get("id"), "ok": False, "error": refusal.code, "message": str(refusal)}
        except Exception as error:  # libqcow raises IOError and others: a failure, never a refusal
            print("libqcow: %s: %s" % (type(error).__name__, error), file=sys.stderr)
            answer = {"id": request.get("id"), "ok": False, "error": "failed", "message": "%s: %s" % (type(error).__name__, error)}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()
        if request.get("op") == "quit":
            break


if __name__ == "__main__":
    main()
