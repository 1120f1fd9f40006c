"""A small SIP user agent for the end-to-end suite: REGISTER and INVITE with RFC 2617/7616/8760
digest (MD5 and SHA-256, qop=auth), over UDP or TCP, from any loopback address.

It does only what the suite needs and checks what it receives: every response is matched to its
transaction by Call-ID, CSeq and branch; requests the switch sends to us (BYE, OPTIONS, NOTIFY) are
answered 200 so that retransmissions never interfere. Standard library only.
"""

import hashlib
import os
import re
import select
import socket
import time
import uuid


class SIPError(Exception):
    pass


def _hash(alg, s):
    h = hashlib.sha256() if alg.upper() in ("SHA-256", "SHA256") else hashlib.md5()
    h.update(s.encode())
    return h.hexdigest()


def parse_challenges(values):
    """Each WWW-/Proxy-Authenticate value -> dict of its parameters, in the order received."""
    out = []
    for v in values:
        scheme, _, rest = v.strip().partition(" ")
        if scheme.lower() != "digest":
            continue
        params = {}
        for m in re.finditer(r'([A-Za-z0-9_-]+)\s*=\s*("([^"]*)"|[^,\s]+)', rest):
            params[m.group(1).lower()] = m.group(3) if m.group(3) is not None else m.group(2)
        params.setdefault("algorithm", "MD5")
        out.append(params)
    return out


def digest_header(challenge, method, uri, username, password, nc=1):
    alg = challenge.get("algorithm", "MD5")
    realm = challenge["realm"]
    nonce = challenge["nonce"]
    ha1 = _hash(alg, f"{username}:{realm}:{password}")
    ha2 = _hash(alg, f"{method}:{uri}")
    qop = challenge.get("qop")
    parts = [f'username="{username}"', f'realm="{realm}"', f'nonce="{nonce}"', f'uri="{uri}"']
    if qop:
        cnonce = uuid.uuid4().hex[:16]
        ncs = f"{nc:08x}"
        resp = _hash(alg, f"{ha1}:{nonce}:{ncs}:{cnonce}:auth:{ha2}")
        parts += [f'response="{resp}"', f"algorithm={alg}", "qop=auth", f"nc={ncs}", f'cnonce="{cnonce}"']
    else:
        resp = _hash(alg, f"{ha1}:{nonce}:{ha2}")
        parts += [f'response="{resp}"', f"algorithm={alg}"]
    if "opaque" in challenge:
        parts.append(f'opaque="{challenge["opaque"]}"')
    return "Digest " + ", ".join(parts)


class Message:
    def __init__(self, start, headers, body):
        self.start = start
        self.headers = headers  # list of (name, value) in order
        self.body = body

    @property
    def is_response(self):
        return self.start.startswith("SIP/2.0 ")

    @property
    def status(self):
        return int(self.start.split(" ", 2)[1]) if self.is_response else None

    @property
    def reason(self):
        return self.start.split(" ", 2)[2] if self.is_response else None

    @property
    def method(self):
        return None if self.is_response else self.start.split(" ", 1)[0]

    def all(self, name):
        compact = {"v": "via", "i": "call-id", "f": "from", "t": "to", "m": "contact", "l": "content-length"}
        n = name.lower()
        return [v for k, v in self.headers if compact.get(k.lower(), k.lower()) == n]

    def get(self, name, default=None):
        v = self.all(name)
        return v[0] if v else default

    def cseq(self):
        num, meth = self.get("CSeq").split()
        return int(num), meth

    def branch(self):
        m = re.search(r"branch=([^;,\s]+)", self.get("Via", ""))
        return m.group(1) if m else None

    def to_tag(self):
        m = re.search(r";tag=([^;>\s]+)", self.get("To", ""))
        return m.group(1) if m else None

    def contact_uri(self):
        c = self.get("Contact", "")
        m = re.search(r"<([^>]+)>", c)
        return m.group(1) if m else c.split(";")[0].strip()

    def __repr__(self):
        return f"<{self.start}>"


def parse_message(data):
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:
            headers[-1] = (headers[-1][0], headers[-1][1] + " " + line.strip())
            continue
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return Message(lines[0], headers, body)


