#!/usr/bin/env python3
"""An independent SEP-10 client for capstan's interoperability tests.

It logs in to an anchor the way a wallet built on the Python `stellar-sdk` would:

1. fetch the anchor's stellar.toml and take SIGNING_KEY, WEB_AUTH_ENDPOINT and
   NETWORK_PASSPHRASE from it;
2. ask WEB_AUTH_ENDPOINT for a challenge (account, memo, home_domain, client_domain);
3. check the challenge with `stellar_sdk.sep.stellar_web_authentication.read_challenge_transaction`
   (server signature, home domain, web_auth_domain, time bounds, nonce, memo) and check
   that it names the account that was asked for;
4. sign it with `TransactionEnvelope.from_xdr(..).sign(keypair)` (the signer keys, then the
   client domain's key when there is one);
5. POST it back and decode the JWT it gets.

On success it prints one JSON object on stdout and exits 0. On any failure it prints a
message on stderr and exits non-zero: 4 when the SDK rejects the anchor's challenge, 3 when
the anchor's answers are not what SEP-10 says, 2 for bad arguments, 1 for anything else.

With --expect-rejection the script expects the anchor to refuse the signed challenge: it
prints the anchor's status and error and exits 0 only when the anchor answered 4xx with a
JSON `error`; it exits 3 when the anchor issued a token.

Only the standard library and stellar_sdk are used.
"""

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

try:
    from tomllib import loads as toml_loads
except ImportError:  # Python < 3.11: stellar-sdk itself depends on `toml` there.
    from toml import loads as toml_loads

try:
    from stellar_sdk import Keypair, MuxedAccount, TransactionEnvelope
    from stellar_sdk.operation.manage_data import ManageData
    from stellar_sdk.sep.ed25519_public_key_signer import Ed25519PublicKeySigner
    from stellar_sdk.sep.stellar_web_authentication import (
        read_challenge_transaction,
        verify_challenge_transaction_signers,
    )
except ImportError as e:
    print(f"sep10_client: error: cannot import stellar_sdk: {e}", file=sys.stderr)
    sys.exit(1)

TIMEOUT_SECS = 30
PROTOCOL_ERROR = 3
SDK_REJECTED = 4


class Failure(Exception):
    """A failure with its exit code."""

    def __init__(self, message, code=1):
        super().__init__(message)
        self.code = code


def protocol_error(message):
    return Failure(message, PROTOCOL_ERROR)


def http(method, url, body=None, content_type=None):
    """Returns (status, text). HTTP error statuses are answers, not exceptions."""
    headers = {"Accept": "application/json"}
    if content_type:
        headers["Content-Type"] = content_type
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECS) as response:
            return response.status, response.read().decode("utf-8")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", errors="replace")
    except urllib.error.URLError as e:
        raise Failure(f"{method} {url}: {e.reason}") from e


def json_answer(method, url, status, text):
    try:
        return json.loads(text)
    except ValueError:
        raise protocol_error(
            f"{method} {url} answered {status} with a body that is not JSON: {text!r}"
        ) from None


def fetch_anchor_toml(anchor_url):
    url = f"{anchor_url}/.well-known/stellar.toml"
    status, text = http("GET", url)
    if status != 200:
        raise protocol_error(f"GET {url} answered {status}: {text!r}")
    try:
        toml = toml_loads(text)
    except ValueError as e:
        raise protocol_error(f"{url} is not valid TOML: {e}") from e
    for key in ("SIGNING_KEY", "WEB_AUTH_ENDPOINT", "NETWORK_PASSPHRASE"):
        if not isinstance(toml.get(key), str) or not toml[key]:
            raise protocol_error(f"{url} has no {key}")
    return toml


def decode_jwt_claims(token):
    """The JWT payload, decoded but not verified (the test verifies it with the secret)."""
    parts = token.split(".")
    if len(parts) != 3:
        raise protocol_error(f"token is not a JWT (3 dot-separated parts): {token!r}")
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(payload))
    except ValueError as e:
        raise protocol_error(f"JWT payload is not base64url JSON: {e}") from e


