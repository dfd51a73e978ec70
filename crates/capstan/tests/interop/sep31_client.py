#!/usr/bin/env python3
"""A SEP-31 sending anchor's client for capstan's interoperability tests.

It plays the sending anchor against a receiving anchor, built on the Python `stellar-sdk`
and the standard library only:

1. SEP-1: fetch stellar.toml and take SIGNING_KEY, WEB_AUTH_ENDPOINT, KYC_SERVER,
   DIRECT_PAYMENT_SERVER and NETWORK_PASSPHRASE from it;
2. SEP-10: log in as the sending anchor's G account (no memo), reading the challenge with
   `stellar_sdk.sep.stellar_web_authentication.read_challenge_transaction` and signing it
   with the SDK;
3. SEP-31 `GET /info`: pick the asset, a funding method and the SEP-12 types it names;
4. SEP-12: list the fields of the sender and receiver types, then `PUT /customer` the
   sender under memo 1 and the receiver under memo 2 (memo_type id, the account's own
   token), each first with one bad value (400 naming the field, nothing stored), then
   fixed (202, ACCEPTED);
5. `POST /transactions` with sender_id and receiver_id: 201 with exactly id,
   stellar_account_id, stellar_memo_type and stellar_memo; `pending_sender`, an id memo
   and the asset's account; then `GET /transactions/:id`;
6. SEP-31 3.0 asynchronous KYC: a second transaction without customer ids (201 with only
   its id, `pending_receiver`), completed through SEP-12 `PUT /customer` with
   `transaction_id` + `type` for each party, after which it is `pending_sender` with its
   own memo;
7. `PUT /transactions/:id/callback` for both transactions, to an `http.server` this
   script runs on 127.0.0.1;
8. the receiving anchor's operator fails the second transaction through the admin API
   (`POST {admin}/admin/transactions/{id}/error`); the one callback that follows must
   carry the `GET /transactions/:id` body and a `Signature: t=<ts>, s=<base64>` header
   that verifies with SIGNING_KEY over `<t>.<host:port>.<body>`, with a fresh t;
9. the first transaction is paid on the network: a payment with its id memo, built and
   signed with the SDK's `TransactionBuilder` and submitted to stellar.toml's HORIZON_URL
   with `Server.submit_transaction`; the anchor matches it (`pending_receiver`, amount_in,
   and stellar_transaction_id = the hash submitted);
10. the customer-info-update flow: the operator asks for the receiver's
   bank_account_number again (`pending_customer_info_update`); SEP-12 shows the field
   rejected with the operator's reason; a PUT with a new value makes the customer ACCEPTED
   and the transaction `pending_receiver` again, by itself;
11. the transaction-info-update flow (deprecated, for older clients): the operator asks for
   a field (`pending_transaction_info_update` with `required_info_updates`), the client
   PATCHes it, the transaction is `pending_receiver` again;
12. each of the first transaction's five status changes arrived as a signed callback, in
   order, the last one equal to `GET /transactions/:id`.

On success it prints one JSON object on stdout and exits 0. On any failure it prints a
message on stderr and exits non-zero: 4 when the SDK rejects the anchor's SEP-10
challenge, 3 when the anchor's answers are not what the SEPs say, 2 for bad arguments,
1 for anything else.
"""

import argparse
import base64
import json
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal, InvalidOperation
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

try:
    from tomllib import loads as toml_loads
except ImportError:  # Python < 3.11: stellar-sdk itself depends on `toml` there.
    from toml import loads as toml_loads

try:
    from stellar_sdk import Account, Asset, Keypair, Server, StrKey, TransactionBuilder, TransactionEnvelope
    from stellar_sdk.exceptions import BadSignatureError
    from stellar_sdk.sep.stellar_web_authentication import read_challenge_transaction
except ImportError as e:
    print(f"sep31_client: error: cannot import stellar_sdk: {e}", file=sys.stderr)
    sys.exit(1)

TIMEOUT_SECS = 30
PROTOCOL_ERROR = 3
SDK_REJECTED = 4
# A callback's t may be this far from the time it arrived (SEP-31 suggests refusing
# callbacks older than a minute or two).
FRESH_SECS = 60
# How long to watch for callbacks nobody should send.
QUIET_SECS = 1.5

# SEP-9 values for the fields a type may ask for, per party.
VALUES = {
    "sender": {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email_address": "ada@example.com",
        "mobile_number": "+14155552671",
        "birth_date": "1815-12-10",
        "address": "12 St James's Square",
        "city": "London",
        "postal_code": "SW1Y 4JH",
        "address_country_code": "GBR",
        "country_code": "GBR",
        "id_type": "passport",
        "id_number": "GB1234567",
    },
    "receiver": {
        "first_name": "Grace",
        "last_name": "Hopper",
        "email_address": "grace@example.com",
        "mobile_number": "+12125550123",
        "birth_date": "1906-12-09",
        "address": "1 Navy Way",
        "city": "Arlington",
        "postal_code": "22202",
        "address_country_code": "USA",
        "country_code": "USA",
        "bank_account_number": "000123456789",
        "bank_number": "021000021",
        "bank_account_type": "checking",
        "id_type": "passport",
        "id_number": "US7654321",
    },
}
# Values SEP-9 refuses, for the fields with a checkable format; the first a type lists is
# the one sent wrong first.
BAD_VALUES = [
    ("mobile_number", "555-0123"),
    ("email_address", "not-an-email"),
    ("birth_date", "1990-02-30"),
]
# The customers a sending anchor files under its own memos.
MEMOS = {"sender": "1", "receiver": "2"}


