"""Pays through the fake Horizon with the Python stellar-sdk, as a real client would.

Usage: submit.py HORIZON_URL DESTINATION ISSUER

Builds, signs and submits two payments of 12.5 USDC (issued by ISSUER) to DESTINATION from a
fresh random account, with `Server(HORIZON_URL).submit_transaction`:
1. with an id memo (4242), so the SDK skips its SEP-29 memo check;
2. without a memo, so the SDK first loads DESTINATION (`GET /accounts/{id}`) to check SEP-29
   and must go on when the fake answers 404.

Checks that the XDR in each answer decodes with the SDK's own XDR classes. Prints one JSON object: for each, the hash in Horizon's answer, the SDK's own `hash_hex()`, the
sequence number used and the whole answer.
"""

import json
import sys
import warnings

from stellar_sdk import Account, Asset, Keypair, Network, Server, TransactionBuilder
from stellar_sdk import xdr as stellar_xdr


def main() -> None:
    horizon_url, destination, issuer = sys.argv[1:4]
    warnings.simplefilter("error")  # any SDK warning is a failure here
    source = Keypair.random()
    account = Account(source.public_key, 0)
    server = Server(horizon_url)
    usdc = Asset("USDC", issuer)

    results = []
    for memo in (4242, None):
        builder = TransactionBuilder(
            source_account=account,
            network_passphrase=Network.TESTNET_NETWORK_PASSPHRASE,
            base_fee=100,
        ).set_timeout(300)
        if memo is not None:
            builder.add_id_memo(memo)
        tx = builder.append_payment_op(destination, usdc, "12.5").build()
        tx.sign(source)
        response = server.submit_transaction(tx)
        # The XDR in the answer decodes with the SDK's own XDR implementation.
        assert response["envelope_xdr"] == tx.to_xdr()
        result = stellar_xdr.TransactionResult.from_xdr(response["result_xdr"])
        assert result.result.code == stellar_xdr.TransactionResultCode.txSUCCESS
        assert result.fee_charged.int64 == 100
        stellar_xdr.TransactionMeta.from_xdr(response["result_meta_xdr"])
        stellar_xdr.LedgerEntryChanges.from_xdr(response["fee_meta_xdr"])
        results.append(
            {
                "hash": response["hash"],
                "sdk_hash": tx.hash_hex(),
                "sequence": tx.transaction.sequence,
                "response": response,
            }
        )

    print(json.dumps({"source": source.public_key, "results": results}))


if __name__ == "__main__":
    main()