def client_domain_operation(envelope):
    """(domain, source G address) of the challenge's client_domain operation, or None."""
    for op in envelope.transaction.operations[1:]:
        if isinstance(op, ManageData) and op.data_name == "client_domain":
            value = op.data_value.decode("utf-8") if op.data_value else None
            return value, op.source.account_id if op.source else None
    return None


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--anchor-url", required=True, help="the anchor's base URL, e.g. http://127.0.0.1:8000")
    p.add_argument("--account-secret", required=True, help="S... seed of the client account")
    p.add_argument("--memo", type=int, help="ID memo: log in as <G...>:<memo>")
    p.add_argument("--muxed-id", type=int, help="log in as the M... address of the account with this id")
    p.add_argument(
        "--signer",
        action="append",
        default=[],
        metavar="SECRET",
        help="S... seed to sign the challenge with; repeatable; default: --account-secret",
    )
    p.add_argument("--client-domain", help="the client domain to ask the challenge for")
    p.add_argument("--client-domain-secret", help="S... seed of the client domain's SIGNING_KEY")
    p.add_argument("--post-as", choices=["json", "form"], default="json", help="POST body encoding")
    p.add_argument(
        "--expect-rejection",
        action="store_true",
        help="succeed only if the anchor refuses the signed challenge with 4xx and a JSON error",
    )
    args = p.parse_args(argv)
    if args.memo is not None and args.muxed_id is not None:
        p.error("--memo and --muxed-id cannot be combined")
    if args.client_domain_secret and not args.client_domain:
        p.error("--client-domain-secret needs --client-domain")
    return args


def keypair(seed, what):
    try:
        return Keypair.from_secret(seed)
    except Exception as e:
        raise Failure(f"{what} is not a valid S... seed: {e}") from e