class Failure(Exception):
    """A failure with its exit code."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def protocol_error(message):
    return Failure(message, PROTOCOL_ERROR)


def expect(condition, message):
    if not condition:
        raise protocol_error(message)


# ---- HTTP ---------------------------------------------------------------------------------


def http(method, url, body=None, token=None, content_type=None):
    """Returns (status, text). HTTP error statuses are answers, not exceptions."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", errors="replace")
    except urllib.error.URLError as e:
        raise Failure(f"{method} {url}: {e.reason}") from e


def call(method, url, body=None, token=None, query=None):
    """A JSON request; returns (status, parsed body). A 4xx must carry a string `error`."""
    if query:
        url = f"{url}?{urllib.parse.urlencode(query)}"
    data = json.dumps(body).encode("utf-8") if body is not None else None
    status, text = http(method, url, data, token, "application/json" if data else None)
    if status == 204:
        expect(text == "", f"{method} {url} answered 204 with a body: {text!r}")
        return status, None
    try:
        parsed = json.loads(text)
    except ValueError:
        raise protocol_error(
            f"{method} {url} answered {status} with a body that is not JSON: {text!r}"
        ) from None
    if status >= 400:
        expect(
            isinstance(parsed, dict) and isinstance(parsed.get("error"), str) and parsed["error"],
            f"{method} {url} answered {status} without a string error: {parsed}",
        )
    return status, parsed


def call_ok(method, url, expected, body=None, token=None, query=None):
    status, parsed = call(method, url, body, token, query)
    if status != expected:
        where = f"{url}?{urllib.parse.urlencode(query)}" if query else url
        raise protocol_error(
            f"{method} {where} answered {status}, expected {expected}: {parsed}"
            + (f" (request body {json.dumps(body)})" if body is not None else "")
        )
    return parsed


# ---- SEP-1 and SEP-10 ---------------------------------------------------------------------


def fetch_anchor_toml(anchor_url):
    url = f"{anchor_url}/.well-known/stellar.toml"
    status, text = http("GET", url)
    expect(status == 200, f"GET {url} answered {status}: {text!r}")
    try:
        toml = toml_loads(text)
    except ValueError as e:
        raise protocol_error(f"{url} is not valid TOML: {e}") from e
    keys = (
        "SIGNING_KEY",
        "WEB_AUTH_ENDPOINT",
        "KYC_SERVER",
        "DIRECT_PAYMENT_SERVER",
        "NETWORK_PASSPHRASE",
    )
    for key in keys:
        expect(isinstance(toml.get(key), str) and toml[key], f"{url} has no {key}")
    expect(
        StrKey.is_valid_ed25519_public_key(toml["SIGNING_KEY"]),
        f"SIGNING_KEY {toml['SIGNING_KEY']!r} is not a G... key",
    )
    found = {key: toml[key] for key in keys}
    # Where to pay, and which issuer each asset code means.
    if isinstance(toml.get("HORIZON_URL"), str):
        found["HORIZON_URL"] = toml["HORIZON_URL"]
    found["issuers"] = {
        c.get("code"): c.get("issuer") for c in toml.get("CURRENCIES", []) if isinstance(c, dict)
    }
    return found


def decode_jwt_claims(token):
    """The JWT payload, decoded but not verified (only the anchor can verify it)."""
    parts = token.split(".")
    expect(len(parts) == 3, f"token is not a JWT (3 dot-separated parts): {token!r}")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(payload))
    except ValueError as e:
        raise protocol_error(f"JWT payload is not base64url JSON: {e}") from e


def login(toml, home_domain, key):
    """SEP-10 as the whole G account; returns (token, claims)."""
    auth_url = toml["WEB_AUTH_ENDPOINT"]
    passphrase = toml["NETWORK_PASSPHRASE"]
    web_auth_domain = urllib.parse.urlsplit(auth_url).netloc
    account = key.public_key
    query = {"account": account, "home_domain": home_domain}
    challenge = call_ok("GET", auth_url, 200, query=query)
    xdr = challenge.get("transaction")
    expect(isinstance(xdr, str), f"challenge answer has no 'transaction': {challenge}")
    expect(
        challenge.get("network_passphrase") == passphrase,
        f"challenge network_passphrase {challenge.get('network_passphrase')!r} "
        f"differs from stellar.toml's {passphrase!r}",
    )
    try:
        read = read_challenge_transaction(
            xdr, toml["SIGNING_KEY"], [home_domain], web_auth_domain, passphrase
        )
    except Exception as e:  # InvalidSep10ChallengeError, or the XDR decoder's own errors
        raise Failure(
            f"stellar_sdk read_challenge_transaction rejected the anchor's challenge: "
            f"{type(e).__name__}: {e}",
            SDK_REJECTED,
        ) from e
    expect(
        read.client_account_id == account,
        f"challenge is for {read.client_account_id}, not {account}",
    )
    expect(read.memo is None, f"challenge has memo {read.memo!r}; none was asked for")
    envelope = TransactionEnvelope.from_xdr(xdr, passphrase)
    envelope.sign(key)
    answer = call_ok("POST", auth_url, 200, body={"transaction": envelope.to_xdr()})
    token = answer.get("token")
    expect(isinstance(token, str) and token, f"token answer has no 'token': {answer}")
    claims = decode_jwt_claims(token)
    expect(claims.get("sub") == account, f"token sub is {claims.get('sub')!r}, not {account}")
    return token, claims


