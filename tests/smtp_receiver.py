"""A real SMTP receiver for the e-mail alert tests (aiosmtpd, 127.0.0.1).

Usage: python3 tests/smtp_receiver.py PORT FILE
Appends each message to FILE (envelope sender, recipients, then the message
as received, then a line "====") and prints "ready" once it listens.
"""

import sys
import time

from aiosmtpd.controller import Controller


class Keep:
    async def handle_DATA(self, server, session, envelope):
        with open(sys.argv[2], "ab") as f:
            f.write(b"MAIL FROM: " + envelope.mail_from.encode() + b"\n")
            f.write(b"RCPT TO: " + ",".join(envelope.rcpt_tos).encode() + b"\n")
            f.write(envelope.content + b"\n====\n")
        return "250 OK"


controller = Controller(Keep(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
while True:
    time.sleep(3600)
