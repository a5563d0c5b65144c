"""A real Postfix for the tests: an instance of its own on 127.0.0.1 that accepts mail for
``mx.example.com`` and bounces what it cannot deliver there, as any receiving server would.

Nothing of the system's Postfix is read or changed: the instance has its own configuration,
queue and log under a temporary folder, listens on a free port, and delivers only to the
test's own SMTP server (``sink_port``): the domains in ``relayed`` and the bounce domain go
there, everything else is refused. ``mx.example.com`` takes any local part at SMTP time
(``local_recipient_maps`` empty), then finds no such user and sends a DSN to the
envelope sender: the asynchronous bounce of issue 16. Needs root and Debian's postfix
(``.ci/run`` installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from .ports import free_port

POSTFIX = shutil.which("postfix") or "/usr/sbin/postfix"
LOCAL_DOMAIN = "mx.example.com"  # mail to it is accepted, then bounced (no such user)



_MASTER = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def _main(root: Path, sink_port: int, relayed: tuple[str, ...]) -> str:
    transports = ", ".join(f"{domain}=smtp:[127.0.0.1]:{sink_port}" for domain in relayed)
    return f"""\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
myhostname = {LOCAL_DOMAIN}
mydomain = example.com
myorigin = {LOCAL_DOMAIN}
mydestination = {LOCAL_DOMAIN}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
local_recipient_maps =
alias_maps =
alias_database =
transport_maps = inline:{{ {transports} }}
default_transport = error:no outside mail in tests
relayhost =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtputf8_enable = no
delay_warning_time = 0
biff = no
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
"""


def _postfix(root: Path, *args: str) -> None:
    subprocess.run([POSTFIX, "-c", str(root / "conf"), *args], check=True, stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.fixture
def postfix():
    """Start an instance; returns ``start(sink_port, relayed_domains) -> smtp port``."""
    if not os.path.exists(POSTFIX):
        pytest.skip("needs Debian's postfix (apt-get install postfix; .ci/run installs it)")
    if os.geteuid() != 0:
        pytest.skip("Postfix is started as root here (it drops to its own user)")
    roots: list[Path] = []

    def start(sink_port: int, relayed: tuple[str, ...]) -> int:
        root = Path(tempfile.mkdtemp(prefix="paperwire-postfix-"))
        roots.append(root)
        root.chmod(0o755)
        for folder in ("conf", "queue", "data"):
            (root / folder).mkdir()
        shutil.chown(root / "data", "postfix")
        port = free_port()
        (root / "conf" / "main.cf").write_text(_main(root, sink_port, relayed))
        (root / "conf" / "master.cf").write_text(_MASTER.format(port=port))
        _postfix(root, "start")
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                if time.monotonic() > deadline:
                    log = root / "maillog"
                    raise RuntimeError("Postfix did not start: " + (log.read_text() if log.exists() else "")) from None
                time.sleep(0.1)

    yield start
    for root in roots:
        try:
            _postfix(root, "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(root, ignore_errors=True)