# ---- SEP-31 /info -------------------------------------------------------------------------


def decimal(value, what):
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise protocol_error(f"{what} {value!r} is not a decimal number") from None
    expect(number.is_finite(), f"{what} {value!r} is not a finite number")
    return number


def choose_asset(info, wanted_code, amount):
    receive = info.get("receive")
    expect(isinstance(receive, dict) and receive, f"/info has no receive assets: {info}")
    code = wanted_code or sorted(receive)[0]
    asset = receive.get(code)
    expect(isinstance(asset, dict), f"/info does not receive {code}: {sorted(receive)}")
    methods = asset.get("funding_methods")
    expect(
        isinstance(methods, list) and methods and all(isinstance(m, str) for m in methods),
        f"/info {code} has no funding_methods: {asset}",
    )
    for key in ("sender_sep12_type", "receiver_sep12_type"):
        expect(isinstance(asset.get(key), str), f"/info {code} has no {key}: {asset}")
        # The deprecated shape names the same type, for older clients.
        party = key.split("_")[0]
        types = asset.get("sep12", {}).get(party, {}).get("types", {})
        expect(
            asset[key] in types,
            f"/info {code} sep12.{party}.types does not list {asset[key]}: {asset}",
        )
    expect(asset.get("quotes_required") is False, f"/info {code} requires quotes: {asset}")
    if "min_amount" in asset:
        expect(
            amount >= decimal(asset["min_amount"], "min_amount"),
            f"amount {amount} is below {code}'s min_amount {asset['min_amount']}",
        )
    if "max_amount" in asset:
        expect(
            amount <= decimal(asset["max_amount"], "max_amount"),
            f"amount {amount} is above {code}'s max_amount {asset['max_amount']}",
        )
    transaction_fields = asset.get("fields", {}).get("transaction", {})
    required = [n for n, f in transaction_fields.items() if not f.get("optional", False)]
    expect(not required, f"/info {code} requires deprecated transaction fields {required}")
    return code, asset


# ---- SEP-12 -------------------------------------------------------------------------------


def field_lists(customer, what):
    """(required names, optional names) of a SEP-12 GET answer's `fields`."""
    fields = customer.get("fields")
    expect(isinstance(fields, dict) and fields, f"{what} lists no fields: {customer}")
    for name, spec in fields.items():
        expect(
            isinstance(spec, dict)
            and isinstance(spec.get("type"), str)
            and isinstance(spec.get("description"), str),
            f"{what} field {name} has no type or description: {spec}",
        )
    required = sorted(n for n, s in fields.items() if not s.get("optional", False))
    optional = sorted(n for n, s in fields.items() if s.get("optional", False))
    return required, optional


def values_for(party, required, optional, what):
    """The values to send: every required field, and the optional ones we know."""
    known = VALUES[party]
    missing = [n for n in required if n not in known]
    expect(not missing, f"{what} requires fields this client has no value for: {missing}")
    return {n: known[n] for n in required + optional if n in known}


def file_customer(kyc_url, token, account, party, kind):
    """Lists the fields of `kind`, PUTs one bad value (400), then the right ones (202);
    returns what was seen."""
    memo = MEMOS[party]
    where = {"account": account, "memo": memo, "memo_type": "id", "type": kind}
    what = f"{kind} (memo {memo})"
    before = call_ok("GET", f"{kyc_url}/customer", 200, token=token, query=where)
    expect(before.get("status") == "NEEDS_INFO", f"new {what} is not NEEDS_INFO: {before}")
    expect("id" not in before, f"{what} has an id before it was registered: {before}")
    required, optional = field_lists(before, f"GET /customer {what}")
    values = values_for(party, required, optional, what)

    bad_name, bad_value = next(
        ((n, v) for n, v in BAD_VALUES if n in values),
        (None, None),
    )
    expect(bad_name is not None, f"{what} lists none of the checkable fields {BAD_VALUES}")
    bad = dict(where, **values)
    bad[bad_name] = bad_value
    status, refused = call("PUT", f"{kyc_url}/customer", body=bad, token=token)
    expect(
        status == 400,
        f"PUT /customer {what} with {bad_name}={bad_value!r} answered {status}: {refused}",
    )
    expect(
        bad_name in refused["error"],
        f"the 400 for {bad_name}={bad_value!r} does not name the field: {refused}",
    )
    after_refusal = call_ok("GET", f"{kyc_url}/customer", 200, token=token, query=where)
    expect(
        after_refusal.get("status") == "NEEDS_INFO" and "id" not in after_refusal,
        f"a refused PUT stored {what}: {after_refusal}",
    )

    put = call_ok("PUT", f"{kyc_url}/customer", 202, body=dict(where, **values), token=token)
    customer_id = put.get("id")
    expect(isinstance(customer_id, str) and customer_id, f"PUT /customer {what}: {put}")
    by_id = call_ok(
        "GET", f"{kyc_url}/customer", 200, token=token, query={"id": customer_id, "type": kind}
    )
    expect(by_id.get("id") == customer_id, f"GET /customer?id={customer_id}: {by_id}")
    # The same customer through its account and memo.
    by_memo = call_ok("GET", f"{kyc_url}/customer", 200, token=token, query=where)
    expect(by_memo.get("id") == customer_id, f"GET /customer {what} after the PUT: {by_memo}")
    return {
        "type": kind,
        "memo": memo,
        "required_fields": required,
        "optional_fields": optional,
        "sent_fields": sorted(values),
        "refused": {"field": bad_name, "value": bad_value, "status": status, "error": refused["error"]},
        "id": customer_id,
        "status": by_id.get("status"),
    }


