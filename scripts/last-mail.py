#!/usr/bin/python3
"""Prints the newest email the development SMTP sink stored (headers and the decoded
plain-text part), for following confirmation and reset links by hand.
usage: scripts/last-mail.py [DIR]   (default: .run/services/smtp/mail, where `make run` keeps it)"""
import email
import email.policy
import glob
import os
import sys

directory = sys.argv[1] if len(sys.argv) > 1 else ".run/services/smtp/mail"
messages = glob.glob(os.path.join(directory, "*.eml"))
if not messages:
    sys.exit("no mail in %s yet" % directory)
with open(max(messages, key=os.path.getmtime), "rb") as f:
    message = email.message_from_binary_file(f, policy=email.policy.default)
for header in ("Date", "To", "Subject"):
    print("%s: %s" % (header, message[header]))
print()
print(message.get_body(("plain",)).get_content())
