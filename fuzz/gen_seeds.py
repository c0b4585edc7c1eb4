#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/seeds/<target>/<name>: small valid messages (and a
few deliberate near-misses). Re-run after changing it: python3 fuzz/gen_seeds.py"""
import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_NONCE = b"c2VydmVyLW5vbmNl"  # fuzz_targets/scram_server.rs


def u32(n):
    return struct.pack(">I", n)


def untyped(body):
    return u32(4 + len(body)) + body


def frame(tag, body):
    return tag + u32(4 + len(body)) + body


def cstrs(*items):
    return b"".join(i + b"\0" for i in items)


def startup(major, minor, params):
    return untyped(u32(major << 16 | minor) + cstrs(*params) + b"\0")


SSL = untyped(u32(80877103))
GSS = untyped(u32(80877104))
PARAMS = [b"user", b"alice", b"database", b"app", b"application_name", b"psql"]
CLIENT_HELLO = bytes.fromhex(
    "16030100c4010000c00303" + "11" * 32 + "00" + "0004130113020100" + "0093"
    + "0000000e000c0000096c6f63616c686f7374"  # server_name
    + "0010000b000908706f737467726573716c"  # ALPN postgresql
)

frontend = {
    "ssl_request": SSL,
    "gssenc_request": GSS,
    "startup_3_0": startup(3, 0, PARAMS),
    "startup_3_2": startup(3, 2, PARAMS + [b"_pq_.test", b"1", b"options", b"-c search_path=x"]),
    "startup_duplicate_user": startup(3, 0, [b"user", b"a", b"user", b"b", b"replication", b"database"]),
    "ssl_gss_startup": SSL + GSS + startup(3, 0, PARAMS),
    "cancel_3_0": untyped(u32(80877102) + u32(4242) + b"\x01\x02\x03\x04"),
    "cancel_3_2": untyped(u32(80877102) + u32(4242) + bytes(range(32))),
    "cancel_3_2_max_key": untyped(u32(80877102) + u32(1) + b"k" * 256),
    "tls_client_hello": CLIENT_HELLO,
    "ssl_then_client_hello": SSL + CLIENT_HELLO,
    "startup_2_0": startup(2, 0, PARAMS),
    "startup_unterminated": untyped(u32(3 << 16) + b"user\0alice\0"),
}

R = lambda code, rest=b"": frame(b"R", u32(code) + rest)
AUTH_OK = R(0)
PARAMS_STATUS = b"".join(
    frame(b"S", cstrs(k, v))
    for k, v in [
        (b"server_version", b"16.4"), (b"server_encoding", b"UTF8"),
        (b"client_encoding", b"UTF8"), (b"DateStyle", b"ISO, MDY"),
        (b"integer_datetimes", b"on"), (b"TimeZone", b"UTC"),
        (b"standard_conforming_strings", b"on"), (b"application_name", b"psql"),
    ]
)
KEY = frame(b"K", u32(4242) + b"\x01\x02\x03\x04")
KEY_32 = frame(b"K", u32(4242) + bytes(range(32)))
READY = frame(b"Z", b"I")
NOTICE = frame(b"N", cstrs(b"SNOTICE", b"VNOTICE", b"C00000", b"Mwelcome") + b"\0")
ERROR = frame(
    b"E",
    cstrs(b"SFATAL", b"VFATAL", b"C28P01", b'Mpassword authentication failed for user "alice"',
          b"Fauth.c", b"L326", b"Rauth_failed") + b"\0",
)
NEGOTIATE = frame(b"v", u32(0) + u32(1) + cstrs(b"_pq_.test"))

backend = {
    "cleartext_flow": R(3) + AUTH_OK + PARAMS_STATUS + KEY + READY,
    "trust_flow": AUTH_OK + PARAMS_STATUS + KEY + READY,
    "key_3_2_flow": NEGOTIATE + R(3) + AUTH_OK + PARAMS_STATUS + KEY_32 + READY,
    "notice_flow": NOTICE + R(3) + NOTICE + AUTH_OK + PARAMS_STATUS + KEY + READY,
    "md5": R(5, b"\xaa\xbb\xcc\xdd"),
    "sasl": R(10, cstrs(b"SCRAM-SHA-256-PLUS", b"SCRAM-SHA-256") + b"\0"),
    "gss": R(7),
    "rejected": R(3) + ERROR,
    "error_before_auth": frame(b"E", cstrs(b"SFATAL", b"C3D000", b'Mdatabase "x" does not exist') + b"\0"),
    "password_twice": R(3) + R(3),
    "ready_after_end": R(3) + AUTH_OK + KEY + READY + READY + frame(b"T", b"\0\0"),
}

client_nonce = b"rOprNGfwEbeRWgbNEkqO"


def initial(data, mechanism=b"SCRAM-SHA-256"):
    return frame(b"p", mechanism + b"\0" + u32(len(data)) + data)


first = b"n,,n=,r=" + client_nonce
final_prefix = b"c=biws,r=" + client_nonce + SERVER_NONCE
scram = {
    # An empty proof: the target fills in the correct one.
    "exchange": initial(first) + frame(b"p", final_prefix + b",p="),
    "exchange_y_flag": initial(b"y,,n=alice,r=" + client_nonce)
    + frame(b"p", b"c=eSws,r=" + client_nonce + SERVER_NONCE + b",p="),
    "exchange_extension": initial(first + b",x=ext") + frame(b"p", final_prefix + b",x=1,p="),
    "wrong_proof": initial(first) + frame(b"p", final_prefix + b",p=" + b"A" * 43 + b"="),
    "channel_binding": initial(b"p=tls-server-end-point,,n=,r=" + client_nonce),
    "plus_mechanism": initial(first, b"SCRAM-SHA-256-PLUS"),
    "after_success": initial(first) + frame(b"p", final_prefix + b",p=") + frame(b"p", b"x"),
}

data_row = {
    "one_column": frame(b"D", b"\0\x01" + u32(1) + b"1"),
    "null_and_text": frame(b"D", b"\0\x02" + u32(0xFFFFFFFF) + u32(5) + b"hello"),
    "no_columns": frame(b"D", b"\0\0"),
}

for target, seeds in [("frontend_startup", frontend), ("backend_handshake", backend),
                      ("scram_server", scram), ("data_row", data_row)]:
    d = os.path.join(HERE, "seeds", target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