def file_for_transaction(kyc_url, token, transaction_id, party, kind):
    """SEP-31 3.0: registers the transaction's sender or receiver through `transaction_id`
    + `type`; returns what was seen."""
    where = {"transaction_id": transaction_id, "type": kind}
    what = f"{kind} of transaction {transaction_id}"
    before = call_ok("GET", f"{kyc_url}/customer", 200, token=token, query=where)
    expect(before.get("status") == "NEEDS_INFO", f"unregistered {what} is not NEEDS_INFO: {before}")
    expect("id" not in before, f"unregistered {what} has an id: {before}")
    required, optional = field_lists(before, f"GET /customer {what}")
    values = values_for(party, required, optional, what)
    put = call_ok("PUT", f"{kyc_url}/customer", 202, body=dict(where, **values), token=token)
    customer_id = put.get("id")
    expect(isinstance(customer_id, str) and customer_id, f"PUT /customer {what}: {put}")
    after = call_ok("GET", f"{kyc_url}/customer", 200, token=token, query=where)
    expect(after.get("id") == customer_id, f"GET /customer {what} after the PUT: {after}")
    return {
        "type": kind,
        "required_fields": required,
        "id": customer_id,
        "status": after.get("status"),
    }


# ---- SEP-31 transactions ------------------------------------------------------------------


def get_transaction(sep31_url, token, transaction_id):
    """The whole `{"transaction": {...}}` body of `GET /transactions/:id`."""
    body = call_ok("GET", f"{sep31_url}/transactions/{transaction_id}", 200, token=token)
    expect(
        isinstance(body, dict) and list(body) == ["transaction"],
        f"GET /transactions/{transaction_id} is not {{\"transaction\": ...}}: {body}",
    )
    t = body["transaction"]
    expect(t.get("id") == transaction_id, f"GET /transactions/{transaction_id} has id {t.get('id')!r}")
    return body


def check_payable(created, t, amount, code):
    """A `pending_sender` transaction's payment details, the same in the 201 and the GET."""
    expect(
        t.get("status") == "pending_sender",
        f"transaction {t.get('id')} is {t.get('status')!r}, not pending_sender: {t}",
    )
    expect(created.get("stellar_memo_type") == "id", f"memo type is not id: {created}")
    memo = created.get("stellar_memo")
    expect(
        isinstance(memo, str) and memo.isdigit() and 0 < int(memo) < 2**64,
        f"stellar_memo {memo!r} is not a decimal id memo",
    )
    expect(
        StrKey.is_valid_ed25519_public_key(created.get("stellar_account_id") or ""),
        f"stellar_account_id {created.get('stellar_account_id')!r} is not a G... account",
    )
    for key in ("stellar_account_id", "stellar_memo_type", "stellar_memo"):
        expect(t.get(key) == created[key], f"GET {key} is {t.get(key)!r}, POST said {created[key]!r}")
    expect(
        decimal(t.get("amount_in"), "amount_in") == amount,
        f"amount_in {t.get('amount_in')!r} is not the {amount} sent",
    )
    fee = decimal(t.get("amount_fee"), "amount_fee")
    out = decimal(t.get("amount_out"), "amount_out")
    expect(out + fee == amount, f"amount_out {out} + amount_fee {fee} is not {amount}")
    asset = t.get("fee_details", {}).get("asset", "")
    expect(asset.startswith(f"stellar:{code}:"), f"fee_details.asset {asset!r} is not {code}")


def create_with_customers(sep31_url, token, request):
    created = call_ok("POST", f"{sep31_url}/transactions", 201, body=request, token=token)
    keys = sorted(created)
    expect(
        keys == ["id", "stellar_account_id", "stellar_memo", "stellar_memo_type"],
        f"POST /transactions 201 has keys {keys}, not the four SEP-31 lists: {created}",
    )
    return created


