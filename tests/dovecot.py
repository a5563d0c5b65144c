"""A real IMAP server for the tests: Debian's Dovecot on 127.0.0.1, one user, its own folder.

Started with a configuration of its own (nothing of the system's is read or changed), plain
IMAP and IMAP over TLS with a certificate made for 127.0.0.1. It needs root (Dovecot drops
to its own users) and the dovecot-imapd package, which ``.ci/run`` installs.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .ports import free_port

DOVECOT = shutil.which("dovecot") or "/usr/sbin/dovecot"
USER, PASSWORD = "bounces", "imap-secret-do-not-print"


@dataclass(frozen=True)
class Dovecot:
    port: int  # plain IMAP (STARTTLS offered)
    tls_port: int  # IMAP over TLS
    user: str
    password: str
    ca_file: Path  # the server's self-signed certificate, to trust it
    maildir: Path  # the user's INBOX, as files



def _config(root: Path, port: int, tls_port: int) -> str:
    return f"""
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{root}/cert.pem
ssl_key = <{root}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = static
  args = uid=dovecot gid=dovecot home={root}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {tls_port}
  }}
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""


@pytest.fixture
def dovecot():
    if not os.path.exists(DOVECOT):
        pytest.skip("needs Debian's dovecot-imapd (apt-get install dovecot-imapd; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("Dovecot is started as root here (it drops to its own users)")
    root = Path(tempfile.mkdtemp(prefix="paperwire-dovecot-"))  # not pytest's tmp_path: Dovecot's users must reach it
    root.chmod(0o755)
    for folder in ("run", "state", "home"):
        (root / folder).mkdir()
    (root / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost", "-keyout", str(root / "key.pem"),
                    "-out", str(root / "cert.pem")], check=True, capture_output=True)
    shutil.chown(root / "home", "dovecot", "dovecot")
    port, tls_port = free_port(), free_port()
    config = root / "dovecot.conf"
    config.write_text(_config(root, port, tls_port))
    # Its own log file, not a pipe: the daemon's processes would hold a pipe open for their whole life.
    subprocess.run([DOVECOT, "-c", str(config)], check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError("Dovecot did not start: " + (root / "dovecot.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield Dovecot(port, tls_port, USER, PASSWORD, root / "cert.pem", root / "home" / USER / "Maildir")
    finally:
        pid = root / "run" / "master.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), signal.SIGTERM)
            deadline = time.monotonic() + 10
            while pid.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
        shutil.rmtree(root, ignore_errors=True)