def run(args):
    anchor_url = args.anchor_url.rstrip("/")
    account_key = keypair(args.account_secret, "--account-secret")
    signers = [keypair(s, "--signer") for s in args.signer] or [account_key]
    client_domain_key = (
        keypair(args.client_domain_secret, "--client-domain-secret")
        if args.client_domain_secret
        else None
    )

    # SEP-1: everything the client needs to know about the server comes from its stellar.toml.
    toml = fetch_anchor_toml(anchor_url)
    server_key = toml["SIGNING_KEY"]
    auth_url = toml["WEB_AUTH_ENDPOINT"]
    passphrase = toml["NETWORK_PASSPHRASE"]
    # The home domain is the domain whose stellar.toml we read; web_auth_domain is the host
    # of WEB_AUTH_ENDPOINT.
    home_domain = urllib.parse.urlsplit(anchor_url).netloc
    web_auth_domain = urllib.parse.urlsplit(auth_url).netloc

    if args.muxed_id is not None:
        account = MuxedAccount(account_key.public_key, args.muxed_id).account_muxed
    else:
        account = account_key.public_key

    # GET the challenge.
    query = {"account": account, "home_domain": home_domain}
    if args.memo is not None:
        query["memo"] = str(args.memo)
    if args.client_domain:
        query["client_domain"] = args.client_domain
    url = f"{auth_url}?{urllib.parse.urlencode(query)}"
    status, text = http("GET", url)
    body = json_answer("GET", url, status, text)
    if status != 200:
        raise protocol_error(f"GET {url} answered {status}: {body}")
    challenge_xdr = body.get("transaction")
    if not isinstance(challenge_xdr, str):
        raise protocol_error(f"challenge answer has no 'transaction': {body}")
    if body.get("network_passphrase") != passphrase:
        raise protocol_error(
            f"challenge network_passphrase {body.get('network_passphrase')!r} "
            f"differs from stellar.toml's {passphrase!r}"
        )

    # Read it with the SDK, as a wallet does before signing anything.
    try:
        challenge = read_challenge_transaction(
            challenge_xdr, server_key, [home_domain], web_auth_domain, passphrase
        )
    except Exception as e:  # InvalidSep10ChallengeError, or the XDR decoder's own errors
        raise Failure(
            f"stellar_sdk read_challenge_transaction rejected the anchor's challenge: "
            f"{type(e).__name__}: {e}",
            SDK_REJECTED,
        ) from e
    if challenge.client_account_id != account:
        raise protocol_error(
            f"challenge is for {challenge.client_account_id}, not the requested {account}"
        )
    if challenge.memo != args.memo:
        raise protocol_error(f"challenge memo is {challenge.memo!r}, requested {args.memo!r}")
    if challenge.matched_home_domain != home_domain:
        raise protocol_error(f"challenge home domain is {challenge.matched_home_domain!r}")
    domain_op = client_domain_operation(challenge.transaction)
    if args.client_domain:
        if domain_op is None:
            raise protocol_error("challenge has no client_domain operation")
        if domain_op[0] != args.client_domain:
            raise protocol_error(f"challenge client_domain is {domain_op[0]!r}")
        if client_domain_key and domain_op[1] != client_domain_key.public_key:
            raise protocol_error(
                f"client_domain operation source is {domain_op[1]}, "
                f"not the client domain's key {client_domain_key.public_key}"
            )
    elif domain_op is not None:
        raise protocol_error(f"challenge has a client_domain operation nobody asked for: {domain_op}")

    # Sign it.
    envelope = TransactionEnvelope.from_xdr(challenge_xdr, passphrase)
    challenge_hash = envelope.hash_hex()
    for key in signers:
        envelope.sign(key)
    if client_domain_key:
        envelope.sign(client_domain_key)
    signed_xdr = envelope.to_xdr()

    # A self-check with the SDK's own server-side verifier: every signature on the signed
    # challenge must belong to the server, the client domain or one of our signers.
    sdk_verified_signers = None
    if not args.expect_rejection:
        try:
            found = verify_challenge_transaction_signers(
                signed_xdr,
                server_key,
                [home_domain],
                web_auth_domain,
                passphrase,
                [Ed25519PublicKeySigner(k.public_key) for k in signers],
            )
        except Exception as e:
            raise Failure(
                f"stellar_sdk verify_challenge_transaction_signers rejected the signed challenge: "
                f"{type(e).__name__}: {e}",
                SDK_REJECTED,
            ) from e
        sdk_verified_signers = [s.account_id for s in found]

    # POST it back.
    if args.post_as == "json":
        post_body = json.dumps({"transaction": signed_xdr}).encode("utf-8")
        content_type = "application/json"
    else:
        post_body = urllib.parse.urlencode({"transaction": signed_xdr}).encode("ascii")
        content_type = "application/x-www-form-urlencoded"
    status, text = http("POST", auth_url, post_body, content_type)
    body = json_answer("POST", auth_url, status, text)

    if args.expect_rejection:
        if status == 200:
            raise protocol_error(
                f"anchor issued a token for a challenge it should have refused: {body}"
            )
        if not (400 <= status < 500) or not isinstance(body.get("error"), str) or not body["error"]:
            raise protocol_error(
                f"anchor refused with {status} but not with a 4xx JSON error: {body}"
            )
        return {
            "rejected": True,
            "status": status,
            "error": body["error"],
            "account": account,
            "challenge_hash": challenge_hash,
        }

    if status != 200:
        raise protocol_error(f"POST {auth_url} answered {status}: {body}")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise protocol_error(f"token answer has no 'token': {body}")
    return {
        "account": account,
        "home_domain": home_domain,
        "web_auth_domain": web_auth_domain,
        "server_signing_key": server_key,
        "network_passphrase": passphrase,
        "challenge": {
            "client_account_id": challenge.client_account_id,
            "matched_home_domain": challenge.matched_home_domain,
            "memo": challenge.memo,
            "client_domain": (
                {"domain": domain_op[0], "source": domain_op[1]} if domain_op else None
            ),
        },
        "challenge_hash": challenge_hash,
        "sdk_verified_signers": sdk_verified_signers,
        "token": token,
        "claims": decode_jwt_claims(token),
    }


def main(argv):
    args = parse_args(argv)
    try:
        result = run(args)
    except Failure as e:
        print(f"sep10_client: error: {e}", file=sys.stderr)
        return e.code
    except Exception as e:  # anything unexpected is a failure too, with its type
        print(f"sep10_client: error: unexpected {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