def wait_status(sep31_url, token, transaction_id, status, within):
    """Polls `GET /transactions/:id` until the transaction is `status`; returns it."""
    deadline = time.monotonic() + within
    while True:
        t = get_transaction(sep31_url, token, transaction_id)["transaction"]
        if t.get("status") == status:
            return t
        if time.monotonic() > deadline:
            raise protocol_error(
                f"transaction {transaction_id} is {t.get('status')!r} after {within}s, not {status}"
            )
        time.sleep(0.05)


def pay(toml, key, created, code, amount):
    """Pays a transaction on the network: a payment of `amount` `code` to its account with
    its memo, signed with the SDK and submitted to HORIZON_URL. Returns (submitted hash,
    Horizon's answer)."""
    horizon_url = toml.get("HORIZON_URL")
    expect(horizon_url, "stellar.toml has no HORIZON_URL to submit the payment to")
    issuer = toml["issuers"].get(code)
    expect(
        StrKey.is_valid_ed25519_public_key(issuer or ""),
        f"stellar.toml's CURRENCIES has no issuer for {code}: {toml['issuers']}",
    )
    # A sequence number of 0: the test network's Horizon does not track accounts' sequences.
    source = Account(key.public_key, 0)
    tx = (
        TransactionBuilder(source, network_passphrase=toml["NETWORK_PASSPHRASE"], base_fee=100)
        .append_payment_op(
            destination=created["stellar_account_id"],
            asset=Asset(code, issuer),
            amount=str(amount),
        )
        .add_id_memo(int(created["stellar_memo"]))
        .set_timeout(300)
        .build()
    )
    tx.sign(key)
    try:
        answer = Server(horizon_url).submit_transaction(tx)
    except Exception as e:  # the SDK raises its own error types for 4xx/5xx
        raise Failure(f"Horizon refused the payment: {type(e).__name__}: {e}") from e
    expect(
        answer.get("hash") == tx.hash_hex(),
        f"Horizon answered hash {answer.get('hash')!r} for transaction {tx.hash_hex()}",
    )
    return tx.hash_hex(), answer


def admin_ok(admin_url, admin_key, path, body):
    status, answer = call("POST", f"{admin_url}{path}", body=body, token=admin_key)
    expect(status == 200, f"the admin API answered {status} to {path}: {answer}")
    return answer


# ---- the callback receiver ----------------------------------------------------------------


class Callbacks:
    """An http.server on 127.0.0.1 that records every request and answers 200."""

    def __init__(self):
        self.got = []
        self.changed = threading.Condition()
        callbacks = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with callbacks.changed:
                    callbacks.got.append(
                        {
                            "method": "POST",
                            "path": self.path,
                            "headers": {k.lower(): v for k, v in self.headers.items()},
                            "body": body,
                            "received_at": time.time(),
                        }
                    )
                    callbacks.changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_other(self):
                with callbacks.changed:
                    callbacks.got.append(
                        {"method": self.command, "path": self.path, "received_at": time.time()}
                    )
                    callbacks.changed.notify_all()
                self.send_response(405)
                self.send_header("Content-Length", "0")
                self.end_headers()

            do_GET = do_PUT = do_PATCH = do_DELETE = do_other  # noqa: N815

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name):
        return f"http://{self.host}/sep31/callback/{name}"

    def wait_for(self, n, within):
        deadline = time.monotonic() + within
        with self.changed:
            while len(self.got) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise protocol_error(
                        f"expected {n} callback(s) within {within}s, got {len(self.got)}"
                    )
                self.changed.wait(left)
            return list(self.got)

    def all(self):
        with self.changed:
            return list(self.got)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def check_signature(delivery, signing_key, host):
    """Verifies `Signature: t=<ts>, s=<base64>` over `<t>.<host:port>.<body>`; returns t."""
    header = delivery["headers"].get("signature")
    expect(header is not None, f"callback has no Signature header: {delivery['headers']}")
    legacy = delivery["headers"].get("x-stellar-signature")
    expect(
        legacy == header,
        f"X-Stellar-Signature {legacy!r} is not the Signature header {header!r}",
    )
    parts = header.split(", ")
    expect(
        len(parts) == 2 and parts[0].startswith("t=") and parts[1].startswith("s="),
        f"Signature is not 't=<ts>, s=<base64>': {header!r}",
    )
    t = parts[0][2:]
    expect(t.isdigit(), f"Signature t {t!r} is not unix seconds")
    try:
        signature = base64.b64decode(parts[1][2:], validate=True)
    except ValueError:
        raise protocol_error(f"Signature s is not base64: {header!r}") from None
    expect(len(signature) == 64, f"signature is {len(signature)} bytes, not 64")
    body = delivery["body"].decode("utf-8")
    verifier = Keypair.from_public_key(signing_key)
    try:
        verifier.verify(f"{t}.{host}.{body}".encode("utf-8"), signature)
    except BadSignatureError:
        raise protocol_error(
            f"the callback's signature does not verify with SIGNING_KEY {signing_key} "
            f"over '<t>.{host}.<body>'"
        ) from None
    # What was signed is exactly that: the port is part of it, and so is every byte.
    for wrong in (f"{t}.127.0.0.1.{body}", f"{t}.{host}.{body} "):
        try:
            verifier.verify(wrong.encode("utf-8"), signature)
        except BadSignatureError:
            continue
        raise protocol_error(f"the signature also verifies over {wrong!r}")
    age = delivery["received_at"] - int(t)
    expect(abs(age) <= FRESH_SECS, f"Signature t={t} is {age:.0f}s from the time it arrived")
    return int(t), age