class UA:
    """One SIP endpoint: a socket bound to `local_ip`, talking to the switch at `server`."""

    def __init__(self, local_ip="127.0.0.1", server=("127.0.0.1", 5060), transport="udp",
                 user="1001", domain="voip.example.com", password=None, algorithm=None, log=None):
        self.server = server
        self.transport = transport.lower()
        self.user = user
        self.domain = domain
        self.password = password
        # None: answer the first challenge with whatever it names; "first-md5-only": answer the first
        # challenge only if it is MD5 (as MD5-only phones do); "MD5"/"SHA-256": pick that challenge.
        self.algorithm = algorithm
        self.log = log or (lambda s: None)
        if self.transport == "udp":
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.sock.bind((local_ip, 0))
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind((local_ip, 0))
            self.sock.settimeout(5)
            self.sock.connect(server)
            self.sock.settimeout(None)
        self.local = self.sock.getsockname()
        self.buf = b""
        self.tag = uuid.uuid4().hex[:10]
        self.cseq = 0
        self.nc = 0
        self.rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # a real port for SDP; never read
        self.rtp.bind((local_ip, 0))
        self.byes = set()  # Call-IDs the switch hung up

    def close(self):
        for s in (self.sock, self.rtp):
            try:
                s.close()
            except OSError:
                pass

    # -- wire --------------------------------------------------------------------------------
    def _send(self, data):
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def _read_one(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if self.transport != "udp":
                msg = self._take_stream_message()
                if msg is not None:
                    return msg
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            r, _, _ = select.select([self.sock], [], [], left)
            if not r:
                return None
            if self.transport == "udp":
                data, _ = self.sock.recvfrom(65535)
                if data.strip():
                    return parse_message(data)
            else:
                chunk = self.sock.recv(65535)
                if not chunk:
                    raise SIPError("the switch closed the TCP connection")
                self.buf += chunk

    def _take_stream_message(self):
        self.buf = self.buf.lstrip(b"\r\n")
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        m = re.search(rb"(?im)^(content-length|l)\s*:\s*(\d+)", self.buf[:end])
        n = int(m.group(2)) if m else 0
        total = end + 4 + n
        if len(self.buf) < total:
            return None
        data, self.buf = self.buf[:total], self.buf[total:]
        return parse_message(data)

    def _via(self, branch):
        proto = "UDP" if self.transport == "udp" else "TCP"
        return f"SIP/2.0/{proto} {self.local[0]}:{self.local[1]};branch={branch};rport"

    def _contact(self):
        t = "" if self.transport == "udp" else ";transport=tcp"
        return f"<sip:{self.user}@{self.local[0]}:{self.local[1]}{t}>"

    def build(self, method, uri, call_id, cseq, branch, from_hdr, to_hdr, extra=(), body=b""):
        lines = [f"{method} {uri} SIP/2.0", f"Via: {self._via(branch)}", "Max-Forwards: 70",
                 f"From: {from_hdr}", f"To: {to_hdr}", f"Call-ID: {call_id}", f"CSeq: {cseq} {method}",
                 f"Contact: {self._contact()}", "User-Agent: switchauth-e2e"]
        lines += list(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    def _answer_request(self, req):
        """The switch's own requests to us (BYE, OPTIONS, NOTIFY...): 200, echoing the dialog headers."""
        if req.method == "ACK":
            return
        lines = ["SIP/2.0 200 OK"]
        for v in req.all("via"):
            lines.append(f"Via: {v}")
        lines += [f"From: {req.get('From')}", f"To: {req.get('To')}", f"Call-ID: {req.get('Call-ID')}",
                  f"CSeq: {req.get('CSeq')}", "Content-Length: 0"]
        self._send(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.log(f"answered the switch's {req.method} with 200")
        if req.method == "BYE":
            self.byes.add(req.get("Call-ID"))

    def wait_response(self, call_id, cseq, method, branch=None, timeout=8.0, final=True):
        """The next response of this transaction (the final one when `final`); None on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            msg = self._read_one(max(left, 0)) if left > 0 else None
            if msg is None:
                return None
            if not msg.is_response:
                self._answer_request(msg)
                continue
            if msg.get("Call-ID") != call_id or msg.cseq() != (cseq, method):
                continue
            if branch and msg.branch() != branch:
                continue
            if final and msg.status < 200:
                continue
            return msg

    def _transaction(self, method, uri, call_id, from_hdr, to_hdr, extra=(), body=b"", timeout=8.0):
        self.cseq += 1
        branch = "z9hG4bK" + uuid.uuid4().hex[:16]
        data = self.build(method, uri, call_id, self.cseq, branch, from_hdr, to_hdr, extra, body)
        deadline = time.monotonic() + timeout
        interval = 0.5
        self._send(data)
        while True:
            step = min(interval, deadline - time.monotonic()) if self.transport == "udp" else deadline - time.monotonic()
            if step <= 0:
                return None, branch, self.cseq
            resp = self.wait_response(call_id, self.cseq, method, branch, timeout=step)
            if resp is not None:
                return resp, branch, self.cseq
            if self.transport == "udp" and time.monotonic() < deadline:
                # RFC 3261 timer A; a provisional answer would have stopped it, but a stateless
                # retransmission is harmless for the switch (it absorbs duplicates).
                self._send(data)
                interval = min(interval * 2, 4.0)

    def _choose(self, resp, header):
        chs = parse_challenges(resp.all(header))
        if not chs:
            raise SIPError(f"{resp.status} without a {header} challenge")
        if self.algorithm is None:
            return chs[0]
        if self.algorithm == "first-md5-only":
            if chs[0]["algorithm"].upper() != "MD5":
                raise SIPError(f"the first {header} challenge is {chs[0]['algorithm']}: an MD5-only phone gives up")
            return chs[0]
        for c in chs:
            if c["algorithm"].upper() == self.algorithm.upper():
                return c
        raise SIPError(f"no {self.algorithm} challenge among {[c['algorithm'] for c in chs]}")

    # -- REGISTER ----------------------------------------------------------------------------
    def register(self, expires=300, password=None, auth_user=None, realm_override=None):
        """REGISTER, answering one challenge. Returns the final status code (None on timeout)."""
        password = self.password if password is None else password
        call_id = uuid.uuid4().hex + "@e2e"
        uri = f"sip:{self.domain}"
        aor = f"<sip:{self.user}@{self.domain}>"
        from_hdr = f"{aor};tag={self.tag}"
        extra = [f"Expires: {expires}"]
        resp, _, _ = self._transaction("REGISTER", uri, call_id, from_hdr, aor, extra)
        if resp is None or resp.status != 401:
            return resp.status if resp else None
        ch = self._choose(resp, "WWW-Authenticate")
        if realm_override:
            ch = dict(ch, realm=realm_override)
        auth = digest_header(ch, "REGISTER", uri, auth_user or self.user, password)
        resp, _, _ = self._transaction("REGISTER", uri, call_id, from_hdr, aor, extra + [f"Authorization: {auth}"])
        self.last = resp
        return resp.status if resp else None

    # -- INVITE ------------------------------------------------------------------------------
    def _sdp(self):
        ip, port = self.rtp.getsockname()
        sid = int(time.time())
        return (f"v=0\r\no=e2e {sid} {sid} IN IP4 {ip}\r\ns=e2e\r\nc=IN IP4 {ip}\r\nt=0 0\r\n"
                f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n"
                f"a=fmtp:101 0-16\r\na=sendrecv\r\n").encode()

    def call(self, destination, timeout=10.0, password=None):
        """INVITE `destination`; answers a 407 once when a password is set. Returns a Call whose
        `status` is the final code and, when answered, `headers` of the 200 and `hangup()`."""
        password = self.password if password is None else password
        call_id = uuid.uuid4().hex + "@e2e"
        uri = f"sip:{destination}@{self.domain if self.server[1] != 5080 else self.server[0]}"
        from_hdr = f"<sip:{self.user}@{self.domain}>;tag={self.tag}"
        to_plain = f"<{uri}>"
        body = self._sdp()
        resp, branch, cseq = self._transaction("INVITE", uri, call_id, from_hdr, to_plain, body=body, timeout=timeout)
        if resp is not None and resp.status == 407 and password is not None:
            self._ack_error(uri, call_id, from_hdr, cseq, branch, resp)
            ch = self._choose(resp, "Proxy-Authenticate")
            auth = digest_header(ch, "INVITE", uri, self.user, password)
            resp, branch, cseq = self._transaction("INVITE", uri, call_id, from_hdr, to_plain,
                                                   extra=[f"Proxy-Authorization: {auth}"], body=body, timeout=timeout)
        c = Call(self, call_id, uri, from_hdr, resp, cseq)
        if resp is None:
            return c
        if resp.status >= 300:
            self._ack_error(uri, call_id, from_hdr, cseq, branch, resp)
        elif resp.status >= 200:
            c.to_hdr = resp.get("To")
            target = resp.contact_uri() or uri
            ack_branch = "z9hG4bK" + uuid.uuid4().hex[:16]
            self._send(self.build("ACK", target, call_id, cseq, ack_branch, from_hdr, c.to_hdr))
            c.target = target
        return c

    def _ack_error(self, uri, call_id, from_hdr, cseq, branch, resp):
        data = self.build("ACK", uri, call_id, cseq, branch, from_hdr, resp.get("To"))
        self._send(data)


class Call:
    def __init__(self, ua, call_id, uri, from_hdr, resp, cseq):
        self.ua = ua
        self.call_id = call_id
        self.uri = uri
        self.from_hdr = from_hdr
        self.response = resp
        self.status = resp.status if resp is not None else None
        self.reason = resp.reason if resp is not None else None
        self.to_hdr = None
        self.target = uri
        self.cseq = cseq

    def header(self, name):
        return self.response.get(name) if self.response is not None else None

    def hangup(self):
        if self.status != 200 or self.call_id in self.ua.byes:
            return None
        resp, _, _ = self.ua._transaction("BYE", self.target, self.call_id, self.from_hdr, self.to_hdr)
        return resp.status if resp else None

    def ended_by_switch(self, timeout=0.0):
        """Whether the switch has sent BYE (reads pending messages for up to `timeout`)."""
        end = time.monotonic() + timeout
        while self.call_id not in self.ua.byes:
            left = end - time.monotonic()
            msg = self.ua._read_one(max(left, 0.01))
            if msg is not None and not msg.is_response:
                self.ua._answer_request(msg)
            if time.monotonic() >= end:
                break
        return self.call_id in self.ua.byes
