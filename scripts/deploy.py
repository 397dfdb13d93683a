"""Deploys DPRE to the network ape is connected to and writes the deployment file.

    ape run deploy --network ethereum:local:foundry --account TEST::0 --signers 0xA,0xB,0xC --threshold 2
    ape run deploy --network ethereum:sepolia:node --account deployer --collateral 0xUSDC... \
        --signers ... --threshold 2 --owner 0xMultisig --guardian 0xGuardian --out deployments/sepolia.json

Without --collateral a DevStablecoin (6 decimals, mintable by the deployer) is deployed.
Instruments come from --instruments (names such as ETH-PERP, ETH-20261225-3000-C).
"""

from __future__ import annotations

import click
from ape.cli import ConnectedProviderCommand, account_option

from offchain.chain.deploy import deploy_system
from offchain.risk.instruments import parse_instrument
from offchain.risk.params import MarginParams


@click.command(cls=ConnectedProviderCommand)
@account_option()
@click.option("--signers", required=True, help="comma-separated oracle signer addresses")
@click.option("--threshold", type=int, required=True, help="signatures required (m of n)")
@click.option("--collateral", default=None, help="existing collateral token (default: deploy a DevStablecoin)")
@click.option("--decimals", type=int, default=6, help="decimals of the deployed DevStablecoin")
@click.option("--instruments", default="ETH-PERP,BTC-PERP", help="comma-separated instrument names to list")
@click.option("--owner", default=None, help="final owner (default: the deployer); must acceptOwnership()")
@click.option("--guardian", default=None, help="guardian address (default: the deployer)")
@click.option("--timelock", type=int, default=3600, help="timelock delay in seconds (60 … 30 days)")
@click.option("--out", default="deployments/deployment.json", help="where to write the deployment file")
def cli(account, signers, threshold, collateral, decimals, instruments, owner, guardian, timelock, out):  # type: ignore[no-untyped-def]
    deployment = deploy_system(
        account,
        signers=[s.strip() for s in signers.split(",") if s.strip()],
        threshold=threshold,
        instruments=[parse_instrument(n) for n in instruments.split(",") if n.strip()],
        params=MarginParams(),
        collateral=collateral,
        collateral_decimals=decimals,
        owner=owner,
        guardian=guardian,
        timelock_delay=timelock,
    )
    deployment.save(out)
    click.echo(
        f"Clearinghouse {deployment.clearinghouse} (collateral {deployment.collateral}) on chain "
        f"{deployment.chain_id}; {len(deployment.instruments)} instruments; written to {out}"
    )