# ---- the run ------------------------------------------------------------------------------


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anchor-url", required=True, help="the anchor's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--admin-url", required=True, help="the anchor's admin API, e.g. http://127.0.0.1:8001")
    p.add_argument("--admin-key", required=True, help="the admin API key (sent as a Bearer token)")
    p.add_argument("--account-secret", help="S... seed of the sending anchor's account; default: a new one")
    p.add_argument("--asset", help="the asset code to send; default: the first /info receives")
    p.add_argument("--amount", default="100", help="the amount of each transaction")
    p.add_argument(
        "--error-message",
        default="compliance hold: the receiving bank refused the payout",
        help="the message the operator fails the second transaction with",
    )
    p.add_argument("--callback-wait", type=float, default=15.0, help="seconds to wait for the callback")
    args = p.parse_args(argv)
    try:
        args.amount_decimal = Decimal(args.amount)
    except InvalidOperation:
        p.error(f"--amount {args.amount!r} is not a decimal number")
    if args.account_secret and not StrKey.is_valid_ed25519_secret_seed(args.account_secret):
        p.error("--account-secret is not a valid S... seed")
    return args


def run(args, callbacks):
    anchor_url = args.anchor_url.rstrip("/")
    admin_url = args.admin_url.rstrip("/")
    key = Keypair.from_secret(args.account_secret) if args.account_secret else Keypair.random()
    account = key.public_key
    amount = args.amount_decimal

    # SEP-1.
    toml = fetch_anchor_toml(anchor_url)
    home_domain = urllib.parse.urlsplit(anchor_url).netloc
    kyc_url = toml["KYC_SERVER"].rstrip("/")
    sep31_url = toml["DIRECT_PAYMENT_SERVER"].rstrip("/")

    # SEP-10, as the whole account: a sending anchor files its users under its own memos.
    token, claims = login(toml, home_domain, key)

    # /info.
    info = call_ok("GET", f"{sep31_url}/info", 200, token=token)
    code, asset = choose_asset(info, args.asset, amount)
    funding_method = asset["funding_methods"][0]
    types = {"sender": asset["sender_sep12_type"], "receiver": asset["receiver_sep12_type"]}

    # SEP-12: the sender under memo 1, the receiver under memo 2.
    customers = {
        party: file_customer(kyc_url, token, account, party, types[party])
        for party in ("sender", "receiver")
    }
    for party, customer in customers.items():
        expect(
            customer["status"] == "ACCEPTED",
            f"the {party} is {customer['status']!r} after a complete PUT, not ACCEPTED",
        )
    expect(
        customers["sender"]["id"] != customers["receiver"]["id"],
        f"the sender and receiver got the same id {customers['sender']['id']}",
    )

    # A transaction with both customers: payable at once.
    request = {"amount": args.amount, "asset_code": code, "funding_method": funding_method}
    first_request = dict(
        request, sender_id=customers["sender"]["id"], receiver_id=customers["receiver"]["id"]
    )
    first_created = create_with_customers(sep31_url, token, first_request)
    first_id = first_created["id"]
    first = get_transaction(sep31_url, token, first_id)
    check_payable(first_created, first["transaction"], amount, code)

    # Asynchronous KYC (SEP-31 3.0): a transaction without customers waits for them.
    second_created = call_ok("POST", f"{sep31_url}/transactions", 201, body=request, token=token)
    expect(
        sorted(second_created) == ["id"],
        f"a transaction waiting for KYC is created with only its id: {second_created}",
    )
    second_id = second_created["id"]
    expect(second_id != first_id, f"two transactions got the same id {first_id}")
    waiting = get_transaction(sep31_url, token, second_id)["transaction"]
    expect(
        waiting.get("status") == "pending_receiver",
        f"a transaction without customers is {waiting.get('status')!r}, not pending_receiver",
    )
    for key_name in ("stellar_account_id", "stellar_memo"):
        expect(key_name not in waiting, f"a transaction waiting for KYC has {key_name}: {waiting}")
    linked = {}
    statuses_while_linking = []
    for party in ("sender", "receiver"):
        linked[party] = file_for_transaction(kyc_url, token, second_id, party, types[party])
        statuses_while_linking.append(
            get_transaction(sep31_url, token, second_id)["transaction"].get("status")
        )
    expect(
        statuses_while_linking[0] == "pending_receiver",
        f"with only the sender registered the transaction is {statuses_while_linking[0]!r}",
    )
    for party, customer in linked.items():
        expect(customer["status"] == "ACCEPTED", f"the linked {party} is {customer['status']!r}")
        expect(
            customer["id"] not in (customers["sender"]["id"], customers["receiver"]["id"]),
            f"the linked {party} is one of the memo customers: {customer['id']}",
        )
    second = get_transaction(sep31_url, token, second_id)
    second_payment = {
        k: second["transaction"].get(k)
        for k in ("stellar_account_id", "stellar_memo_type", "stellar_memo")
    }
    check_payable(second_payment, second["transaction"], amount, code)
    expect(
        second_payment["stellar_memo"] != first_created["stellar_memo"],
        f"both transactions have memo {first_created['stellar_memo']}",
    )
    expect(
        second_payment["stellar_account_id"] == first_created["stellar_account_id"],
        "the two transactions of one asset are paid to different accounts",
    )

    # Callbacks for both; registering sends nothing.
    callback_urls = {"first": callbacks.url("first"), "second": callbacks.url("second")}
    for name, transaction_id in (("first", first_id), ("second", second_id)):
        call_ok(
            "PUT",
            f"{sep31_url}/transactions/{transaction_id}/callback",
            204,
            body={"url": callback_urls[name]},
            token=token,
        )
    time.sleep(QUIET_SECS)
    early = callbacks.all()
    expect(not early, f"callbacks arrived before any status change: {early}")

    # The receiving anchor's operator fails the second transaction.
    status, failed = call(
        "POST",
        f"{admin_url}/admin/transactions/{second_id}/error",
        body={"message": args.error_message},
        token=args.admin_key,
    )
    expect(status == 200, f"the admin API answered {status} to the error action: {failed}")
    expect(failed.get("status") == "error", f"the admin API's answer is not error: {failed}")

    got = callbacks.wait_for(1, args.callback_wait)
    time.sleep(QUIET_SECS)
    got = callbacks.all()
    expect(
        len(got) == 1,
        f"one status change, {len(got)} callbacks: "
        f"{[(d['method'], d['path']) for d in got]}",
    )
    delivery = got[0]
    expect(
        delivery["method"] == "POST" and delivery["path"] == "/sep31/callback/second",
        f"the callback went to {delivery['method']} {delivery['path']}, "
        "not POST to the second transaction's URL",
    )
    content_type = delivery["headers"].get("content-type", "")
    expect(
        content_type.startswith("application/json"),
        f"the callback's Content-Type is {content_type!r}",
    )
    t, age = check_signature(delivery, toml["SIGNING_KEY"], callbacks.host)
    try:
        callback_body = json.loads(delivery["body"])
    except ValueError:
        raise protocol_error(f"the callback body is not JSON: {delivery['body']!r}") from None
    after = get_transaction(sep31_url, token, second_id)
    expect(
        callback_body == after,
        f"the callback body is not GET /transactions/{second_id}:\n"
        f"callback: {callback_body}\nGET:      {after}",
    )
    failed_transaction = after["transaction"]
    expect(
        failed_transaction.get("status") == "error",
        f"the failed transaction is {failed_transaction.get('status')!r}",
    )
    expect(
        failed_transaction.get("status_message") == args.error_message,
        f"status_message is {failed_transaction.get('status_message')!r}, "
        f"not the operator's {args.error_message!r}",
    )
    # The other transaction did not move.
    first_after = get_transaction(sep31_url, token, first_id)["transaction"]
    expect(
        first_after.get("status") == "pending_sender",
        f"the first transaction moved to {first_after.get('status')!r}",
    )

    # 9. The first transaction is paid on the network; the anchor matches the payment.
    paid_hash, horizon_answer = pay(toml, key, first_created, code, amount)
    funded = wait_status(sep31_url, token, first_id, "pending_receiver", args.callback_wait)
    expect(
        decimal(funded.get("amount_in"), "amount_in") == amount,
        f"the funded transaction's amount_in is {funded.get('amount_in')!r}, not {amount}",
    )
    expect(
        funded.get("stellar_transaction_id") == paid_hash,
        f"stellar_transaction_id is {funded.get('stellar_transaction_id')!r}, "
        f"not the payment's {paid_hash}",
    )

    # 10. Customer info update: the operator asks for the receiver's bank account again.
    receiver_id = customers["receiver"]["id"]
    reason = "the receiving bank says this account is closed"
    asked = admin_ok(
        admin_url,
        args.admin_key,
        f"/admin/transactions/{first_id}/request-customer-info",
        {"receiver_fields": {"bank_account_number": reason}, "message": "check the receiver"},
    )
    expect(
        asked.get("status") == "pending_customer_info_update",
        f"after the operator's request the transaction is {asked.get('status')!r}",
    )
    needs = get_transaction(sep31_url, token, first_id)["transaction"]
    expect(
        needs.get("status") == "pending_customer_info_update",
        f"GET says {needs.get('status')!r}, not pending_customer_info_update",
    )
    receiver_kyc = call_ok(
        "GET",
        f"{kyc_url}/customer",
        200,
        token=token,
        query={"id": receiver_id, "type": types["receiver"]},
    )
    flagged = receiver_kyc.get("provided_fields", {}).get("bank_account_number", {})
    expect(
        receiver_kyc.get("status") == "NEEDS_INFO"
        and flagged.get("status") == "REJECTED"
        and flagged.get("error") == reason,
        f"SEP-12 does not show bank_account_number rejected with the operator's reason: {receiver_kyc}",
    )
    fixed = call_ok(
        "PUT",
        f"{kyc_url}/customer",
        202,
        body={"id": receiver_id, "type": types["receiver"], "bank_account_number": "000987654321"},
        token=token,
    )
    expect(fixed.get("id") == receiver_id, f"the corrected receiver got another id: {fixed}")
    receiver_after = call_ok(
        "GET",
        f"{kyc_url}/customer",
        200,
        token=token,
        query={"id": receiver_id, "type": types["receiver"]},
    )
    expect(
        receiver_after.get("status") == "ACCEPTED",
        f"the corrected receiver is {receiver_after.get('status')!r}",
    )
    resumed = wait_status(sep31_url, token, first_id, "pending_receiver", args.callback_wait)

    # 11. Transaction info update (deprecated PATCH).
    wanted = {"receiver_routing_number": {"description": "the receiving bank's routing number"}}
    asked = admin_ok(
        admin_url,
        args.admin_key,
        f"/admin/transactions/{first_id}/request-transaction-info",
        {"fields": wanted, "message": "the routing number is missing"},
    )
    expect(
        asked.get("status") == "pending_transaction_info_update",
        f"after the operator's request the transaction is {asked.get('status')!r}",
    )
    needs_fields = get_transaction(sep31_url, token, first_id)["transaction"]
    expect(
        needs_fields.get("required_info_updates") == {"transaction": wanted},
        f"required_info_updates is {needs_fields.get('required_info_updates')!r}",
    )
    expect(
        needs_fields.get("required_info_message") == "the routing number is missing",
        f"required_info_message is {needs_fields.get('required_info_message')!r}",
    )
    patched = call_ok(
        "PATCH",
        f"{sep31_url}/transactions/{first_id}",
        200,
        body={"fields": {"transaction": {"receiver_routing_number": "021000021"}}},
        token=token,
    )
    expect(
        patched.get("transaction", {}).get("status") == "pending_receiver",
        f"after the PATCH the transaction is {patched}",
    )

    # 12. Five status changes of the first transaction, five signed callbacks in order.
    callbacks.wait_for(1 + 5, args.callback_wait)
    time.sleep(QUIET_SECS)
    first_deliveries = [d for d in callbacks.all() if d["path"] == "/sep31/callback/first"]
    first_statuses = []
    for first_delivery in first_deliveries:
        check_signature(first_delivery, toml["SIGNING_KEY"], callbacks.host)
        first_statuses.append(json.loads(first_delivery["body"])["transaction"]["status"])
    last_body = json.loads(first_deliveries[-1]["body"]) if first_deliveries else None
    expect(
        last_body == get_transaction(sep31_url, token, first_id),
        f"the last callback is not GET /transactions/{first_id}: {last_body}",
    )
    first_final = get_transaction(sep31_url, token, first_id)["transaction"]

    return {
        "account": account,
        "stellar_toml": toml,
        "home_domain": home_domain,
        "token_claims": claims,
        "info": {
            "receive": sorted(info["receive"]),
            "asset_code": code,
            "funding_method": funding_method,
            "sender_type": types["sender"],
            "receiver_type": types["receiver"],
        },
        "customers": customers,
        "first": {
            "id": first_id,
            "request": first_request,
            "created": first_created,
            "transaction": first["transaction"],
            "status_before_payment": first_after.get("status"),
            "paid_hash": paid_hash,
            "horizon_answer_hash": horizon_answer.get("hash"),
            "funded": funded,
            "receiver_flagged": flagged,
            "receiver_after_fix": receiver_after.get("status"),
            "resumed_status": resumed.get("status"),
            "required_info_updates": needs_fields.get("required_info_updates"),
            "patched_status": patched["transaction"].get("status"),
            "callback_statuses": first_statuses,
            "final": first_final,
        },
        "second": {
            "id": second_id,
            "request": request,
            "created": second_created,
            "waiting_status": waiting.get("status"),
            "waiting_status_message": waiting.get("status_message"),
            "linked": linked,
            "statuses_while_linking": statuses_while_linking,
            "payable": second["transaction"],
        },
        "callback_urls": callback_urls,
        "failed": {
            "id": second_id,
            "message": args.error_message,
            "admin_status": failed.get("status"),
            "transaction": failed_transaction,
        },
        "callback": {
            "count": len(got),
            "path": delivery["path"],
            "signed_host": callbacks.host,
            "t": t,
            "age_secs": round(age, 3),
            "signature_verified": True,
            "body_equals_get": True,
            "body": callback_body,
        },
    }


def main(argv):
    args = parse_args(argv)
    callbacks = Callbacks()
    try:
        result = run(args, callbacks)
    except Failure as e:
        print(f"sep31_client: error: {e}", file=sys.stderr)
        return e.code
    except Exception as e:  # anything unexpected is a failure too, with its type
        print(f"sep31_client: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    finally:
        callbacks.close()
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
